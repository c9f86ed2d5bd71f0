"""Probe weipipe-run's memory check with limits around the plan's total.

  check_memory_limit.py WEIPIPE_RUN ARTIFACT DATA

Reads the plan's total and AdamW bytes from the refusal at --memory-limit 1,
then runs with total - AdamW (everything but the optimizer state: must be
refused) and with the total itself (must train). Prints one line each.
"""
import re
import subprocess
import sys

run, art, data = sys.argv[1:4]


def attempt(limit):
    return subprocess.run([run, art, "--data", data, "--steps", "1", "--quiet",
                           "--memory-limit", str(limit)], capture_output=True, text=True)


p = attempt(1)
m = re.search(r"the plan needs .*?\((\d+) bytes: .*AdamW state (\d+) bytes", p.stderr)
if not m:
    sys.exit(f"FAIL: no plan in: {p.stderr}")
total, adam = int(m.group(1)), int(m.group(2))
q = attempt(total - adam)
print("without the AdamW state: " + ("refused" if q.returncode == 1 and "over --memory-limit"
                                     in q.stderr else f"exit {q.returncode}: {q.stderr}"))
r = attempt(total)
print("the exact total: " + ("trains" if r.returncode == 0 else f"exit {r.returncode}: {r.stderr}"))
