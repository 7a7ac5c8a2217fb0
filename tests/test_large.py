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


def test_a_single_huge_string_is_refused_quickly(write_config, sim, cli):
    # ijson's time grows with the square of one token's length: 32 MB took 4 s, 300 MB would take minutes.
    import time
    payload = 64 << 20  # without the limit: about 60 s of parsing on this machine
    sim.simulator.update(connections=[{"name": "Huge", "queues": {"sync-requests": 1}, "payload_bytes": payload}])
    started = time.monotonic()
    cli("sync-requests", "Huge", config_path=write_config(timeout="10")).assert_failed(
        9, "single value longer than 8 MB")
    assert time.monotonic() - started < 2.5


def test_many_long_strings_below_the_limit_are_counted(write_config, sim, cli):
    sim.simulator.update(connections=[{"name": "Big", "queues": {"sync-requests": 12}, "payload_bytes": 6 << 20}])
    assert cli("sync-requests", "Big", config_path=write_config(timeout="30")).stdout == "12\n"
