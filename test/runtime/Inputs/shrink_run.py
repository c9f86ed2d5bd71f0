"""Start a training command, truncate its data file once it is training,
report how it ended.

  shrink_run.py --data FILE [--to BYTES] -- COMMAND ARGS...

Waits until the command has created a file ending in .tmp.<pid> next to one
of its outputs (it is then inside its training loop), truncates FILE to
BYTES in place (as an editor or a rotating writer would), waits for the
command and prints "exited N" or "killed by signal N", then its standard
error.
"""
import argparse
import glob
import os
import subprocess
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--data", required=True)
p.add_argument("--to", type=int, default=0)
p.add_argument("cmd", nargs=argparse.REMAINDER)
a = p.parse_args()
cmd = [c for c in a.cmd if c != "--"] if a.cmd and a.cmd[0] == "--" else a.cmd
proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                        text=True)
dirs = {os.path.dirname(os.path.abspath(x)) for x in cmd if "/" in x}
deadline = time.time() + 60
while time.time() < deadline and proc.poll() is None:
    if any(glob.glob(os.path.join(d, f"*.tmp.{proc.pid}")) for d in dirs):
        time.sleep(0.3)  # well inside the training loop
        break
    time.sleep(0.05)
if proc.poll() is not None:
    print(f"exited {proc.returncode} before the truncation")
    print(proc.stderr.read())
    sys.exit(1)
os.truncate(a.data, a.to)
try:
    _, err = proc.communicate(timeout=60)
except subprocess.TimeoutExpired:
    proc.kill()
    print("hung after the truncation")
    sys.exit(1)
rc = proc.returncode
print(f"killed by signal {-rc}" if rc < 0 else f"exited {rc}")
print(err)
