"""A backlog of 200 MB is counted streaming, in bounded memory, through the console script."""
from conftest import Run
from measure import run_measured


def test_200_mb_backlog_is_counted_in_bounded_memory(write_config, sim):
    count, payload = 2000, 100_000  # a stuck connection: 2000 issues of 100 kB each
    sim.simulator.update(connections=[{"name": "Stuck", "queues": {"sync-requests": count},
                                       "payload_bytes": payload}])
    config = write_config(timeout="60")
    code, out, err, _, peak_mb = run_measured(["zabbix-exalate", "--config", config, "sync-requests", "Stuck"])
    ran = Run(code, out, err)
    assert (ran.code, ran.stdout, ran.stderr) == (0, f"{count}\n", ""), ran
    assert sim.simulator.requests[-1][1].endswith("/Stuck/syncevents/syncrequests")
    assert peak_mb < 100, f"peak memory {peak_mb:.0f} MB for a {count * payload / 1e6:.0f} MB body"
