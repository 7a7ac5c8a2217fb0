"""A backlog of 200 MB is counted streaming, in bounded memory, through the console script."""
import os
import subprocess

from conftest import Run


def test_200_mb_backlog_is_counted_in_bounded_memory(write_config, sim):
    count, payload = 2000, 100_000  # a stuck connection: 2000 issues of 100 kB each
    sim.simulator.update(connections=[{"name": "Stuck", "queues": {"sync-requests": count},
                                       "payload_bytes": payload}])
    config = write_config(timeout="60")
    proc = subprocess.Popen(["zabbix-exalate", "--config", config, "sync-requests", "Stuck"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait4 rather than wait: it gives this child's own peak memory (the output is too small to block).
    _, status, usage = os.wait4(proc.pid, 0)
    ran = Run(os.waitstatus_to_exitcode(status), proc.stdout.read(), proc.stderr.read())
    proc.stdout.close()
    proc.stderr.close()
    proc.returncode = ran.code
    assert (ran.code, ran.stdout, ran.stderr) == (0, f"{count}\n", ""), ran
    _, raw_path, _ = sim.simulator.requests[-1]
    assert raw_path.endswith("/Stuck/syncevents/syncrequests")
    peak_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    assert peak_mb < 100, f"peak memory {peak_mb:.0f} MB for a {count * payload / 1e6:.0f} MB body"
