"""The simulator as users run it (simulate, demo), and its scenario files."""
import json
import os
import signal
import statistics
import subprocess
import threading
import time
import warnings

import jwt
import pytest
import requests

from helpers import PASSWORD, SECRET, run_cli
from recording import RecordingServer as SimulatorServer, RecordingSimulator as Simulator


def test_demo_shows_every_check_and_the_failures(tmp_path):
    ran = run_cli("demo", env={"HOME": str(tmp_path)})
    assert ran.code == 0 and ran.stderr == "", ran
    lines = ran.stdout.splitlines()
    row = next(line for line in lines if line.strip().startswith("ADO <> Jira Prod"))
    assert row.split()[-7:] == ["ACTIVE", "12", "4", "0", "0", "3", "1"]
    assert any(line.split()[:3] == ["errors", "Errors", "reported"] and line.split()[-1] == "2" for line in lines)
    assert "connection 'Zendesk support' not found" in ran.stdout
    for words in ("HTTP 503", "HTML page", "timeout of 1 s", "cut off"):
        assert words in ran.stdout
    # The one-run view: the same numbers, and the removed connection's reason once for its six queues.
    whole = ran.stdout[ran.stdout.index("The whole node in one run"):]
    assert "Exalate node [demo]: up, answered in" in whole
    assert "errors 2   outgoing 20   incoming 4   connections 4" in whole
    assert "Zendesk support (every queue): connection 'Zendesk support' not found" in " ".join(whole.split())


def test_simulate_serves_a_scenario_file_and_rereads_it(tmp_path):
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({"credentials": {"jwt_secret": "x" * 32}, "outgoing": 5}))
    config = tmp_path / "sim.conf"
    # Ctrl-C as a terminal delivers it, to a process that has its default handler: a shell without job control
    # starts background commands (nohup ... &) with SIGINT ignored, which Python then keeps.
    proc = subprocess.Popen(["zabbix-exalate", "simulate", "--port", "0", "--scenario", str(scenario),
                             "--write-config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        banner = proc.stderr.readline() + proc.stderr.readline()
        assert "listening on http://127.0.0.1:" in banner, banner
        assert os.stat(config).st_mode & 0o777 == 0o600
        assert run_cli("--config", str(config), "outgoing").stdout == "5\n"
        time.sleep(0.01)  # a new modification time, even on coarse file systems
        scenario.write_text(json.dumps({"credentials": {"jwt_secret": "x" * 32}, "outgoing": 9}))
        os.utime(scenario, ns=(time.time_ns(), time.time_ns() + 10 ** 9))
        assert run_cli("--config", str(config), "outgoing").stdout == "9\n"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0


def test_simulate_refuses_a_bad_scenario(tmp_path):
    scenario = tmp_path / "bad.json"
    scenario.write_text(json.dumps({"connections": [{"name": "A", "queues": {"nonsense": 1}}]}))
    ran = run_cli("simulate", "--port", "0", "--scenario", str(scenario))
    ran.assert_failed(3, "unknown queue 'nonsense'")


@pytest.mark.parametrize("scenario, words", [
    ([], "a JSON object"),
    ({"errors": -1}, "errors must be a whole number"),
    ({"connections": [{"id": 1}]}, "needs a name"),
    ({"faults": [{"delay": 1}]}, "needs a path"),
])
def test_scenario_validation(scenario, words):
    with pytest.raises(ValueError, match=words):
        Simulator(scenario)


def _session() -> requests.Session:
    """A client as `collect` is: one session, its connection kept alive, credentials for either API."""
    session = requests.Session()
    session.auth = ("monitor", PASSWORD)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the test secret is shorter than pyjwt recommends
        session.headers["X-exalate-jwt"] = jwt.encode({"iss": "EXALATE", "user": "", "exp": int(time.time()) + 600},
                                                      SECRET, algorithm="HS256")
    return session


def test_a_kept_alive_connection_answers_without_a_stall(sim):
    # Headers and body went out as two writes with Nagle on: each request then waited about 40 ms
    # for the client's delayed ACK, and 20 requests took 0.8 s instead of a few milliseconds.
    urls = [sim.url + "/rest/issuehub/4.0/syncevents?limit=0",
            sim.url + "/rest/issuehub/2.4/relations/AllContent/syncevents/syncrequests"]
    with _session() as session:
        for url in urls:
            session.get(url).raise_for_status()  # connecting is not what is timed
        answers, times = [], []
        for i in range(20):
            started = time.perf_counter()
            answers.append(session.get(urls[i % 2]))
            times.append(time.perf_counter() - started)
    assert sim.connections == 1
    assert [a.status_code for a in answers] == [200] * 20
    assert [len(a.json()) if i % 2 else a.json()["total"] for i, a in enumerate(answers)] == [20, 1] * 10
    # The median, not the sum: a busy machine may hold up a few requests, the stall holds up every one.
    assert statistics.median(times) < 0.02, f"20 requests over one kept-alive connection took {sum(times):.3f} s"


def test_many_kept_alive_connections_at_once():
    # collect keeps up to max_connections sessions open at once. Replies here span several writes, and
    # the first request of each client waits on the node, so that all of them are in flight together.
    scenario = {"credentials": {"jwt_secret": SECRET, "user": "monitor", "password": PASSWORD}, "outgoing": 4,
                "connections": [{"name": f"C{i}", "payload_bytes": 5_000,
                                 "queues": {"sync-requests": 20 * i, "blob-requests": i}} for i in range(8)],
                "faults": [{"path": "4.0/syncevents", "delay": 0.3}]}
    results, failures = {}, []
    start = threading.Barrier(8)

    def client(i: int) -> None:
        try:
            base = server.url + f"/rest/issuehub/2.4/relations/C{i}/syncevents/"
            with _session() as session:
                start.wait(10)
                counts = [session.get(server.url + "/rest/issuehub/4.0/syncevents?limit=0").json()["total"]]
                counts += [len(session.get(base + queue).json())
                           for _ in range(5) for queue in ("syncrequests", "blobrequests")]
                results[i] = counts
        except Exception as exc:  # reported below, with the others'
            failures.append(repr(exc))

    with SimulatorServer(Simulator(scenario)) as server:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not failures and not server.errors, (failures, server.errors)
        assert (server.connections, server.peak_in_flight, server.in_flight) == (8, 8, 0)
    assert results == {i: [4] + [20 * i, i] * 5 for i in range(8)}
