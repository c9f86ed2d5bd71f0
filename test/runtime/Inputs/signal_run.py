"""Start a command, send it a signal once it has started working, report.

  signal_run.py --signal HUP [--after 0.5] -- COMMAND ARGS...

Waits --after seconds (or until the command has created a file ending in
.tmp.<pid> next to one of its outputs, whichever is first), sends the
signal, waits for the command to end and prints "killed by signal N" or
"exited N".
"""
import argparse
import glob
import os
import signal
import subprocess
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--signal", required=True)
p.add_argument("--after", type=float, default=3.0)
p.add_argument("cmd", nargs=argparse.REMAINDER)
a = p.parse_args()
cmd = [c for c in a.cmd if c != "--"] if a.cmd and a.cmd[0] == "--" else a.cmd
proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline = time.time() + a.after
dirs = {os.path.dirname(os.path.abspath(x)) for x in cmd if "/" in x}
while time.time() < deadline and proc.poll() is None:
    if any(glob.glob(os.path.join(d, f"*.tmp.{proc.pid}")) for d in dirs):
        time.sleep(0.2)  # well inside the training loop
        break
    time.sleep(0.05)
if proc.poll() is not None:
    print(f"exited {proc.returncode} before the signal")
    sys.exit(1)
proc.send_signal(getattr(signal, "SIG" + a.signal))
rc = proc.wait(timeout=60)
print(f"killed by signal {-rc}" if rc < 0 else f"exited {rc}")
