# -*- Python -*-
# lit configuration for weipipe's compiler tests.
import os

import lit.formats
from lit.llvm import llvm_config

config.name = "WEIPIPE"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
# .onnxtext files are importer tests: ONNX text with `#` comments holding the
# RUN and CHECK lines. .test files drive Python model exports.
config.suffixes = [".mlir", ".onnxtext", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.weipipe_obj_root, "test")
config.excludes = ["CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py", "Inputs",
                   "mutate.py"]

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
# weipipe-run and weipipe-data come from runtime/ and land in the same bin/.
llvm_config.add_tool_substitutions(
    ["weipipe-opt", "weipipe-data", "weipipe-run"],
    [config.weipipe_tools_dir, config.llvm_tools_dir])
# weipipe-run on the emulated GPU (runtime/test/cuda-emu), built wherever the
# CUDA headers are (every machine of this project).
if os.path.exists(os.path.join(config.weipipe_tools_dir, "weipipe-run-emu")):
    config.available_features.add("cuda-emu")
    llvm_config.add_tool_substitutions(["weipipe-run-emu"],
                                       [config.weipipe_tools_dir])

config.environment["FILECHECK_OPTS"] = "--enable-var-scope"
# use_default_substitutions() already maps %python to lit's own interpreter,
# and the first matching substitution wins: replace it with the venv's.
config.substitutions = [
    (key, value) for key, value in config.substitutions if key != "%python"
]
config.substitutions.append(("%python", config.weipipe_python))
# The venv's torchrun, to start worlds of processes as users do.
config.substitutions.append(
    ("%torchrun", os.path.join(os.path.dirname(config.weipipe_python), "torchrun")))
llvm_config.with_environment(
    "PYTHONPATH", os.path.join(config.weipipe_src_root, "python"), append_path=True)
# torch and friends read these; keep runs reproducible and quiet.
config.environment["PYTHONHASHSEED"] = "0"
config.environment["TOKENIZERS_PARALLELISM"] = "false"
config.environment["HF_HUB_OFFLINE"] = "1"
config.environment["OMP_NUM_THREADS"] = "1"
for var in ["HOME", "TMPDIR"]:
    if var in os.environ:
        config.environment[var] = os.environ[var]
