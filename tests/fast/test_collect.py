"""collect, status and send: the whole node in one run, every value or the reason it has none."""
import json

import pytest

from helpers import BASE_SCENARIO, LOGIN_PASSWORD, PASSWORD, SECRET, SLACK, Run, config_file, free_ports, run_cli
from recording import RecordingServer as SimulatorServer, RecordingSimulator as Simulator
from trapper import Trapper
from zabbix_exalate.exalate.names import key_form

# Each queue's command and its field in the document, written out: the document is a contract (docs/collect.md).
QUEUES = {"sync-requests": "sync_requests", "blob-requests": "blob_requests", "sync-responses": "sync_responses",
          "blob-responses": "blob_responses", "error-responses": "error_responses",
          "blob-error-responses": "blob_error_responses"}


def many_connections(n: int = 60) -> list:
    return [{"name": f"Conn {i:02d}", "id": i, "status": "DEACTIVATED" if i % 7 == 0 else "ACTIVE",
             "queues": {q: (i + j) % 5 for j, q in enumerate(QUEUES)}, "payload_bytes": 64} for i in range(n)]


def document(ran: Run) -> dict:
    assert ran.code == 0 and ran.stderr == "", ran
    assert ran.stdout.count("\n") == 1 and ran.stdout.endswith("}\n"), "one compact line"
    return json.loads(ran.stdout)


def expected_connection(c: dict) -> dict:
    """A connection of many_connections as the document shows it, but for its newest failures' texts: each queue's
    size, its head (the simulator's queues start at syncEventId 1000) when it holds any, the failures by reason
    (the simulator's default reasons), and the newest failure's id and issue."""
    found = {"name": c["name"], "key": key_form(c["name"]), "id": c["id"], "status": c["status"]}
    for queue, field in QUEUES.items():
        count = c["queues"].get(queue, 0)
        found[field] = count
        if count:
            found[field + "_oldest"] = 1000
        reason, last = {"error-responses": ("NO_ISSUE_TO_CONNECT_TO", "last_error"),
                        "blob-error-responses": ("CHECKSUM_MISMATCH", "last_blob_error")}.get(queue, (None, None))
        if reason:
            found[field.replace("_responses", "_reasons")] = {reason: count} if count else {}
            if count:
                found[last] = {"id": 999 + count, "issue": f"C-{999 + count}", "reason": reason}
    return found


def without_messages(connection: dict) -> dict:
    """The connection with its newest failures' messages left out (checked apart)."""
    return {k: ({f: v for f, v in value.items() if f != "message"} if k.startswith("last_") else value)
            for k, value in connection.items()}


def test_a_node_with_sixty_connections_in_one_run(write_config, cli, sim):
    connections = many_connections(60)
    sim.simulator.update(connections=connections)
    doc = document(cli("collect", config_path=write_config(timeout="20")))
    assert doc["ping"] == 1 and 0 < doc["response_time"] < 5
    assert (doc["errors"], doc["outgoing"], doc["incoming"]) == (7, 20, 3)
    assert [without_messages(c) for c in doc["connections"]] == [expected_connection(c) for c in connections]
    messages = [c[last]["message"] for c in doc["connections"] for last in ("last_error", "last_blob_error")
                if last in c]
    assert messages and all(m.startswith(("Could not connect `C-", "Checksums for blob id")) for m in messages)
    assert "failures" not in doc
    assert len(sim.simulator.requests) == 4 + 6 * 60, "each endpoint once"


def test_one_login_and_at_most_max_connections_kept_alive(tmp_path, scenario):
    scenario["connections"] = many_connections(20)
    scenario["faults"] = [{"path": "2.4/*", "delay": 0.01}]  # so that requests overlap
    with SimulatorServer(Simulator(scenario)) as server:
        cache = tmp_path / "cache"
        cache.mkdir(mode=0o700)
        path = config_file(tmp_path / "c.conf", server.url, login_password=LOGIN_PASSWORD, user="monitor",
                           password=PASSWORD, token_cache=cache, max_connections=3, timeout=20)
        doc = document(run_cli("--config", path, "collect"))
        assert len(doc["connections"]) == 20 and "failures" not in doc
        assert server.simulator.logins == 1
        assert server.peak_in_flight == 3, "max_connections requests in flight, no more"
        assert server.connections <= 3, f"{server.connections} TCP connections for {4 + 6 * 20} requests"


