"""Runs a program and reports its wall time and its own peak memory, for the benchmark and the memory test."""
import subprocess
import sys
import tempfile
from typing import Tuple

# On Linux a child's peak memory counts what it held between fork and exec: forked from a large
# process (pytest, the simulator), even curl would seem large. So a small Python process forks
# the program and reports its peak; the floor this leaves is that launcher's size (about 10 MB).
_LAUNCHER = """
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{usage.ru_maxrss} {time.perf_counter() - started}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(argv, env=None, timeout: float = 300) -> Tuple[int, str, str, float, float]:
    """(exit status, stdout, stderr, wall seconds, peak MB) of argv."""
    with tempfile.NamedTemporaryFile("r") as report:
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, report.name, *argv], capture_output=True,
                              text=True, env=env, timeout=timeout)
        peak_kb, elapsed = (float(x) for x in report.read().split())  # timed by the launcher: its start-up is not counted
    return proc.returncode, proc.stdout, proc.stderr, elapsed, peak_kb / 1024
