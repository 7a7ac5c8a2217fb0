"""Exalate by HTTP: the template's JavaScript, run in Zabbix's own engine (zabbix_js), reads a node as collect does."""
import copy
import json
import os
import subprocess
import tempfile
import time
import warnings

import jwt
import pytest

from helpers import (BASE_SCENARIO, LOGIN_PASSWORD, PASSWORD, SECRET, SLACK, USER, assert_no_secret, config_file,
                     invoke, require_binary)
from hostile_server import Answer, HostileServer, big_string_body
from recording import RecordingServer as SimulatorServer, RecordingSimulator as Simulator
from zabbix_exalate.zabbix.httpscript import TOO_LARGE, http_script

MONITOR_USER, MONITOR_PASSWORD = "cmonitor", "monitor-pa55-word"
TOKEN_SECRETS = (MONITOR_PASSWORD,)

# Connections whose names take every path of the key form: twins (tagged keys), a name too long to show, one too
# long to keep, characters a URL and a key must encode, one that looks tagged; and failures counted by reason.
ODD = [
    {"name": "Twin", "id": 31, "queues": {"sync-requests": 2}},
    {"name": "Twin", "id": 30, "queues": {"blob-requests": 1}},
    {"name": "Twin", "id": 2 ** 53 + 1},  # beyond what a double holds: its digits kept
    {"name": "Big", "id": -(10 ** 40)},
    {"name": "ADO <> Jira/Prod é\U0001F600 ~*'()", "id": "x-7", "status": "DEACTIVATED",
     "queues": {"error-responses": 3}, "error_reasons": ["SCRIPT_ERROR", "  ", "NO_ISSUE_TO_CONNECT_TO"]},
    {"name": "n" * 97, "id": 40, "queues": {"blob-error-responses": 2}},
    {"name": "looks tagged (0123456789ab)", "id": 41},
    {"name": "l" * 16385, "id": 42},
]


def scenario(**changes) -> dict:
    s = copy.deepcopy(BASE_SCENARIO)
    s["connections"] += copy.deepcopy(ODD)
    s["credentials"].update(monitor_user=MONITOR_USER, monitor_password=MONITOR_PASSWORD)
    s.update(changes)
    return s


def run_script(params: dict, timeout: int = 10):
    """The Script item run by zabbix_js as the server runs it: its parameters as the JSON object in value.
    Returns (exit status, what it printed, seconds)."""
    require_binary("zabbix_js")
    with tempfile.TemporaryDirectory() as directory:
        script, data = os.path.join(directory, "script.js"), os.path.join(directory, "params.json")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write(http_script())
        with open(data, "w", encoding="utf-8") as handle:
            json.dump(params, handle)
        started = time.monotonic()
        ran = subprocess.run(["zabbix_js", "-s", script, "-i", data, "-t", str(timeout)], capture_output=True,
                             text=True, timeout=timeout + 30)
        return ran.returncode, ran.stdout + ran.stderr, time.monotonic() - started


def http_document(params: dict, timeout: int = 10) -> dict:
    code, out, _ = run_script(params, timeout)
    assert code == 0, out
    assert_no_secret(out, secrets=TOKEN_SECRETS)
    return json.loads(out)


def collect_document(tmp_path, **keys) -> dict:
    path = config_file(tmp_path / "zabbix_exalate.conf", token_cache="off", timeout="10", **keys)
    ran = invoke("--config", path, "collect")
    assert ran.code == 0, ran
    return json.loads(ran.stdout)


def same(doc: dict) -> dict:
    doc = dict(doc)
    doc.pop("response_time", None)
    return doc


