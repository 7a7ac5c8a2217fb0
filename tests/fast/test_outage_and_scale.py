"""An outage is never a configuration error, and a node of 10,000 connections keeps the timeout and the memory
(issue 15, class 9): the real CLI as a process over the simulator on loopback."""
import json

from helpers import SLACK, Run, run_cli

AGENT_LIMIT = 512 * 1024  # what the Zabbix 6.0 agent takes from a command, newline included
QUEUES = ("sync_requests", "blob_requests", "sync_responses", "blob_responses", "error_responses",
          "blob_error_responses")


def connections(n: int, name: str = "Jira Prod <> ADO {:04d}", **more) -> list:
    return [{"name": name.format(i), "id": 100 + i, "status": "ACTIVE", **more} for i in range(n)]


def agent_document(ran: Run) -> dict:
    """What the agent stores: exit 0, nothing on stderr, one line of JSON within its limit."""
    assert ran.code == 0 and ran.stderr == "", (ran.code, ran.stderr, ran.stdout[:300])
    assert len(ran.stdout.encode()) <= AGENT_LIMIT, f"{len(ran.stdout.encode()) >> 10} KB"
    assert ran.stdout.count("\n") == 1
    return json.loads(ran.stdout)


def test_600_connections_whose_queues_all_answer_401_fit_the_agent_with_a_reason_each(write_config, sim):
    # Basic auth only: each queue is one request refused (a JWT would be minted again and retried once).
    sim.simulator.update(connections=connections(600), faults=[{"path": "2.4/*", "status": 401}])
    ran = run_cli("--config", write_config(timeout="60", max_connections="8", drop=("jwt_secret",)), "collect")
    doc = agent_document(ran)
    assert (doc["ping"], doc["errors"], doc["outgoing"], doc["incoming"]) == (1, 7, 20, 3)
    assert [c["name"] for c in doc["connections"]] == [c["name"] for c in connections(600)]
    for c in doc["connections"]:
        assert set(c["failures"]) == set(QUEUES) and not set(QUEUES) & set(c), "a reason, never a number"
        for queue, reason in c["failures"].items():
            # What the item of this queue shows in Zabbix: which request, and what the node said.
            assert queue.replace("_", "") in reason and "HTTP 401: the credentials" in reason, (queue, reason)
    compacted = doc["compacted"]
    assert "3600 values of 600 connections" in compacted["why"]
    assert [(g["fields"], g["connections"], g["values"]) for g in compacted["reasons"]] == \
        [([q], 600, 600) for q in QUEUES]
    assert all("/relations/{connection}/" in g["reason"] and "HTTP 401: the credentials were rejected; used basic "
               "auth" in g["reason"] for g in compacted["reasons"]), "each reason stated in full once"


def test_5000_connections_out_of_time_fit_the_agent_with_their_reasons_left_out(write_config, sim):
    # A node that stalls on every queue: 30,000 values out of time, the node's own figures read.
    sim.simulator.update(connections=connections(5000, "conn-{:04d}"), faults=[{"path": "2.4/*", "delay": 30}])
    ran = run_cli("--config", write_config(timeout="3"), "collect")
    doc = agent_document(ran)
    assert ran.elapsed <= 3 + SLACK, f"{ran.elapsed:.2f} s for a timeout of 3 s"
    assert (doc["ping"], doc["errors"], doc["outgoing"], doc["incoming"]) == (1, 7, 20, 3)
    assert len(doc["connections"]) == 5000
    for c in doc["connections"]:
        assert c["unread"] == "see compacted" and "failures" not in c and not set(QUEUES) & set(c)
    assert "30000 values of 5000 connections" in doc["compacted"]["why"] and "left out" in doc["compacted"]["why"]
    assert doc["compacted"]["reasons"] == [{"reason": "no complete answer within the timeout of 3 s",
                                            "values": 30000, "fields": list(QUEUES), "connections": 5000}]