def test_a_failing_endpoint_loses_only_its_own_value(cli, sim):
    sim.simulator.update(faults=[{"path": "2.4/relations/AllContent/syncevents/blobrequests", "status": 500},
                                 {"path": "4.0/cmonitor", "html": True}])
    doc = document(cli("collect"))
    all_content = doc["connections"][0]
    assert "blob_requests" not in all_content and all_content["sync_requests"] == 1
    assert all_content["failures"] == {"blob_requests": pytest.approx(all_content["failures"]["blob_requests"])}
    assert "HTTP 500" in all_content["failures"]["blob_requests"]
    assert "errors" not in doc and "HTML" in doc["failures"]["errors"]
    assert set(doc["failures"]) == {"errors"} and doc["ping"] == 1 and doc["outgoing"] == 20


def test_the_single_check_prints_the_same_reason(cli, sim):
    sim.simulator.update(faults=[{"path": "2.4/relations/AllContent/syncevents/blobrequests", "status": 503}])
    reason = document(cli("collect"))["connections"][0]["failures"]["blob_requests"]
    single = cli("blob-requests", "AllContent")
    assert single.stderr == f"zabbix-exalate: [default] {reason}\n"


def test_a_removed_connection_carries_not_found_for_each_queue(cli):
    gone = document(cli("collect"))["connections"][1]
    assert gone["name"] == "Gone" and set(gone["failures"]) == set(QUEUES.values())
    assert all("not found" in reason for reason in gone["failures"].values())
    assert not set(QUEUES.values()) & set(gone), "no number stands in for a queue that could not be read"
    # The node still lists it as ACTIVE; its own "not found ... removed" answer says what it is.
    assert gone["status"] == "REMOVED"


def test_only_the_node_s_not_found_answer_makes_a_connection_removed(cli, sim):
    sim.simulator.update(faults=[{"path": "2.4/relations/AllContent/syncevents/syncrequests", "status": 503}])
    doc = document(cli("collect"))
    assert [c["status"] for c in doc["connections"]] == ["ACTIVE", "REMOVED"]
    assert "HTTP 503" in doc["connections"][0]["failures"]["sync_requests"]


def test_a_node_that_is_down_is_a_document_with_ping_0(write_config, cli, sim):
    path = write_config()
    sim.stop()
    doc = document(cli("collect", config_path=path))
    assert doc["ping"] == 0
    assert set(doc) == {"ping", "credentials", "failures"}
    # No list: nothing says any connection was removed; no answer: nothing says the credentials were refused.
    assert doc["credentials"] == "unknown"
    assert set(doc["failures"]) == {"ping", "response_time", "errors", "outgoing", "incoming", "connections"}
    assert all("cannot connect" in reason for reason in doc["failures"].values())


def test_wrong_credentials_are_reasons_not_numbers(write_config, cli):
    doc = document(cli("collect", config_path=write_config(password="wrong", jwt_secret="wrong-secret")))
    assert doc["ping"] == 0 and "HTTP 401" in doc["failures"]["ping"]
    assert doc["credentials"] == "refused"
    # Refused by the login too (POST 4.0/authenticate), with basic auth left out.
    doc = document(cli("collect", config_path=write_config(drop=("user", "password", "jwt_secret"),
                                                           login_password="wrong")))
    assert doc["ping"] == 0 and doc["credentials"] == "refused", doc


def test_credentials_accepted_when_the_ping_request_is_answered(cli, sim):
    doc = document(cli("collect"))
    assert list(doc)[:3] == ["ping", "response_time", "credentials"]
    assert doc["credentials"] == "accepted"
    # Another request failing (the node's own error) is not a refusal of the credentials.
    sim.simulator.update(faults=[{"path": "4.0/syncevents", "status": 500}])
    doc = document(cli("collect"))
    assert doc["ping"] == 0 and doc["credentials"] == "unknown"


def test_the_deadline_ends_the_run_and_names_what_was_late(write_config, sim):
    sim.simulator.update(faults=[{"path": "2.4/relations/AllContent/syncrequests/*", "delay": 5}])
    ran = run_cli("--config", write_config(timeout="1.5"), "collect")
    doc = document(ran)
    # The budget counts from the process's start, Python's own start-up included.
    assert ran.elapsed <= 1.5 + SLACK, f"{ran.elapsed:.2f} s for a timeout of 1.5 s"
    all_content = doc["connections"][0]
    assert all_content["sync_requests"] == 1 and all_content["blob_requests"] == 2
    late = {k: v for k, v in all_content["failures"].items()}
    assert set(late) == {"sync_responses", "blob_responses", "error_responses", "blob_error_responses"}
    assert all("timeout of 1.5 s" in reason for reason in late.values())
    assert doc["ping"] == 1 and doc["errors"] == 7


