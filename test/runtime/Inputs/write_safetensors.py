"""write_safetensors.py OUT: a file written by the Python safetensors library
(mixed dtypes, which it lays out by alignment rather than by name)."""
import sys

import numpy as np
from safetensors.numpy import save_file

save_file({
    "b.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
    "a.ids": np.array([1, 2, 3], dtype=np.int64),
    "c.half": np.ones((2, 2), dtype=np.float16),
    "d.scalar": np.array(2.5, dtype=np.float32),
}, sys.argv[1], metadata={"format": "np"})
