"""Start the ranks of a world of processes as torchrun does, for the tests.

  launch.py --world P [--ranks 0,1,...] [--kill R:SECONDS] [--one-gpu] -- COMMAND ...

Starts COMMAND once per rank in --ranks (default: all P) with RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1 and a free MASTER_PORT set;
--kill sends SIGKILL to rank R after SECONDS (a process that dies). Waits for
all (at most 120 s, then kills them and says so) and prints, per rank in
order, "rank R: rc=CODE: LAST STDERR LINE", so that a test can check that
every process ended and what each said. Exits 0.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--world", type=int, required=True)
p.add_argument("--ranks", default="")
p.add_argument("--kill", default="")
p.add_argument("--one-gpu", action="store_true",
               help="LOCAL_RANK=0 for every rank (all on one GPU)")
p.add_argument("command", nargs=argparse.REMAINDER)
a = p.parse_args()
cmd = [x for x in a.command if x != "--"] if a.command[:1] == ["--"] else a.command
ranks = [int(r) for r in a.ranks.split(",")] if a.ranks else list(range(a.world))

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]

procs = {}
for r in ranks:
    env = dict(os.environ, RANK=str(r), WORLD_SIZE=str(a.world), LOCAL_RANK=str(0 if a.one_gpu else r),
               MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    procs[r] = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
if a.kill:
    victim, after = a.kill.split(":")
    time.sleep(float(after))
    procs[int(victim)].send_signal(signal.SIGKILL)

deadline = time.time() + 120
hung = False
errs = {}
for r, proc in procs.items():
    try:
        _, errs[r] = proc.communicate(timeout=max(1, deadline - time.time()))
    except subprocess.TimeoutExpired:
        hung = True
        proc.kill()
        _, errs[r] = proc.communicate()
for r in ranks:
    lines = [l for l in errs[r].splitlines() if l.strip()]
    print(f"rank {r}: rc={procs[r].returncode}: {lines[-1] if lines else ''}")
if hung:
    print("HUNG: a rank did not end within 120 s")
sys.exit(0)