def test_a_slow_ping_leaves_no_time_and_says_so(write_config, sim):
    sim.simulator.update(faults=[{"path": "4.0/syncevents", "delay": 3}])
    doc = document(run_cli("--config", write_config(timeout="1"), "collect"))
    assert doc["ping"] == 0 and "timeout of 1 s" in doc["failures"]["ping"]
    assert set(doc["failures"]) == {"ping", "response_time", "outgoing", "errors", "incoming", "connections"}


@pytest.mark.parametrize("name", ["Sales/EU", "a b <> c", "Ünïcödé ✓", "100% done", "x,y", "-starts-with-dash",
                                  "tab\there"])
def test_odd_connection_names(cli, sim, name):
    sim.simulator.update(connections=[{"name": name, "id": 1, "status": "ACTIVE", "queues": {"sync-requests": 4}}])
    connection = document(cli("collect"))["connections"][0]
    assert (connection["name"], connection["key"], connection["sync_requests"]) == (name, key_form(name), 4)


def test_connections_from_the_configuration_when_the_node_lists_none(write_config, cli, sim):
    sim.simulator.update(list_connections=False)
    doc = document(cli("collect", config_path=write_config(connections="\n AllContent")))
    assert doc["connections"][0]["status"] == "CONFIGURED" and doc["connections"][0]["sync_requests"] == 1


def test_a_configuration_mistake_is_not_an_outage(cli, tmp_path):
    cli("collect", config_path=str(tmp_path / "missing.conf")).assert_failed(3, "does not exist")


def test_max_connections_must_be_sensible(write_config, cli):
    cli("collect", config_path=write_config(max_connections="0")).assert_failed(3, "max_connections")


def test_a_document_too_big_for_the_agent_points_to_send(write_config, cli, sim):
    # A healthy node whose own figures do not fit: 600 connections with long names, each with failed syncs (an
    # outage's reasons, which can be compacted, are tests/fast/test_outage_and_scale.py's).
    sim.simulator.update(connections=[{"name": f"{i:03d}" + "x" * 250, "payload_bytes": 8,
                                       "queues": {"error-responses": 1, "blob-error-responses": 1}}
                                      for i in range(600)])
    cli("collect", config_path=write_config(timeout="30", max_connections="8")).assert_failed(3, "512 KB", "send")


def test_a_200_mb_backlog_keeps_the_memory_of_the_single_check(write_config, sim):
    count, payload = 2000, 100_000
    sim.simulator.update(connections=[{"name": "Stuck", "queues": {"sync-requests": count}, "payload_bytes": payload},
                                      *many_connections(10)])
    ran = run_cli("--config", write_config(timeout="60"), "collect", memory=True)
    doc = document(ran)
    assert doc["connections"][0]["sync_requests"] == count
    assert ran.peak_mb < 100, f"peak memory {ran.peak_mb:.0f} MB for a {count * payload / 1e6:.0f} MB body"


def test_an_empty_timeout_means_the_default(cli):
    # The template passes {$EXALATE.COLLECT.TIMEOUT}; an operator may leave it empty.
    assert document(cli("--timeout", "", "collect"))["ping"] == 1


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_a_bad_timeout_is_a_usage_error(cli, value):
    ran = cli("--timeout", value, "collect")
    assert ran.code == 2 and ran.stdout == ""


# -- ping: a configuration mistake is not "node down" -------------------------------------------

def test_ping_without_configuration_is_unsupported_not_down(cli, tmp_path):
    cli("ping", config_path=str(tmp_path / "missing.conf")).assert_failed(3, "does not exist")


def test_ping_with_a_missing_section_is_unsupported_not_down(cli):
    cli("--node", "typo", "ping").assert_failed(3, "no section [typo]")


# -- status -------------------------------------------------------------------------------------

def test_status_shows_figures_table_and_reasons_within_80_columns(write_config, cli, sim):
    sim.simulator.update(connections=[*BASE_SCENARIO["connections"],
                                      {"name": "A connection with a very long name indeed, longer than the column",
                                       "id": 3, "status": "DEACTIVATED", "queues": {"sync-requests": 4321},
                                       "payload_bytes": 4}],
                         faults=[{"path": "4.0/syncrequests", "status": 502}])
    ran = cli("status")
    assert ran.code == 0 and ran.stderr == "", ran
    lines = ran.stdout.splitlines()
    assert lines[0].startswith("Exalate node [default]: up, answered in ")
    assert "errors 7" in lines[1] and "outgoing 20" in lines[1] and "incoming ?" in lines[1]
    assert max(len(line) for line in lines) <= 80, ran.stdout
    row = next(line for line in lines if line.lstrip().startswith("AllContent"))
    assert row.split()[1:] == ["ACTIVE", "1", "2", "3", "4", "5", "6"]
    assert any("4321" in line and "DEACTIVATED" in line for line in lines)
    gone = next(line for line in lines if line.lstrip().startswith("Gone") and "REMOVED" in line)
    assert gone.split()[2:] == ["?"] * 6
    text = " ".join(ran.stdout.split())
    assert "incoming: " in text and "HTTP 502" in text
    assert "Gone (every queue): connection 'Gone' not found" in text
    assert "{" not in ran.stdout, "no JSON for a person"


