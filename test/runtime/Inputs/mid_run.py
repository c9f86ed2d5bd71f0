"""Start a command, act on it once it is working, report how it ended.

  mid_run.py --signal HUP [--after 3] -- COMMAND ARGS...
  mid_run.py --truncate FILE [--to BYTES] [--after 60] -- COMMAND ARGS...

Waits --after seconds, or until the command has created a file ending in
.tmp.<pid> next to one of its outputs (it is then inside its training loop),
whichever is first; then sends the signal, or truncates FILE in place to
BYTES (as an editor or a rotating writer would). Waits for the command and
prints "killed by signal N" or "exited N"; with --truncate also its
standard error.
"""
import argparse
import glob
import os
import signal
import subprocess
import sys
import time

p = argparse.ArgumentParser()
act = p.add_mutually_exclusive_group(required=True)
act.add_argument("--signal")
act.add_argument("--truncate")
p.add_argument("--to", type=int, default=0)
p.add_argument("--after", type=float)
p.add_argument("cmd", nargs=argparse.REMAINDER)
a = p.parse_args()
cmd = [c for c in a.cmd if c != "--"] if a.cmd and a.cmd[0] == "--" else a.cmd
proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE if a.truncate else subprocess.DEVNULL,
                        text=True)
deadline = time.time() + (a.after if a.after is not None else 3.0 if a.signal else 60.0)
dirs = {os.path.dirname(os.path.abspath(x)) for x in cmd if "/" in x}
while time.time() < deadline and proc.poll() is None:
    if any(glob.glob(os.path.join(d, f"*.tmp.{proc.pid}")) for d in dirs):
        time.sleep(0.2 if a.signal else 0.3)  # well inside the training loop
        break
    time.sleep(0.05)
if proc.poll() is not None:
    print(f"exited {proc.returncode} before the {'signal' if a.signal else 'truncation'}")
    if a.truncate:
        print(proc.stderr.read())
    sys.exit(1)
if a.signal:
    proc.send_signal(getattr(signal, "SIG" + a.signal))
else:
    os.truncate(a.truncate, a.to)
try:
    _, err = proc.communicate(timeout=60)
except subprocess.TimeoutExpired:
    proc.kill()
    print("hung")
    sys.exit(1)
rc = proc.returncode
print(f"killed by signal {-rc}" if rc < 0 else f"exited {rc}")
if a.truncate:
    print(err)
