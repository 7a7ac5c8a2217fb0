"""The checks against a node that is not ours: a real nginx serving the seed documents' example bodies."""
import json

import pytest
import requests

from helpers import ENDPOINTS, PASSWORD, USER, Run, config_file, invoke, require_binary, run_cli
from nginx_node import (ADO, NODE_VALUES, QUEUE_COMMANDS, QUEUE_VALUES, REMOVED, SALES, SEED, SEGMENT, TOKEN, NginxNode,
                        mint)
from trapper import Trapper
from zabbix_exalate.metrics import METRICS

OTHER_TOKEN = mint("not-the-connection-secret")
WRONG_PASSWORD = "not-the-pa55-word"
COUNTED = [(c, cmd, n) for c, values in QUEUE_VALUES.items() for cmd, n in values.items() if n is not None]
SHORT = {"AllContent": "AllContent", ADO: "ADO", SALES: "Sales"}  # for readable test ids


def body(connection: str, command: str) -> bytes:
    path = ENDPOINTS[command].format(SEGMENT[connection])
    return (SEED / "jira" / "rest" / "issuehub" / path).read_bytes()


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    require_binary("nginx")
    with NginxNode(tmp_path_factory.mktemp("nginx"), USER, PASSWORD, TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def node_config(node, tmp_path_factory):
    """node_config(key=value, ...) -> path of a configuration (mode 0600) for the nginx node."""
    folder = tmp_path_factory.mktemp("config")

    def write(**keys) -> str:
        values = {"user": USER, "password": PASSWORD, "token": TOKEN, "token_cache": "off", **keys}
        return config_file(folder / f"zabbix_exalate-{len(list(folder.iterdir()))}.conf", node.url, **values)

    return write


@pytest.fixture(scope="module")
def config(node_config):
    return node_config()


def run(config_path: str, *args: str, process: bool = False) -> Run:
    """One check: in-process through click, or (process=True) as its own process, as the agent runs it."""
    runner = run_cli if process else invoke
    return runner("--config", config_path, *args, secrets=(TOKEN, OTHER_TOKEN, WRONG_PASSWORD))


def test_fixture_values_are_what_the_bodies_hold():
    # Guards the tables above against edits of the bodies (and the bodies against the tables).
    assert set(ENDPOINTS) == {m.command for m in METRICS}
    for connection, command, expected in COUNTED:
        assert len(json.loads(body(connection, command))) == expected, (connection, command)
    with pytest.raises(ValueError):
        json.loads(body("AllContent", "blob-error-responses"))


@pytest.mark.parametrize("command", NODE_VALUES)
def test_node_check_prints_the_seed_number(config, command):
    ran = run(config, command)
    assert (ran.code, ran.stdout, ran.stderr) == (0, f"{NODE_VALUES[command]}\n", "")


@pytest.mark.parametrize("connection, command, expected", COUNTED, ids=[f"{SHORT[c]}-{cmd}" for c, cmd, _ in COUNTED])
def test_queue_check_counts_the_seed_array(config, connection, command, expected):
    ran = run(config, command, connection)
    assert (ran.code, ran.stdout, ran.stderr) == (0, f"{expected}\n", "")


def test_reason_counts_only_matching_failures(config):
    assert run(config, "error-responses", ADO, "--reason", "NO_ISSUE_TO_CONNECT_TO").stdout == "2\n"
    assert run(config, "error-responses", ADO, "--reason", "SCRIPT_ERROR").stdout == "0\n"
    assert run(config, "blob-error-responses", ADO, "--reason", "CHECKSUM_MISMATCH").stdout == "2\n"


@pytest.mark.parametrize("extra", [[], ["--reason", "CHECKSUM_MISMATCH"]], ids=["all", "reason"])
def test_sloppy_seed_body_is_a_bad_response_not_a_number(config, extra):
    # The seed's bloberrorresponses example misses a comma: served as it is, it must not count as 1.
    ran = run(config, "blob-error-responses", "AllContent", *extra, process=not extra)
    ran.assert_failed(9, "[default]", "syncrequests/bloberrorresponses", "is not valid JSON")


def test_each_check_sends_the_documented_request_with_its_credential(config, node):
    for command, path in ENDPOINTS.items():
        before = node.mark()
        args = [command, ADO] if "{}" in path else [command]
        assert run(config, *args).code == 0, command
        (method, uri, status, user, jwt_check), = node.requests_since(before)
        assert (method, uri) == ("GET", "/jira/rest/issuehub/" + path.format(SEGMENT[ADO]))
        assert status == 200
        # 4.0: Jira basic auth; 2.4: the JWT header alone.
        assert (user, jwt_check) == (("-", "valid") if "{}" in path else (USER, "missing")), command


def test_discover_lists_every_connection(config):
    ran = run(config, "discover", process=True)
    assert (ran.code, ran.stderr) == (0, "")
    assert json.loads(ran.stdout) == [
        {"{#CONNECTION}": "AllContent", "{#CONNECTION.KEY}": "AllContent", "{#CONNECTION.ID}": "12",
         "{#CONNECTION.STATUS}": "ACTIVE", "{#CONNECTION.REMOTE}": "http://localhost:2991/jira"},
        {"{#CONNECTION}": ADO, "{#CONNECTION.KEY}": SEGMENT[ADO], "{#CONNECTION.ID}": "154",
         "{#CONNECTION.STATUS}": "ACTIVE", "{#CONNECTION.REMOTE}": "https://jcloudnode-ab12-cd34.exalate.cloud"},
        # No "communication" in the body: tolerated, the remote is empty.
        {"{#CONNECTION}": SALES, "{#CONNECTION.KEY}": SEGMENT[SALES], "{#CONNECTION.ID}": "201",
         "{#CONNECTION.STATUS}": "DEACTIVATED", "{#CONNECTION.REMOTE}": ""},
    ]


def test_key_form_from_discover_gives_what_the_exact_name_gives(config):
    rows = json.loads(run(config, "discover").stdout)
    assert len(rows) == len(QUEUE_VALUES)
    for row in rows:
        for command in QUEUE_COMMANDS:
            by_name = run(config, command, row["{#CONNECTION}"])
            by_key = run(config, command, row["{#CONNECTION.KEY}"])
            assert (by_key.code, by_key.stdout, by_key.stderr) == (by_name.code, by_name.stdout, by_name.stderr)
            expected = QUEUE_VALUES[row["{#CONNECTION}"]][command]
            assert by_key.stdout == ("" if expected is None else f"{expected}\n")
    # And as the agent runs it: its own process, the key form as the template passes it.
    ran = run(config, "sync-requests", SEGMENT[ADO], process=True)
    assert (ran.code, ran.stdout, ran.stderr) == (0, "3\n", "")


@pytest.mark.parametrize("command", QUEUE_COMMANDS)
def test_unknown_connection_is_not_found(config, node, command):
    name = "Nope <> Gone – Köln"
    before = node.mark()
    ran = run(config, command, name, process=command == "sync-requests")
    ran.assert_failed(5, f"connection '{name}' not found", f"127.0.0.1:{node.port}", "removed or renamed")
    # It was nginx's documented 400 that said so, not a failure on the way.
    assert [r[2] for r in node.requests_since(before)] == [400]


def test_wrong_password_names_the_credential(node_config):
    config = node_config(password=WRONG_PASSWORD)
    for command in ("outgoing", "errors"):
        ran = run(config, command, process=command == "outgoing")
        ran.assert_failed(4, "HTTP 401", "rejected", f"basic auth as '{USER}'", "user/password in [default]")


def test_wrong_token_names_the_credential(node_config):
    config = node_config(token=OTHER_TOKEN)
    run(config, "sync-requests", "AllContent").assert_failed(
        4, "HTTP 401", "rejected", "the token from the token key", "X-exalate-jwt")
    # The 4.0 endpoints still take the password.
    assert run(config, "outgoing").stdout == "20\n"


def test_without_a_jwt_the_queues_are_not_authenticated(node_config):
    # No token: the 2.4 request falls back to basic auth, which this node does not take there.
    config = node_config(token=None)
    run(config, "sync-requests", "AllContent").assert_failed(
        4, "HTTP 403", "not authenticated", f"basic auth as '{USER}'")


def test_ping_prints_one(config):
    ran = run(config, "ping", process=True)
    assert (ran.code, ran.stdout, ran.stderr) == (0, "1\n", "")


@pytest.mark.parametrize("check", ["errors", "outgoing", "incoming", "discover"])
def test_ping_with_each_ping_check(node_config, check):
    ran = run(node_config(ping_check=check), "ping")
    assert (ran.code, ran.stdout, ran.stderr) == (0, "1\n", "")


def test_ping_is_zero_with_the_reason_when_the_password_is_wrong(node_config):
    ran = run(node_config(password=WRONG_PASSWORD), "ping")
    assert (ran.code, ran.stdout) == (0, "0\n")
    assert "HTTP 401" in ran.stderr and len(ran.stderr.splitlines()) == 1


def test_the_node_refuses_what_a_real_node_refuses(node):
    # Without this the tests above could pass against a server that lets everything through.
    api = node.url + "/rest/issuehub/"
    assert requests.get(api + "4.0/syncevents?limit=0").status_code == 401
    assert requests.get(api + "4.0/syncevents?limit=0", headers={"X-exalate-jwt": TOKEN}).status_code == 401
    queue = api + "2.4/relations/AllContent/syncevents/syncrequests"
    assert requests.get(queue).status_code == 403
    assert requests.get(queue, auth=(USER, PASSWORD)).status_code == 403
    assert requests.get(queue, headers={"X-exalate-jwt": OTHER_TOKEN}).status_code == 401
    ok = requests.get(queue, headers={"X-exalate-jwt": TOKEN})
    assert (ok.status_code, ok.headers["Content-Type"]) == (200, "application/json; charset=utf-8")
    gone = requests.get(api + "2.4/relations/Gone/syncevents/syncrequests", headers={"X-exalate-jwt": TOKEN})
    assert (gone.status_code, gone.headers["Content-Type"]) == (400, "text/plain; charset=utf-8")
    assert gone.text == REMOVED.format("Gone")


# -- the whole node in one run ------------------------------------------------------------------

def test_collect_reads_every_seed_body_once(config, node):
    mark = node.mark()
    ran = run(config, "collect", process=True)
    assert (ran.code, ran.stderr) == (0, ""), ran
    doc = json.loads(ran.stdout)
    assert doc["ping"] == 1 and {k: doc[k] for k in NODE_VALUES} == NODE_VALUES
    assert [c["name"] for c in doc["connections"]] == list(QUEUE_VALUES)
    for connection in doc["connections"]:
        assert connection["key"] == SEGMENT[connection["name"]]
        for command, expected in QUEUE_VALUES[connection["name"]].items():
            field = command.replace("-", "_")
            if expected is None:  # the seed's own example lacks a comma: a reason, never a number
                assert field not in connection and "is not valid JSON" in connection["failures"][field]
            else:
                assert connection[field] == expected, (connection["name"], command)
    seen = node.requests_since(mark, expected=4 + 6 * len(QUEUE_VALUES))
    assert len(seen) == 4 + 6 * len(QUEUE_VALUES), "each endpoint once"


def test_collect_finds_each_queue_s_head_and_the_newest_failures_in_the_seed_bodies(config):
    doc = json.loads(run(config, "collect").stdout)
    found = {c["name"]: c for c in doc["connections"]}
    all_content = found["AllContent"]
    assert {f: all_content.get(f) for f in ("sync_requests_oldest", "blob_requests_oldest", "sync_responses_oldest",
                                            "blob_responses_oldest", "error_responses_oldest")} == {
        "sync_requests_oldest": 4, "blob_requests_oldest": 55, "sync_responses_oldest": 16,
        "blob_responses_oldest": 14, "error_responses_oldest": 49}
    assert all_content["error_reasons"] == {"NO_ISSUE_TO_CONNECT_TO": 1}
    assert all_content["last_error"] == {
        "id": 49, "issue": "AC-113", "reason": "NO_ISSUE_TO_CONNECT_TO",
        "message": "Could not connect `AC-113` to `AC-111`: issue by key `AC-111` already was connected to another "
                   "issue using relation `AllContent`"}
    # The seed's own attachment failure lacks a comma: no head, no reasons, no newest failure, but its reason.
    for field in ("blob_error_responses_oldest", "blob_error_reasons", "last_blob_error"):
        assert field not in all_content
    assert "is not valid JSON" in all_content["failures"]["blob_error_responses"]
    ado = next(c for name, c in found.items() if name.startswith("ADO"))
    assert (ado["sync_requests_oldest"], ado["error_responses_oldest"], ado["blob_error_responses_oldest"]) == (
        301, 296, 293)
    assert ado["last_error"]["id"] == 299 and ado["last_error"]["issue"] == "OPS-16"
    assert ado["last_blob_error"] == {
        "id": 294, "issue": "OPS-14", "reason": "CHECKSUM_MISMATCH",
        "message": "Checksums for blob id '10302' do not match. Expected: 4a8a08f09d37b73795649038408b5f33 Was: "
                   "8277e0910d750195b448797616e091ad"}
    assert ado["blob_error_reasons"] == {"CHECKSUM_MISMATCH": 2}
    sales = found["Sales, EU"]
    assert not [f for f in sales if f.endswith("_oldest") or f.startswith("last_")], "empty queues have no head"
    assert sales["error_reasons"] == {} == sales["blob_error_reasons"]


def test_status_of_one_connection_of_the_foreign_node(config):
    ran = run(config, "status", "--connection", "AllContent")
    assert ran.code == 0 and ran.stderr == "", ran
    text = " ".join(ran.stdout.split())
    assert "Failed syncs by reason: NO_ISSUE_TO_CONNECT_TO 1" in text
    assert ("49 AC-113 NO_ISSUE_TO_CONNECT_TO: Could not connect `AC-113` to `AC-111`: issue by key `AC-111` "
            "already was connected to another issue using relation `AllContent`") in text


def test_status_reads_the_seed_bodies(config):
    ran = run(config, "status")
    assert ran.code == 0 and ran.stderr == "", ran
    assert "errors 0   outgoing 20   incoming 3   connections 3" in ran.stdout
    assert "AllContent (blob-error-responses): the answer of" in " ".join(ran.stdout.split())


def test_collect_against_a_node_that_refuses_the_credentials(node_config):
    doc = json.loads(run(node_config(password=WRONG_PASSWORD, token=OTHER_TOKEN), "collect").stdout)
    assert doc["ping"] == 0 and "HTTP 401" in doc["failures"]["ping"]
    assert "connections" not in doc and "HTTP 401" in doc["failures"]["connections"]


def test_send_pushes_what_the_foreign_node_holds(config):
    with Trapper() as trapper:
        ran = run(config, "send", "--server", f"127.0.0.1:{trapper.port}", "--host", "jira", process=True)
    assert ran.code == 0, ran
    sent = json.loads(trapper.received[0]["value"])
    assert sent["outgoing"] == 20 and len(sent["connections"]) == 3