def static_token() -> str:
    with warnings.catch_warnings():  # the test secret is shorter than RFC 7518 recommends: a node may use one
        warnings.simplefilter("ignore")
        return jwt.encode({"iss": "EXALATE", "user": "", "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")


# Each way the command's configuration offers to authenticate, as the section's keys (the macros take the same).
MODES = {
    "minted JWT and Jira basic": dict(jwt_secret=SECRET, user=USER, password=PASSWORD),
    "Jira basic only": dict(user=USER, password=PASSWORD),
    "static token": dict(token=static_token),
    "logging in": dict(login_password=LOGIN_PASSWORD),
    "monitor user and minted JWT": dict(monitor_user=MONITOR_USER, monitor_password=MONITOR_PASSWORD,
                                        jwt_secret=SECRET),
}


@pytest.mark.parametrize("mode", MODES)
def test_the_document_equals_collects_field_for_field(tmp_path, mode):
    keys = {k: v() if callable(v) else v for k, v in MODES[mode].items()}
    with SimulatorServer(Simulator(scenario())) as sim:
        expected = collect_document(tmp_path, url=sim.url, **keys)
        found = http_document({"url": sim.url, "timeout": "10s", **keys})
    assert expected["ping"] == 1 and len(expected["connections"]) == 2 + len(ODD), expected
    assert found["ping"] == 1 and 0 <= found["response_time"] < 5
    assert same(found) == same(expected)
    assert [c["status"] for c in found["connections"]][:2] == ["ACTIVE", "REMOVED"]


def test_a_name_equal_to_a_short_secret_keeps_its_name_and_its_key(tmp_path):
    # Names and keys are masked only for secrets of 8 characters or more (masking.py): a 4-character password
    # that is also a connection's name masks neither the name nor its 8-character key form, in either reader.
    s = scenario()
    s["credentials"]["password"] = "00<<"
    s["connections"].append({"name": "00<<", "id": 990})
    with SimulatorServer(Simulator(s)) as sim:
        expected = collect_document(tmp_path, url=sim.url, user=USER, password="00<<")
        found = http_document({"url": sim.url, "timeout": "10s", "user": USER, "password": "00<<"})
    assert same(found) == same(expected)
    assert [(c["name"], c["key"]) for c in found["connections"] if c["id"] == 990] == [("00<<", "00%3C%3C")]


def test_a_node_that_refuses_the_credentials(tmp_path):
    with SimulatorServer(Simulator(scenario())) as sim:
        keys = dict(user=USER, password="not-the-" + PASSWORD)
        expected = collect_document(tmp_path, url=sim.url, **keys)
        found = http_document({"url": sim.url, "timeout": "10s", **keys})
    # The reasons name the macros where collect names the configuration file: the same fields, the same words.
    assert set(found.pop("failures")) == set(expected.pop("failures"))
    assert same(found) == same(expected)
    assert found["credentials"] == "refused" and found["ping"] == 0 and "connections" not in found
    assert_no_secret(json.dumps(found), secrets=["not-the-" + PASSWORD])


FAULTS = {
    # fault at the outgoing total (the ping): the document's reason for it
    "401": ({"status": 401}, "outgoing", "answered HTTP 401: the credentials were rejected", "refused"),
    "403": ({"status": 403}, "outgoing", "answered HTTP 403: the credentials were not accepted", "refused"),
    "500": ({"status": 500}, "outgoing", "answered HTTP 500 Internal Server Error: the node has a problem", "unknown"),
    "HTML login page": ({"html": True}, "outgoing", "answered with an HTML page instead of JSON", "unknown"),
    "HTML without its content type": ({"body": "<html><body>Log in</body></html>", "content_type": "text/plain"},
                                      "outgoing", "is an HTML page, not JSON", "unknown"),
    "truncated body": ({"truncate": True}, "outgoing", "the answer was cut off before its end", "unknown"),
    "not JSON": ({"body": "{\"total\": 20", "content_type": "application/json"}, "outgoing", "is not valid JSON",
                 "unknown"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_of_the_ping_request_is_its_reason(fault):
    answer, field, reason, credentials = FAULTS[fault]
    with SimulatorServer(Simulator(scenario(faults=[{"path": "4.0/syncevents", **answer}]))) as sim:
        found = http_document({"url": sim.url, "jwt_secret": SECRET, "user": USER, "password": PASSWORD,
                               "timeout": "10s"})
    assert field not in found and reason in found["failures"][field]
    assert found["ping"] == 0 and found["failures"]["ping"] == found["failures"][field]
    assert found["credentials"] == credentials
    assert found["errors"] == 7 and len(found["connections"]) == 2 + len(ODD)  # the other reads go on


def test_a_removed_connection_says_so_on_every_queue(sim):
    found = http_document({"url": sim.url, "jwt_secret": SECRET, "user": USER, "password": PASSWORD})
    gone = found["connections"][1]
    assert gone["status"] == "REMOVED" and set(gone) == {"name", "key", "id", "status", "failures"}
    assert len(gone["failures"]) == 6 and all(
        f.startswith("connection 'Gone' not found on 127.0.0.1:") for f in gone["failures"].values())


def test_a_queue_too_large_for_the_engine_is_a_reason_not_a_crash():
    s = scenario()
    s["connections"][0]["queues"]["sync-requests"] = 1500  # about 3.5 MB with the simulator's 2 KB payloads
    with SimulatorServer(Simulator(s)) as sim:
        found = http_document({"url": sim.url, "jwt_secret": SECRET, "user": USER, "password": PASSWORD})
    first = found["connections"][0]
    assert "sync_requests" not in first and first["failures"]["sync_requests"].endswith(TOO_LARGE)
    assert first["blob_requests"] == 2 and found["ping"] == 1


def test_a_body_larger_than_the_engine_holds_is_a_reason_not_a_crash():
    body, length = big_string_body(80)
    with HostileServer() as node:
        node.route("GET", "*/4.0/syncevents*", Answer(body=body, length=length))
        node.route("GET", "*/4.0/cmonitor", Answer(body=b'{"numErrors": 3}'))
        found = http_document({"url": node.url, "user": USER, "password": PASSWORD}, timeout=20)
    assert found["errors"] == 3 and found["failures"]["outgoing"].endswith(TOO_LARGE)
    assert found["failures"]["incoming"].endswith("does not exist (HTTP 404): check the macro EXALATE.URL (the "
                                                  "node's base URL) and that this Exalate version has this endpoint")


def test_a_number_past_what_a_double_holds_exactly_is_a_reason_not_a_wrong_number():
    with HostileServer() as node:
        node.route("GET", "*/4.0/syncevents*", Answer(body=b'{"total": 9007199254740993}'))
        found = http_document({"url": node.url, "user": USER, "password": PASSWORD})
    assert "outgoing" not in found and found["failures"]["outgoing"].endswith(TOO_LARGE)


def test_a_slow_node_ends_the_poll_within_the_items_timeout_with_a_reason_for_each_value_not_read():
    with SimulatorServer(Simulator(scenario(faults=[{"path": "2.4/relations/AllContent/syncevents/blobrequests",
                                                     "delay": 6}]))) as sim:
        code, out, elapsed = run_script({"url": sim.url, "jwt_secret": SECRET, "user": USER, "password": PASSWORD,
                                         "timeout": "3s"}, timeout=3)
    assert code == 0, out
    assert elapsed < 3 + SLACK, elapsed
    found = json.loads(out)
    first = found["connections"][0]
    assert first["sync_requests"] == 1
    assert first["failures"]["blob_requests"].endswith("did not answer within the timeout of 3 s: is the node "
                                                       "overloaded? raise the macro EXALATE.HTTP.TIMEOUT if it is "
                                                       "just slow")
    assert first["failures"]["sync_responses"] == "no complete answer within the timeout of 3 s"
    assert all(set(c["failures"]) == {"sync_requests", "blob_requests", "sync_responses", "blob_responses",
                                      "error_responses", "blob_error_responses"} for c in found["connections"][1:])
    assert found["ping"] == 1 and found["errors"] == 7


def test_a_secret_the_node_echoes_is_masked():
    echo = f"bad request from {USER}:{PASSWORD} with secret {SECRET}"
    with HostileServer() as node:
        node.route("GET", "*/4.0/syncevents*", Answer(status=418, body=echo.encode(), content_type="text/plain"))
        node.route("GET", "*/4.0/connections", Answer(body=json.dumps(
            {"results": [{"name": "A", "id": 1, "communication": {"remoteUrl": f"https://x/?k={SECRET}"}}]}).encode()))
        node.route("GET", "*/2.4/relations/A/syncrequests/errorresponses", Answer(body=json.dumps(
            [{"syncEventId": 5, "errorReason": f"R {PASSWORD}", "message": f"the secret is {SECRET}\nnext line",
              "sourceIssueKey": {"urn": "A-5"}}]).encode()))
        found = http_document({"url": node.url, "jwt_secret": SECRET, "user": USER, "password": PASSWORD})
    assert "answered HTTP 418: bad request from monitor:*** with secret ***" in found["failures"]["outgoing"]
    a = found["connections"][0]
    assert a["remote"] == "https://x/?k=***"
    assert a["error_reasons"] == {"R ***": 1}
    assert a["last_error"] == {"id": 5, "issue": "A-5", "reason": "R ***", "message": "the secret is *** next line"}


@pytest.mark.parametrize("params, words", [
    ({}, "is not an http:// or https:// address"),
    ({"url": "https://user:pa55@node.example"}, "holds credentials"),
    ({"url": "http://127.0.0.1:9"}, "no credentials"),
    ({"url": "{$EXALATE.URL}", "user": USER}, "is not an http:// or https:// address"),
])
def test_a_configuration_mistake_is_one_clear_line(params, words):
    code, out, _ = run_script(params)
    assert code != 0 and words in out and "pa55" not in out


def test_a_node_that_is_down(tmp_path):
    with HostileServer() as node:
        url = node.url
    found = http_document({"url": url, "jwt_secret": SECRET, "user": USER, "password": PASSWORD})
    expected = collect_document(tmp_path, url=url, jwt_secret=SECRET, user=USER, password=PASSWORD)
    assert found["ping"] == 0 and found["credentials"] == "unknown" and "connections" not in found
    assert set(found["failures"]) == set(expected["failures"])
    assert found["failures"]["ping"].startswith("cannot connect to 127.0.0.1:")


def test_a_node_that_does_not_list_its_connections_says_to_use_the_agent_template():
    with SimulatorServer(Simulator(scenario(list_connections=False))) as sim:
        found = http_document({"url": sim.url, "jwt_secret": SECRET, "user": USER, "password": PASSWORD})
    assert found["ping"] == 1 and "connections" not in found
    assert found["failures"]["connections"].startswith("this node does not list its connections (")
    assert found["failures"]["connections"].endswith("answered HTTP 404): the HTTP template needs a node that "
                                                     "does; use the agent template, whose configuration can list them")