def test_status_of_a_node_that_is_down(write_config, cli, sim):
    path = write_config()
    sim.stop()
    ran = cli("status", config_path=path)
    assert ran.code == 0 and ran.stdout.startswith("Exalate node [default]: DOWN")
    assert "cannot connect" in ran.stdout


def test_status_tells_refused_credentials_and_a_removed_connection(write_config, cli):
    ran = cli("status")
    gone = next(line for line in ran.stdout.splitlines() if line.lstrip().startswith("Gone"))
    assert gone.split()[1:] == ["REMOVED"] + ["?"] * 6, gone
    ran = cli("status", config_path=write_config(password="wrong", jwt_secret="wrong-secret"))
    assert ran.code == 0 and ran.stdout.startswith("Exalate node [default]: CREDENTIALS REFUSED"), ran.stdout
    assert "HTTP 401" in ran.stdout


def test_status_with_a_configuration_mistake_fails_like_collect(cli):
    cli("--node", "nope", "status").assert_failed(3, "no section [nope]")


# -- send ---------------------------------------------------------------------------------------

def test_send_pushes_the_document_to_the_trapper(config, sim, tmp_path):
    agent_conf = tmp_path / "zabbix_agentd.conf"
    with Trapper() as trapper:
        agent_conf.write_text(f"# an agent's configuration\nServerActive=127.0.0.1:{trapper.port}\n"
                              f"Hostname=exalate-node-1\n")
        ran = run_cli("--config", config, "send", "--agent-config", str(agent_conf))
    assert ran.code == 0 and ran.stderr == "", ran
    assert "accepted" in ran.stdout and "exalate-node-1" in ran.stdout and "2 connections" in ran.stdout
    [value] = trapper.received
    assert (value["host"], value["key"]) == ("exalate-node-1", "exalate.collect")
    sent = json.loads(value["value"])
    assert sent["ping"] == 1 and sent["connections"][0]["sync_requests"] == 1


def test_send_with_server_host_and_key_options(write_config, sim):
    with Trapper() as trapper:
        ran = run_cli("--config", write_config(section="prod"), "--node", "prod", "send",
                      "--server", f"127.0.0.1:{trapper.port}", "--host", "jira-prod", "--agent-config", "/nonexistent")
    assert ran.code == 0, ran
    assert [(v["host"], v["key"]) for v in trapper.received] == [("jira-prod", "exalate.collect")]


def test_send_of_a_node_that_is_down_still_sends(write_config, sim):
    path = write_config()
    sim.stop()
    with Trapper() as trapper:
        ran = run_cli("--config", path, "send", "--server", f"127.0.0.1:{trapper.port}", "--host", "h")
    assert ran.code == 0, ran
    assert json.loads(trapper.received[0]["value"])["ping"] == 0


def test_send_refused_by_zabbix_says_what_to_check(config, sim):
    with Trapper(accept=False) as trapper:
        ran = run_cli("--config", config, "send", "--server", f"127.0.0.1:{trapper.port}", "--host", "h")
    ran.assert_failed(10, "did not accept", "failed 1", "trapper")


def test_send_with_no_zabbix_listening(config, sim):
    (port,) = free_ports()
    run_cli("--config", config, "send", "--server", f"127.0.0.1:{port}", "--host", "h").assert_failed(
        8, "cannot connect to Zabbix", str(port))


def test_send_refuses_an_agent_configuration_that_wants_tls(config, sim, tmp_path):
    agent_conf = tmp_path / "zabbix_agentd.conf"
    agent_conf.write_text("ServerActive=127.0.0.1\nTLSConnect=psk\nTLSPSKIdentity=x\n")
    run_cli("--config", config, "send", "--agent-config", str(agent_conf)).assert_failed(3, "TLSConnect")


def test_nothing_secret_is_sent(config, sim):
    sim.simulator.update(faults=[{"path": "4.0/cmonitor", "status": 418}])
    with Trapper() as trapper:
        run_cli("--config", config, "send", "--server", f"127.0.0.1:{trapper.port}", "--host", "h")
    assert SECRET not in trapper.received[0]["value"]
