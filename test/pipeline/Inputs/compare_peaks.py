"""Compare the per-rank peaks of two weipipe-opt memory plans.

  compare_peaks.py PLAIN.txt RECOMPUTE.txt

Reads the 'peak bytes' column of each file's 'memory plan per rank' table and
prints, per rank, 'rank R: recompute lowers the peak from A to B bytes', or
exits 1 naming the first rank whose peak did not go down.
"""
import re
import sys


def peaks(path):
    text = open(path).read()
    table = text[text.index("memory plan per rank:"):]
    return [int(m.group(2)) for m in re.finditer(r"^\s+(\d+) .* (\d+)$", table, re.M)]


plain, rec = peaks(sys.argv[1]), peaks(sys.argv[2])
if len(plain) != len(rec) or not plain:
    sys.exit(f"FAIL: {len(plain)} ranks against {len(rec)}")
for r, (a, b) in enumerate(zip(plain, rec)):
    if b >= a:
        sys.exit(f"FAIL: rank {r}: recompute does not lower the peak ({a} -> {b} bytes)")
    print(f"rank {r}: recompute lowers the peak from {a} to {b} bytes")
