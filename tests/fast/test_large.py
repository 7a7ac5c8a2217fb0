"""A backlog of 200 MB is counted streaming, in bounded memory, through the console script."""
from helpers import assert_contract, run_cli


def test_200_mb_backlog_is_counted_in_bounded_memory(write_config, sim):
    count, payload = 2000, 100_000  # a stuck connection: 2000 issues of 100 kB each
    sim.simulator.update(connections=[{"name": "Stuck", "queues": {"sync-requests": count},
                                       "payload_bytes": payload}])
    config = write_config(timeout="60")
    ran = run_cli("--config", config, "sync-requests", "Stuck", memory=True)
    assert (ran.code, ran.stdout, ran.stderr) == (0, f"{count}\n", ""), ran
    assert sim.simulator.requests[-1][1].endswith("/Stuck/syncevents/syncrequests")
    assert ran.peak_mb < 100, f"peak memory {ran.peak_mb:.0f} MB for a {count * payload / 1e6:.0f} MB body"


def test_a_single_huge_string_is_refused_quickly(write_config, sim, cli):
    # ijson's time grows with the square of one token's length: 32 MB took 4 s, 300 MB would take minutes.
    # Quickly means within the timeout: parsed whole, the value would end in a timeout (exit 7), not a refusal.
    payload = 64 << 20  # without the limit: about 60 s of parsing on this machine
    sim.simulator.update(connections=[{"name": "Huge", "queues": {"sync-requests": 1}, "payload_bytes": payload}])
    ran = cli("sync-requests", "Huge", config_path=write_config(timeout="3"))
    assert_contract(ran, 9, "single value longer than 8 MB", timeout=3)


def test_many_long_strings_below_the_limit_are_counted(write_config, sim, cli):
    sim.simulator.update(connections=[{"name": "Big", "queues": {"sync-requests": 12}, "payload_bytes": 6 << 20}])
    assert cli("sync-requests", "Big", config_path=write_config(timeout="30")).stdout == "12\n"