def test_a_document_that_fits_is_not_compacted(write_config, sim):
    sim.simulator.update(connections=connections(3), faults=[{"path": "2.4/*", "status": 401}])
    doc = agent_document(run_cli("--config", write_config(drop=("jwt_secret",)), "collect"))
    assert "compacted" not in doc
    assert doc["connections"][0]["failures"]["sync_requests"].startswith(sim.url + "/rest/issuehub/2.4/relations/")


def table(ran: Run) -> list:
    """The rows of status's table: from the one after the header to the first line that is not a row."""
    lines = ran.stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("  connection ")) + 1
    last = next(i for i in range(first, len(lines)) if not lines[i].startswith("  Jira Prod <> ADO "))
    return lines[first:last]


def test_status_of_10000_connections_keeps_the_timeout_and_the_memory(write_config, sim):
    sim.simulator.update(connections=connections(10_000))
    ran = run_cli("--config", write_config(timeout="2.5"), "status", memory=True)
    assert ran.code == 0 and ran.stderr == "", ran.stderr
    assert ran.elapsed <= 2.5 + SLACK, f"{ran.elapsed:.2f} s for a timeout of 2.5 s"
    assert ran.peak_mb < 100, f"peak memory {ran.peak_mb:.0f} MB"
    lines = ran.stdout.splitlines()
    assert "connections 10000" in lines[1]
    assert len(lines) < 150 and max(map(len, lines)) <= 80
    assert len(table(ran)) == 40, "a bounded table"
    text = " ".join(ran.stdout.split())
    assert "and 9960 more connections," in text
    # Most queues are out of time: their connections are counted on one line, not listed one by one.
    assert "more (every queue): no complete answer within the timeout of 2.5 s" in text


def test_status_of_a_large_node_shows_the_connections_with_problems_first(write_config, sim):
    listed = connections(100, queues={"sync-requests": 1}, payload_bytes=8)
    listed[50]["removed"] = True
    listed[77]["queues"] = {"error-responses": 2}
    listed[90]["status"] = "ERROR"
    sim.simulator.update(connections=listed)
    ran = run_cli("--config", write_config(timeout="30"), "status")
    assert ran.code == 0 and ran.stderr == ""
    rows = table(ran)
    assert [r.split()[4] for r in rows] == ["0050", "0077", "0090"] + [f"{i:04d}" for i in range(37)], \
        "unread values, failed syncs or in error first, then the node's order"
    assert rows[1].split()[-2:] == ["2", "0"] and rows[2].split()[5] == "ERROR"
    assert "and 60 more connections, each with every value read and no failed sync" in " ".join(ran.stdout.split())
    assert "Jira Prod <> ADO 0050 (every queue): connection 'Jira Prod <> ADO 0050' not found" in \
        " ".join(ran.stdout.split())


def test_collect_of_10000_connections_keeps_the_timeout_and_the_memory(write_config, sim):
    # Too many for the agent even without a reason (its names alone take 1 MB): the documented refusal, in time.
    sim.simulator.update(connections=connections(10_000))
    ran = run_cli("--config", write_config(timeout="2.5"), "collect", memory=True)
    ran.assert_failed(3, "512 KB", "send")
    assert ran.elapsed <= 2.5 + SLACK, f"{ran.elapsed:.2f} s for a timeout of 2.5 s"
    assert ran.peak_mb < 100, f"peak memory {ran.peak_mb:.0f} MB"


def test_late_workers_print_nothing_after_the_document(write_config, sim):
    # Every queue refuses the minted JWT: workers still in flight at the deadline mint a token again, and the
    # library's warning about the test's short key must not reach stderr (the agent would store it with the value).
    sim.simulator.update(connections=connections(300), faults=[{"path": "2.4/*", "status": 401}])
    doc = agent_document(run_cli("--config", write_config(timeout="1.5"), "collect"))
    assert doc["ping"] == 1
