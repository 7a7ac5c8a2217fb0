"""End to end in a real Zabbix 6.0: our template, UserParameters and API commands against the simulator."""
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from conftest import PASSWORD, console, require_binary
from nginx_node import NginxNode
from test_foreign_node import NODE_VALUES, QUEUE_VALUES, TOKEN, USER
from zabbix_exalate.metrics import BY_COMMAND, CONNECTION_METRICS
from zabbix_exalate.names import key_form
from zabbix_exalate.simulator import Simulator, SimulatorServer
from zabbix_exalate.template import USERPARAMETER_FILE
from zabbix_stack import Stack, make_venv

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
HOST = "exalate-e2e"
NODE = "sim"
FOREIGN = "foreign"
ODD = 'Support/L2 "urgent" $team; (EU) — Zürich'
QUEUES = tuple(m.command for m in CONNECTION_METRICS)  # the order of the values below
SCENARIO = {
    "credentials": {"jwt_secret": "e2e-shared-secret-0123456789abcdef", "user": "monitor",
                    "password": "e2e-basic-pa55"},
    "errors": 0, "outgoing": 12, "incoming": 4,
    "connections": [
        {"name": "AllContent", "id": 154, "status": "ACTIVE", "queues": dict(zip(QUEUES, (1, 2, 3, 4, 5, 6)))},
        {"name": "ADO <> Jira Prod", "id": 155, "status": "ACTIVE", "queues": dict(zip(QUEUES, (40, 0, 7, 0, 2, 0)))},
        {"name": ODD, "id": 160, "status": "ACTIVE", "queues": dict(zip(QUEUES, (0, 0, 0, 0, 0, 0)))},
        {"name": "Paused", "id": 161, "status": "DEACTIVATED", "queues": dict(zip(QUEUES, (300, 0, 0, 0, 0, 0)))},
        {"name": "Gone", "id": 170, "status": "ACTIVE", "removed": True},
    ],
}
# Zabbix stores the keys as the template writes them: user macros stay, LLD macros are filled in.
NODE_KEY = "{$EXALATE.NODE}"


def queue_key(command: str, connection: str) -> str:
    """A discovered item's key as Zabbix stores it."""
    return f"{BY_COMMAND[command].key}[{NODE_KEY},{key_form(connection)}]"

FAST = {"{$EXALATE.INTERVAL}": "5s", "{$EXALATE.DOWN.PERIOD}": "12s", "{$EXALATE.ERRORS.PERIOD}": "12s",
        "{$EXALATE.FAILED.PERIOD}": "12s", "{$EXALATE.QUEUE.PERIOD}": "12s",
        # Context macros: thresholds for one connection alone.
        '{$EXALATE.QUEUE.MAX.WARN:"ADO <> Jira Prod"}': "10", '{$EXALATE.NODATA.PERIOD:"Gone"}': "30s"}


def wait_for(what: str, probe, seconds: float = 120):
    """Poll probe() until it returns something truthy; fail naming what never happened."""
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"after {seconds:g} s: {what}")
        time.sleep(1)


@pytest.fixture(scope="module")
def node():
    with SimulatorServer(Simulator(SCENARIO)) as server:
        yield server


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """The node implementation that is not ours: nginx serving the source documents' bodies."""
    require_binary("nginx")
    with NginxNode(tmp_path_factory.mktemp("nginx"), USER, PASSWORD, TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def zabbix(node, foreign):
    if os.geteuid() != 0:
        why = "the end-to-end suite installs and starts Zabbix: run it as root"
        pytest.fail(why) if os.environ.get("CI") else pytest.skip(why)
    stack = Stack()  # $ZABBIX_STACK_DIR, else the default: a database from an earlier run is reused
    stack.install()
    venv_bin = make_venv(ROOT, stack.state_dir)
    # The agent runs our checks as the zabbix user: the configuration is that user's, mode 0600.
    config = stack.state_dir / "zabbix_exalate.conf"
    config.write_text(node.config_text(NODE) + f"\n[{FOREIGN}]\nurl = {foreign.url}\nuser = {USER}\n"
                      f"password = {PASSWORD}\ntoken = {TOKEN}\n")
    config.chmod(0o600)
    shutil.chown(config, "zabbix", "zabbix")
    stack.start(userparameter_file=ROOT / USERPARAMETER_FILE, agent_env={"ZABBIX_EXALATE_CONFIG": str(config)},
                venv_bin=venv_bin, agent_hostname=HOST)
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def env(zabbix):
    return {"ZABBIX_URL": zabbix.url, "ZABBIX_USER": "Admin", "ZABBIX_PASSWORD": "zabbix",
            "ZABBIX_EXALATE_CONFIG": "/nonexistent"}


def template_entities(zabbix) -> dict:
    """Every entity of the template with its id: a re-import that recreated one would change its id."""
    template = zabbix.api("template.get", {"filter": {"host": "Exalate by Zabbix agent"}, "output": ["templateid"]})
    assert len(template) == 1, template
    ids = {"templateids": template[0]["templateid"]}
    return {method: sorted(tuple(e[k] for k in fields) for e in zabbix.api(method, {**ids, "output": list(fields)}))
            for method, fields in (("item.get", ("itemid", "key_", "name")),
                                   ("discoveryrule.get", ("itemid", "key_")),
                                   ("itemprototype.get", ("itemid", "key_", "name")),
                                   ("trigger.get", ("triggerid", "description", "expression")),
                                   ("triggerprototype.get", ("triggerid", "description", "expression")),
                                   ("graph.get", ("graphid", "name")), ("graphprototype.get", ("graphid", "name")),
                                   ("usermacro.get", ("hostmacroid", "macro", "value")))}


@pytest.fixture(scope="module")
def imported(zabbix, env):
    ran = console("zabbix", "import-template", env=env)
    assert ran.code == 0 and "imported" in ran.stdout, ran
    first = template_entities(zabbix)
    assert len(first["item.get"]) == 4 and len(first["itemprototype.get"]) == 6
    again = console("zabbix", "import-template", env=env)
    assert again.code == 0 and "imported" in again.stdout, again
    assert template_entities(zabbix) == first  # the second import changed nothing


@pytest.mark.parametrize("credentials, who", [({"ZABBIX_PASSWORD": "not-the-admin-pa55"}, "user 'Admin'"),
                                               ({"ZABBIX_TOKEN": "0" * 64}, "an API token")])
def test_a_refused_login_names_the_credential_and_shows_no_secret(zabbix, env, credentials, who):
    ran = console("zabbix", "import-template", env={**env, **credentials})
    ran.assert_failed(4, "refused", who)
    assert not [secret for secret in credentials.values() if secret in ran.stderr]


def add_host(zabbix, env, name: str, node: str) -> str:
    """A host added with our command (twice: the second run updates), intervals shortened, discovery run now."""
    old = zabbix.api("host.get", {"filter": {"host": name}, "output": ["hostid"]})
    if old:  # left by an earlier run on the same database
        zabbix.api("host.delete", [h["hostid"] for h in old])
    args = ("zabbix", "add-host", name, "--agent-port", str(zabbix.agent_port), "--node", node)
    added = console(*args, env=env)
    assert added.code == 0 and "created" in added.stdout, added
    again = console(*args, env=env)
    assert again.code == 0 and "updated" in again.stdout, again
    found = zabbix.api("host.get", {"filter": {"host": name}, "selectMacros": ["macro", "value"],
                                    "selectParentTemplates": ["host"], "output": ["hostid"]})[0]
    assert [t["host"] for t in found["parentTemplates"]] == ["Exalate by Zabbix agent"]
    assert [(m["macro"], m["value"]) for m in found["macros"]] == [(NODE_KEY, node)]
    for macro, value in FAST.items():
        zabbix.api("usermacro.create", {"hostid": found["hostid"], "macro": macro, "value": value})
    rule = zabbix.api("discoveryrule.get", {"hostids": found["hostid"], "output": ["itemid"]})[0]

    def discovered():
        # "Check now" is dropped while the new rule is not yet in the server's cache: ask until it ran.
        zabbix.api("task.create", [{"type": 6, "request": {"itemid": rule["itemid"]}}])
        return int(zabbix.api("item.get", {"hostids": found["hostid"], "filter": {"flags": 4}, "countOutput": True}))

    wait_for(f"discovery ran on {name}", discovered, seconds=60)
    return found["hostid"]


@pytest.fixture(scope="module")
def host(zabbix, env, imported):
    return add_host(zabbix, env, HOST, NODE)


@pytest.fixture(scope="module")
def foreign_host(zabbix, env, imported):
    return add_host(zabbix, env, "exalate-foreign", FOREIGN)


def items(zabbix, hostid):
    return {i["key_"]: i for i in zabbix.api("item.get", {
        "hostids": hostid, "output": ["key_", "name", "lastvalue", "lastclock", "state", "error"]})}


def test_the_template_imports_twice_and_discovers_every_connection(zabbix, host):
    expected = {queue_key(q, c["name"]) for c in SCENARIO["connections"] for q in QUEUES}
    found = wait_for("discovery created the items of every connection",
                     lambda: expected <= set(items(zabbix, host)) and items(zabbix, host))
    names = [i["name"] for i in found.values()]
    assert f'Exalate: Connection "{ODD}": Failed sync requests' in names  # the real name, not the key form
    templates = zabbix.api("template.get", {"filter": {"host": "Exalate by Zabbix agent"}, "output": ["templateid"],
                                            "selectItems": "count",
                                            "selectDiscoveries": "count", "selectGraphs": "count",
                                            "selectDashboards": "count"})
    assert len(templates) == 1
    assert int(templates[0]["items"]) == 4 and int(templates[0]["discoveries"]) == 1
    assert int(templates[0]["graphs"]) == 2 and int(templates[0]["dashboards"]) == 1


def test_zabbix_stores_the_node_s_numbers_and_names_a_removed_connection(zabbix, host, node):
    found = polled(zabbix, host, 4 + 6 * len(SCENARIO["connections"]))
    assert found[f"exalate.ping[{NODE_KEY}]"]["lastvalue"] == "1"
    assert found[f"exalate.errors[{NODE_KEY}]"]["lastvalue"] == "0"
    assert found[f"exalate.outgoing[{NODE_KEY}]"]["lastvalue"] == "12"
    assert found[f"exalate.incoming[{NODE_KEY}]"]["lastvalue"] == "4"
    for connection in SCENARIO["connections"]:
        for queue in QUEUES:
            item = found[queue_key(queue, connection["name"])]
            if connection.get("removed"):
                assert item["state"] == "1", item  # unsupported, with the reason the operator needs
                assert "Gone" in item["error"] and "not found" in item["error"], item
                assert "removed or renamed on the other side" in item["error"], item
            else:
                assert item["state"] == "0", item
                assert item["lastvalue"] == str(connection["queues"][queue]), (connection["name"], queue, item)


def test_deactivated_connections_get_no_backlog_triggers(zabbix, host):
    def triggers():
        names = [t["description"] for t in zabbix.api("trigger.get", {"hostids": host, "output": ["description"],
                                                                       "expandDescription": True})]
        return names if any("AllContent" in n for n in names) else None

    names = wait_for("trigger prototypes discovered", triggers)
    assert 'Exalate: Connection "AllContent": Sync backlog is high' in names
    assert 'Exalate: Connection "Paused": Failed syncs' in names
    assert not [n for n in names if '"Paused"' in n and "backlog" in n]


def polled(zabbix, hostid, count: int):
    """Every item of the host, once each has a value or has turned unsupported."""
    def probe():
        current = items(zabbix, hostid)
        done = all(i["lastclock"] != "0" or i["state"] == "1" for i in current.values())
        return done and len(current) == count and current
    return wait_for(f"{count} items polled once", probe)


def test_a_node_that_is_not_ours_is_discovered_with_the_right_values(zabbix, foreign_host):
    found = polled(zabbix, foreign_host, 4 + 6 * len(QUEUE_VALUES))
    for command, value in NODE_VALUES.items():
        assert found[f"exalate.{command}[{NODE_KEY}]"]["lastvalue"] == str(value)
    assert found[f"exalate.ping[{NODE_KEY}]"]["lastvalue"] == "1"
    for connection, values in QUEUE_VALUES.items():
        for queue, value in values.items():
            item = found[queue_key(queue, connection)]
            if value is None:  # the seed's own example lacks a comma: reported, never counted
                assert item["state"] == "1" and "is not valid JSON" in item["error"], item
            else:
                assert item["state"] == "0" and item["lastvalue"] == str(value), (connection, queue, item)


def test_agent_2_serves_our_userparameters_as_the_classic_agent_does(zabbix, node):
    odd = key_form(ODD)
    keys = {f"exalate.ping[{NODE}]": "1", f"exalate.outgoing[{NODE}]": "12",
            f"exalate.sync_requests[{NODE},ADO%20%3C%3E%20Jira%20Prod]": "40",
            f"exalate.blob_error_responses[{NODE},{odd}]": "0",
            f"exalate.error_responses[{NODE},AllContent,NO_ISSUE_TO_CONNECT_TO]": "5",
            f"exalate.error_responses[{NODE},AllContent,SCRIPT_ERROR]": "0"}
    for key, value in keys.items():
        assert zabbix.get(zabbix.agent2_port, key) == zabbix.get(zabbix.agent_port, key) == value, key
    rows = json.loads(zabbix.get(zabbix.agent2_port, f"exalate.discovery[{NODE}]"))
    assert [r["{#CONNECTION}"] for r in rows] == [c["name"] for c in SCENARIO["connections"]]
    gone = zabbix.get(zabbix.agent2_port, f"exalate.sync_requests[{NODE},Gone]")
    assert "connection 'Gone' not found" in gone and gone == zabbix.get(zabbix.agent_port,
                                                                        f"exalate.sync_requests[{NODE},Gone]")


def problems(zabbix, hostid):
    return [p["name"] for p in zabbix.api("problem.get", {"hostids": hostid, "output": ["name"]})]


def test_connection_problems_follow_their_thresholds(zabbix, host):
    expected = {'Exalate: Connection "AllContent": Failed syncs (over 0 for 12s)',
                'Exalate: Connection "AllContent": Failed attachment syncs (over 0 for 12s)',
                'Exalate: Connection "ADO <> Jira Prod": Sync backlog is high (over 10 for 12s)',
                'Exalate: Connection "Gone": No data for 30s'}
    found = wait_for("the connections' problems opened", lambda: expected <= set(problems(zabbix, host))
                     and problems(zabbix, host))
    backlog = [p for p in found if "backlog" in p]
    # 40 queued is over the connection's own 10, not the template's 50; "Paused" holds 300 but is
    # deactivated, and a deactivated connection queues by design.
    assert backlog == ['Exalate: Connection "ADO <> Jira Prod": Sync backlog is high (over 10 for 12s)']
    assert not [p for p in found if ODD in p]


def test_a_problem_opens_when_errors_appear_and_resolves_when_they_clear(zabbix, host, node):
    assert not [p for p in problems(zabbix, host) if "Errors reported" in p]
    node.simulator.update(errors=3)
    opened = wait_for("the errors problem opened",
                      lambda: [p for p in problems(zabbix, host) if p.startswith("Exalate: Errors reported")])
    assert opened == ["Exalate: Errors reported (over 0 for 12s)"]
    node.simulator.update(errors=0)
    wait_for("the errors problem resolved",
             lambda: not [p for p in problems(zabbix, host) if "Errors reported" in p])


def test_node_unreachable_opens_when_the_node_stops(zabbix, host, node):
    node.stop()
    wait_for("the node-unreachable problem opened",
             lambda: "Exalate: Node is unreachable for 12s" in problems(zabbix, host))
    ping = items(zabbix, host)[f"exalate.ping[{NODE_KEY}]"]
    assert ping["lastvalue"] == "0" and ping["state"] == "0"  # a value, not an unsupported item
