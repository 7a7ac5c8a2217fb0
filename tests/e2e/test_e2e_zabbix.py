"""End to end in a real Zabbix: every template we ship imported, linked, discovered, valued and triggered.

One suite for every template and every Zabbix version: `case` (a template, its own simulated node, its own
host) and `zabbix` (the stack of one version) are parameters, never copies. Tests of one template run
together; each restores what it changed on its node, and waits for Zabbix rather than for a fixed time.
"""
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pytest

import frontend_shots
from e2e_support import Feeder, LiveNode, wait_for
from helpers import (PASSWORD, USER, assert_no_secret, config_file, macro_names, misplaced_macros, require_binary,
                     run_cli)
from nginx_node import NODE_VALUES, QUEUE_VALUES, SEED, TOKEN, NginxNode
from zabbix_exalate.metrics import (BY_COMMAND, CONNECTION_COUNT_KEY, CONNECTION_METRICS, CONNECTION_STATUSES,
                                    CREDENTIAL_STATES, CREDENTIALS_KEY, NODE_METRICS, PING_KEY, REASON_KEY,
                                    RESPONSE_TIME_KEY, STATUS_KEY)
from zabbix_exalate.exalate.names import is_tagged_key, key_form, listed_connections, shown
from zabbix_exalate.zabbix.content import CONNECTION_GONE, template_tree
from zabbix_exalate.zabbix.design import (AGENT, AGENT_TEMPLATE, BY_NAME, DESIGNS, HTTP, PER_CHECK, TRAPPER, Design,
                                          format_for, master_key)

USERPARAMETER_FILE = "userparameters/userparameter_exalate.conf"
from zabbix_stack import Stack, StackError

pytestmark = pytest.mark.e2e

# The Zabbix versions the suite runs against, one stack each: adding a version is adding it here.
# Every Zabbix the suite runs against: Debian 12's 6.0 on the host, Debian 13's 7.0 in a chroot.
VERSIONS = os.environ.get("ZABBIX_VERSIONS", "6.0 7.0").split()

ROOT = Path(__file__).resolve().parents[2]
AGENT_HOSTNAME = "exalate-e2e"
HOST_PREFIX = "exalate-e2e-"  # every host this suite creates; leftovers of earlier runs are deleted
FOREIGN = "foreign"           # the configuration section of the nginx node
CONFIG_NAME = "zabbix_exalate.conf"  # the agents' configuration, in the stack's state directory
NODE_KEY = "{$EXALATE.NODE}"  # Zabbix keeps user macros in keys as the template writes them
ODD = 'Support/L2 "urgent" $team; (EU) — Zürich'
ADO = "ADO <> Jira Prod"
# Issue 15: a name listed twice (the higher id beyond 2^53, which a double cannot hold), and a name of 10 KB.
TWIN = "Twin"
BIG_ID = 2 ** 53 + 1
LONG = "Long " + "L" * 10235
QUEUES = tuple(m.command for m in CONNECTION_METRICS)  # the order of the numbers below
STATUS_CODES = dict(CONNECTION_STATUSES)
CREDENTIAL_CODES = dict(CREDENTIAL_STATES)
PERIOD = "12s"  # every FAST period: event names show it
# What one collection or check may take: more than the 2.5 s default, for a 2-core machine busy with Zabbix,
# PostgreSQL, the per-check processes and this suite's nodes. The stack's agents wait 10 s.
COLLECT_TIMEOUT = "8"


def scenario(design: Design) -> dict:
    """The node one template watches. Each template has a node of its own: a fault injected for one
    template's test never shows in another's host."""
    connections = [
        {"name": "AllContent", "id": 154, "status": "ACTIVE", "queues": dict(zip(QUEUES, (1, 2, 3, 4, 5, 6)))},
        {"name": ADO, "id": 155, "status": "ACTIVE", "queues": dict(zip(QUEUES, (40, 0, 7, 0, 2, 0)))},
        {"name": ODD, "id": 160, "status": "ACTIVE", "queues": dict(zip(QUEUES, (5, 0, 0, 0, 0, 0)))},
        {"name": "Paused", "id": 161, "status": "DEACTIVATED", "queues": dict(zip(QUEUES, (300, 0, 0, 0, 0, 0)))},
        {"name": "Gone", "id": 170, "status": "ACTIVE", "removed": True},
        {"name": LONG, "id": 172, "status": "ACTIVE", "queues": dict(zip(QUEUES, (11, 0, 0, 0, 0, 0)))},
    ]
    if design.one_poll:
        # Only the one-poll templates have a status item. The per-check template goes without: six more
        # agent processes every interval on a 2-core machine, for nothing it would check.
        connections.insert(4, {"name": "Broken", "id": 162, "status": "ERROR"})
        # Twins, one id beyond 2^53, which only the one-poll templates' script reads. The node's API names a
        # connection by its name: both read the queues of the first listed. (The per-check host has the 10 KB name
        # alone: twelve more agent processes a poll would outrun 7.0's pollers on two cores.)
        connections += [
            {"name": TWIN, "id": BIG_ID, "status": "ACTIVE", "queues": dict(zip(QUEUES, (3, 0, 0, 0, 0, 0)))},
            {"name": TWIN, "id": 171, "status": "ACTIVE", "queues": dict(zip(QUEUES, (3, 0, 0, 0, 0, 0)))}]
    return {"credentials": {"jwt_secret": "e2e-shared-secret-0123456789abcdef", "user": "monitor",
                            "password": "e2e-basic-pa55"},
            "errors": 0, "outgoing": 12, "incoming": 4, "connections": connections}


def context(macro: str, connection: str) -> str:
    """{$M} with a connection's name as its context, quotes escaped as Zabbix wants them."""
    return macro[:-1] + ':"' + connection.replace('"', '\\"') + '"}'


def fast_macros(interval: int) -> Dict[str, str]:
    """Host macros that make every problem of the suite open within seconds."""
    return {"{$EXALATE.INTERVAL}": f"{interval}s", "{$EXALATE.COLLECT.TIMEOUT}": COLLECT_TIMEOUT,
            "{$EXALATE.DOWN.PERIOD}": PERIOD,
            "{$EXALATE.ERRORS.PERIOD}": PERIOD, "{$EXALATE.FAILED.PERIOD}": PERIOD,
            "{$EXALATE.QUEUE.PERIOD}": PERIOD, "{$EXALATE.STATUS.PERIOD}": PERIOD,
            # Context macros: thresholds for one connection alone, the odd name's quotes escaped.
            context("{$EXALATE.QUEUE.MAX.WARN}", ADO): "10", context("{$EXALATE.QUEUE.MAX.WARN}", ODD): "2",
            context("{$EXALATE.NODATA.PERIOD}", "Gone"): "30s"}


def section(design: Design) -> str:
    """The configuration section of the node a template watches."""
    return "sim-" + design.slug.replace("_", "-")


def node_key(base: str) -> str:
    return f"{base}[{NODE_KEY}]"


def connection_key(base: str, connection: str) -> str:
    """A discovered item's key as Zabbix stores it: user macros kept, LLD macros filled in."""
    return f"{base}[{NODE_KEY},{key_form(connection)}]"


def keyed(connections: List[dict]) -> List[tuple]:
    """(connection, its key, its name as Zabbix shows it) for each connection of a scenario, as discovery gives
    them: a twin and a long name get a tagged key and are shown with its tag."""
    listed = listed_connections({"name": c["name"], "id": c.get("id")} for c in connections)
    return [(c, entry["key"], shown(entry["name"], entry["key"])) for c, entry in zip(connections, listed)]


def at(base: str, key: str) -> str:
    """A discovered item's key from the connection's key (see keyed)."""
    return f"{base}[{NODE_KEY},{key}]"


def queue_key(command: str, connection: str) -> str:
    return connection_key(BY_COMMAND[command].key, connection)


# --- one template under test --------------------------------------------------------------------

@dataclass
class Case:
    """One shipped template: its own simulated node, configuration section and Zabbix host."""
    design: Design
    node: LiveNode
    zabbix: Stack
    node_env: dict            # the environment our own commands need to read the node's configuration
    hostid: str = ""
    feeder: Optional[Feeder] = None
    gone: Dict[str, str] = field(default_factory=dict)  # removed connection -> the single check's reason
    proxy: str = ""           # the Zabbix proxy that monitors the host, "" for the server

    @property
    def template(self) -> str:
        return self.design.name

    @property
    def section(self) -> str:
        return section(self.design)

    @property
    def host(self) -> str:
        return HOST_PREFIX + self.design.slug.replace("_", "-") + ("-via-proxy" if self.proxy else "")

    @property
    def interval(self) -> int:
        # The per-check host is many processes a poll: at 5 s it would outrun the stack's two pollers.
        return 10 if self.design.wiring == PER_CHECK else 5

    @property
    def trapper(self) -> bool:
        return self.design.wiring == TRAPPER

    @property
    def connections(self) -> List[dict]:
        return self.node.scenario["connections"]

    @property
    def reasons(self) -> Dict[tuple, int]:
        return scenario_reasons(self.connections) if self.design.one_poll else {}

    def document(self) -> dict:
        """What `collect` reads from this case's node now."""
        ran = run_cli("--node", self.section, "--timeout", COLLECT_TIMEOUT, "collect", env=self.node_env)
        assert ran.code == 0, ran
        return json.loads(ran.stdout)

    def items(self) -> Dict[str, dict]:
        return items(self.zabbix, self.hostid)

    def problems(self) -> List[str]:
        return problems(self.zabbix, self.hostid)

    def send_args(self, host: Optional[str] = None, section: Optional[str] = None) -> List[str]:
        """`send` to this case's host (or another) through the trapper port of the server or proxy that has it."""
        port = self.zabbix.proxy_port if self.proxy else self.zabbix.server_port
        return ["--node", section or self.section, "--timeout", COLLECT_TIMEOUT, "send",
                "--server", f"127.0.0.1:{port}", "--host", host or self.host]

    def reason(self, *args: str) -> str:
        """The one line a single check prints on stderr, without its "zabbix-exalate: [section] " prefix."""
        ran = run_cli("--node", self.section, *args, env=self.node_env)
        assert ran.stderr.startswith(f"zabbix-exalate: [{self.section}] "), ran
        return ran.stderr.strip().split("] ", 1)[1]


def items(zabbix: Stack, hostid: str) -> Dict[str, dict]:
    return {i["key_"]: i for i in zabbix.api("item.get", {
        "hostids": hostid, "output": ["itemid", "key_", "name", "lastvalue", "lastclock", "state", "error",
                                      "history", "flags"]})}


def problems(zabbix: Stack, hostid: str) -> List[str]:
    return sorted(p["name"] for p in zabbix.api("problem.get", {"hostids": hostid, "output": ["name"]}))


def check_now(zabbix: Stack, itemids: List[str]) -> None:
    """Ask the server to poll these items now; ignored until the server has loaded them, so ask again."""
    if itemids:
        try:
            zabbix.api("task.create", [{"type": 6, "request": {"itemid": i}} for i in itemids])
        except StackError:
            pass  # "no such item" while the configuration cache does not have it yet


def poke(zabbix: Stack, hostid: str, design: Design, every_item: bool = False) -> None:
    """Make an agent host poll now: its discovery rule (per check; every_item: and the items that have no value
    yet) or the master item (one poll). A trapper host waits for its sender."""
    if design.wiring == PER_CHECK:
        rules = zabbix.api("discoveryrule.get", {"hostids": hostid, "output": ["itemid"]})
        check_now(zabbix, [r["itemid"] for r in rules])
        if every_item:
            check_now(zabbix, [i["itemid"] for i in items(zabbix, hostid).values()
                               if i["lastclock"] == "0" and i["state"] == "0"])
    elif design.wiring != TRAPPER:
        found = zabbix.api("item.get", {"hostids": hostid, "filter": {"key_": master_key(design)},
                                        "output": ["itemid"]})
        check_now(zabbix, [i["itemid"] for i in found])


# The kinds of failure the reasons' discovery tells apart: {#KIND} and {#KIND.NAME}, and the queue of each.
KINDS = {"error-responses": ("sync", "Failed syncs"), "blob-error-responses": ("attachment", "Failed attachments")}
DEFAULT_REASONS = {"error-responses": "NO_ISSUE_TO_CONNECT_TO", "blob-error-responses": "CHECKSUM_MISMATCH"}


def scenario_reasons(connections: List[dict]) -> Dict[tuple, int]:
    """(connection, queue, reason) -> how many failures carry it, as the simulator lists them (its reasons in turn,
    the simulator's default when the scenario names none)."""
    found: Dict[tuple, int] = {}
    for c in connections:
        if c.get("removed"):
            continue
        for queue in KINDS:
            reasons = c.get(queue.replace("-responses", "_reasons").replace("-", "_")) or [DEFAULT_REASONS[queue]]
            for i in range(c.get("queues", {}).get(queue, 0)):
                key = (c["name"], queue, reasons[i % len(reasons)])
                found[key] = found.get(key, 0) + 1
    return found


def reason_key(connection: str, queue: str, reason: str) -> str:
    return f"{REASON_KEY}[{NODE_KEY},{key_form(connection)},{KINDS[queue][0]},{key_form(reason)}]"


def expected_items(design: Design, connections: List[dict], reasons=()) -> Dict[str, str]:
    """key -> name of every item a host of this template should have once its connections (and, one poll, the
    reasons of their failures: (connection, queue, reason) tuples) are discovered."""
    tree = template_tree(design.name)["templates"][0]
    found = {i["key"]: i["name"] for i in tree["items"]}
    for c, key, name in keyed(connections):
        for p in tree["discovery_rules"][0]["item_prototypes"]:
            found[p["key"].replace("{#CONNECTION.KEY}", key)] = p["name"].replace("{#CONNECTION}", name)
    for connection, queue, reason in reasons if design.one_poll else ():
        found[reason_key(connection, queue, reason)] = \
            f'Exalate: {KINDS[queue][1]} by reason {reason}, connection "{connection}"'
    return found


def newest_failure(failure: dict) -> str:
    """The newest failure as the templates' text item writes it."""
    return f"{failure['issue']} {failure['reason']}: {failure['message']}"


class Kept(str):
    """A value of an item that stores only changes ("Discard unchanged"): no new value is expected with time."""


class Unsupported:
    """An item expected to be unsupported, its error holding every one of these texts (or, with exact, ending
    in exactly that text).

    Zabbix 6.0 words a failed preprocessing step as "Preprocessing failed for: <the value>...", a line per step,
    and "<n>. Failed: <the step's error>" last: the last line, that prefix aside, is what "Check for error in
    JSON" found. A custom error ("Custom on fail") is the whole error."""

    def __init__(self, *texts: str, exact: Optional[str] = None):
        self.texts, self.exact = texts, exact

    @classmethod
    def because(cls, case: "Case", reason: str) -> "Unsupported":
        """Unsupported with our one-line reason as the error: word for word from the document's failures
        (one poll), or as the whole value the check printed, which Zabbix quotes (per check)."""
        if case.design.one_poll:
            return cls(exact=reason)
        # 7.0 quotes at most the value's first 200 or so characters ("...(truncated)"); 6.0 all of it.
        return cls(f'"zabbix-exalate: [{case.section}] {reason}'[:150])

    @staticmethod
    def last_error(error: str) -> str:
        lines = error.splitlines()
        return re.sub(r"^\d+\. Failed: ", "", lines[-1]) if lines else ""

    def __repr__(self):
        return f"unsupported with the error {self.exact!r}" if self.exact is not None else \
            f"unsupported with {self.texts} in its error"

    def matches(self, item: dict) -> bool:
        return item["state"] == "1" and all(t in item["error"] for t in self.texts) and \
            (self.exact is None or self.last_error(item["error"]) == self.exact)


def gone_reason(case: "Case", connection: str) -> Unsupported:
    """A removed connection's items: unsupported with the single check's reason (asked once per case)."""
    if connection not in case.gone:
        reason = case.reason("sync-requests", key_form(connection))
        assert f"connection '{connection}' not found" in reason and "removed or renamed" in reason, reason
        case.gone[connection] = reason
    return Unsupported.because(case, case.gone[connection])


def expected_values(case: Case) -> Dict[str, object]:
    """key -> the value the node's scenario says (a string, as Zabbix shows it), or Unsupported."""
    s = case.node.scenario
    newest = {c["key"]: c for c in case.document()["connections"]} if case.design.one_poll else {}
    want: Dict[str, object] = {node_key(PING_KEY): "1"}
    want.update({node_key(m.key): str(s[m.command]) for m in NODE_METRICS})
    if case.design.one_poll:
        want[node_key(CONNECTION_COUNT_KEY)] = str(len(s["connections"]))
        want[node_key(CREDENTIALS_KEY)] = str(CREDENTIAL_CODES["accepted"])
    for c, key, _ in keyed(s["connections"]):
        for m in CONNECTION_METRICS:
            want[at(m.key, key)] = (gone_reason(case, c["name"]) if c.get("removed")
                                    else str(c.get("queues", {}).get(m.command, 0)))
        if case.design.one_poll:
            # The node lists a removed connection as it was; its queues' "not found" make it REMOVED.
            want[at(STATUS_KEY, key)] = str(STATUS_CODES["REMOVED" if c.get("removed") else c["status"]])
            for m in CONNECTION_METRICS:
                # The simulator's queues start at syncEventId 1000 (the head), whatever order it lists them in.
                # Items that store only changes never turn unsupported: a removed connection's have values too.
                if m.in_flight:
                    want[at("exalate." + m.oldest_field, key)] = \
                        Kept("1000" if c.get("queues", {}).get(m.command) else "0")
                if m.last_field:
                    listed = newest.get(key, {})
                    want[at("exalate." + m.last_field, key)] = Kept(
                        "unknown: " + listed["failures"][m.field_name] if c.get("removed") else
                        newest_failure(listed[m.last_field]) if m.last_field in listed else "none")
    for (connection, queue, reason), count in case.reasons.items():
        want[reason_key(connection, queue, reason)] = str(count)
    return want


def mismatches(found: Dict[str, dict], want: Dict[str, object], since: float = 0) -> List[str]:
    """What differs from want; with since, also every supported value not stored after that moment."""
    wrong = []
    for key, value in want.items():
        item = found.get(key)
        if item is None:
            wrong.append(f"{key}: no such item")
        elif isinstance(value, Unsupported):
            if not value.matches(item):
                wrong.append(f"{key}: {value!r}, but state {item['state']}, error {item['error']!r}")
        elif item["state"] != "0" or item["lastvalue"] != value or (
                int(item["lastclock"]) <= since and not isinstance(value, Kept)):
            wrong.append(f"{key}: {value!r} expected, got {item['lastvalue']!r} at {item['lastclock']} "
                         f"(state {item['state']}, error {item['error']!r})")
    return wrong


def settle(what: str, case: Case, want: Dict[str, object], since: float = 0, seconds: float = 90) -> Dict[str, dict]:
    """Wait until the host's items are what want says; fail listing what is not."""
    def probe():
        found = case.items()
        return not mismatches(found, want, since) and found
    return wait_for(what, probe, seconds, detail=lambda: "\n".join(mismatches(case.items(), want, since)))


# --- fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def nodes():
    """A simulated node per template, started before the stack, whose agents get their sections."""
    started = {d.name: LiveNode(scenario(d)) for d in DESIGNS}
    yield started
    for node in started.values():
        node.stop()


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """The node implementation that is not ours: nginx serving the source documents' bodies."""
    require_binary("nginx")
    with NginxNode(tmp_path_factory.mktemp("nginx"), USER, PASSWORD, TOKEN) as server:
        yield server


@pytest.fixture(scope="module", params=VERSIONS, ids=lambda version: f"zabbix-{version}")
def zabbix(request, nodes, foreign):
    if os.geteuid() != 0:
        why = "the end-to-end suite installs and starts Zabbix: run it as root"
        pytest.fail(why) if os.environ.get("CI") else pytest.skip(why)
    # $ZABBIX_STACK_DIR, else the default; a database from an earlier run is reused.
    stack = Stack(version=request.param)
    stack.install()
    venv_bin = stack.make_venv(ROOT)
    # The agents run our commands as the zabbix user: the configuration is that user's, mode 0600, under the
    # state directory (which a chrooted stack sees at the same path).
    config = stack.state_dir / CONFIG_NAME
    # The agents' runs get the suite's timeout too: on 7.0, whose pollers ask for every per-check item at once,
    # dozens of processes share the 2 cores, and the 2.5 s default made a busy machine's run fail (CI's did).
    sections = [nodes[d.name].config_text(section(d)) + f"timeout = {COLLECT_TIMEOUT}\n" for d in DESIGNS]
    sections.append(f"[{FOREIGN}]\nurl = {foreign.url}\nuser = {USER}\npassword = {PASSWORD}\ntoken = {TOKEN}\n")
    config_file(config, text="\n".join(sections))
    stack.chown(config, "zabbix")
    stack.start(userparameter_file=ROOT / USERPARAMETER_FILE, agent_env={"ZABBIX_EXALATE_CONFIG": str(config)},
                venv_bin=venv_bin, agent_hostname=AGENT_HOSTNAME)
    # Hosts an earlier run left in a reused database would poll sections this run does not have.
    old = zabbix_hosts(stack)
    if old:
        stack.api("host.delete", list(old.values()))
    yield stack
    stack.stop()


def zabbix_hosts(zabbix: Stack) -> Dict[str, str]:
    """name -> hostid of the hosts this suite creates."""
    return {h["host"]: h["hostid"] for h in zabbix.api("host.get", {"search": {"host": HOST_PREFIX},
                                                                     "startSearch": True,
                                                                     "output": ["host"]})}


@pytest.fixture(scope="module")
def env(zabbix):
    """For the zabbix commands: the API and its login, and no node configuration."""
    return {"ZABBIX_URL": zabbix.url, "ZABBIX_USER": "Admin", "ZABBIX_PASSWORD": "zabbix",
            "ZABBIX_EXALATE_CONFIG": "/nonexistent"}


@pytest.fixture(scope="module")
def node_env(zabbix):
    """For the commands that read the nodes: the agents' configuration file (root may read it)."""
    return {"ZABBIX_EXALATE_CONFIG": str(zabbix.state_dir / CONFIG_NAME)}


@pytest.fixture(scope="module")
def imported(zabbix, env):
    ran = run_cli("zabbix", "import-template", env=env)
    assert ran.code == 0, ran
    assert ran.stdout.startswith("imported " + ", ".join(f'"{d.name}"' for d in DESIGNS)), ran


def add_host(zabbix: Stack, env: dict, name: str, section: str, design: Design, interval: int,
             proxy: str = "") -> str:
    """A host added with our command (twice: the second run updates), intervals and periods shortened; with
    proxy, monitored by that proxy."""
    old = zabbix.api("host.get", {"filter": {"host": name}, "output": ["hostid"]})
    if old:
        zabbix.api("host.delete", [h["hostid"] for h in old])
    args = ("zabbix", "add-host", name, "--agent-port", str(zabbix.agent_port), "--node", section,
            "--template", design.name) + (("--proxy", proxy) if proxy else ())
    # The HTTP template's host takes the node's URL and credentials from its section, as macros.
    http = design.wiring == HTTP
    if http:
        env = {**env, "ZABBIX_EXALATE_CONFIG": str(zabbix.state_dir / CONFIG_NAME)}
    added = run_cli(*args, env=env)
    assert added.code == 0 and "created" in added.stdout, added
    again = run_cli(*args, env=env)
    assert again.code == 0 and "updated" in again.stdout, again
    found = zabbix.api("host.get", {"filter": {"host": name}, "selectMacros": ["macro", "value", "type"],
                                    "selectParentTemplates": ["host"], "selectInterfaces": ["type"],
                                    "output": ["hostid"]})[0]
    assert [t["host"] for t in found["parentTemplates"]] == [design.name]
    macros = sorted((m["macro"], m.get("value") if m["type"] == "0" else "(secret)") for m in found["macros"])
    if http:  # nothing of ours on any host: no agent interface, the node's URL and credentials as macros
        assert found["interfaces"] == [], found
        assert (NODE_KEY, section) in macros and ("{$EXALATE.URL}", zabbix_url(zabbix, section)) in macros, macros
        assert ("{$EXALATE.PASSWORD}", "(secret)") in macros, macros
    else:
        assert macros == [(NODE_KEY, section)]
    zabbix.api("usermacro.create", [{"hostid": found["hostid"], "macro": macro, "value": value}
                                    for macro, value in fast_macros(interval).items()])
    return found["hostid"]


def zabbix_url(zabbix: Stack, section: str) -> str:
    """The url of a section of the agents' configuration file."""
    import configparser
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(zabbix.state_dir / CONFIG_NAME)
    return parser[section]["url"]


def discovered(zabbix: Stack, hostid: str, design: Design, count: int, what: str) -> None:
    """Wait until discovery made count items on the host, poking it ("check now") meanwhile."""
    def made() -> int:
        return int(zabbix.api("item.get", {"hostids": hostid, "filter": {"flags": 4}, "countOutput": True}))
    def state() -> str:
        rule = zabbix.api("discoveryrule.get", {"hostids": hostid, "output": ["state", "error", "lastclock"]})
        return f"{made()} discovered so far; the rule: {rule}\n" + server_log(zabbix, f'"{what}')
    wait_for(f"discovery made the {count} items of {what}", lambda: made() == count, seconds=90,
             poke=lambda: poke(zabbix, hostid, design), every=2, detail=state)


def server_log(zabbix: Stack, text: str, lines: int = 20) -> str:
    """The server log's last lines that hold text, for a failure message."""
    try:
        found = [line for line in (zabbix.zabbix_dir / "server.log").read_text(errors="replace").splitlines()
                 if text in line]
    except OSError as exc:
        return f"(no server log: {exc})"
    return "server log:\n" + "\n".join(found[-lines:])


def polled(zabbix: Stack, hostid: str, what: str, count: int, seconds: float = 90, poke=None) -> Dict[str, dict]:
    """Every item of the host once each has a value or has turned unsupported (the master items store none)."""
    def probe():
        current = items(zabbix, hostid)
        done = all(i["lastclock"] != "0" or i["state"] == "1" for i in current.values() if i["history"] != "0")
        return done and len(current) == count and current
    return wait_for(f"the {count} items of {what} polled once", probe, seconds, poke=poke, every=3,
                    detail=lambda: "\n".join(
        f"{k}: not yet" for k, i in items(zabbix, hostid).items()
        if i["lastclock"] == "0" and i["state"] == "0" and i["history"] != "0"))


@pytest.fixture(scope="module", params=[d.name for d in DESIGNS], ids=[d.slug for d in DESIGNS])
def case(request, zabbix, env, node_env, imported, nodes):
    """One template's host, linked and discovered; disabled when that template's tests are done."""
    design = BY_NAME[request.param]
    yield from hosted(Case(design, nodes[design.name], zabbix, node_env), env)


def hosted(c: Case, env: dict):
    """The case's host added, fed (trapper) and discovered; then disabled."""
    zabbix, design = c.zabbix, c.design
    c.hostid = add_host(zabbix, env, c.host, c.section, design, c.interval, c.proxy)
    if c.trapper:
        c.feeder = Feeder(c.send_args(), c.node_env).start()
    try:
        discovered(zabbix, c.hostid, design, len(expected_items(design, c.connections, c.reasons)) - len(
            template_tree(design.name)["templates"][0]["items"]), c.host)
        yield c
    finally:
        if c.feeder:
            c.feeder.stop()
        # Kept for a look after a failure, but no longer polled: the next template's tests run alone.
        zabbix.api("host.update", {"hostid": c.hostid, "status": 1})


def only(wiring: str, reason: str):
    """Run a test for some templates only: the others show as skipped, saying why."""
    keep = (lambda d: d.one_poll) if wiring == "one poll" else (lambda d: d.wiring == wiring)
    return pytest.mark.parametrize("case", [
        pytest.param(d.name, id=d.slug, marks=() if keep(d) else pytest.mark.skip(reason=f"{d.name}: {reason}"))
        for d in DESIGNS], indirect=True)


# --- Zabbix's API and the template files --------------------------------------------------------

@pytest.mark.parametrize("credentials, who", [({"ZABBIX_PASSWORD": "not-the-admin-pa55"}, "user 'Admin'"),
                                               ({"ZABBIX_TOKEN": "0" * 64}, "an API token")])
def test_a_refused_login_names_the_credential_and_shows_no_secret(zabbix, env, credentials, who):
    ran = run_cli("zabbix", "import-template", env={**env, **credentials})
    ran.assert_failed(4, "refused", who)
    assert not [secret for secret in credentials.values() if secret in ran.stderr]


ENTITIES = (("item.get", ("itemid", "key_", "name", "type", "delay")), ("discoveryrule.get", ("itemid", "key_")),
            ("itemprototype.get", ("itemid", "key_", "name")),
            ("trigger.get", ("triggerid", "description", "expression", "event_name")),
            ("triggerprototype.get", ("triggerid", "description", "expression", "event_name")),
            ("graph.get", ("graphid", "name")), ("graphprototype.get", ("graphid", "name")),
            ("templatedashboard.get", ("dashboardid", "name")))


def entities(zabbix: Stack, template: str, hostid: str) -> Dict[str, list]:
    """Every entity of the template and of a host linked to it, with its id: a re-import that recreated one
    would change its id."""
    found = zabbix.api("template.get", {"filter": {"host": template}, "output": ["templateid"]})
    assert len(found) == 1, found
    ids = {"templateids": found[0]["templateid"]}
    snapshot = {method: sorted(tuple(e[k] for k in fields) for e in zabbix.api(method, {**ids, "output": list(fields)}))
                for method, fields in ENTITIES}
    # usermacro.get's templateids means the hosts linked to them: a template's own macros are its hostids'.
    # A secret macro's value is never returned (the HTTP template's credentials).
    snapshot["usermacro.get"] = sorted((m["hostmacroid"], m["macro"], m.get("value")) for m in zabbix.api(
        "usermacro.get", {"hostids": found[0]["templateid"], "output": ["hostmacroid", "macro", "value"]}))
    snapshot["valuemap.get"] = sorted((v["valuemapid"], v["name"]) for v in zabbix.api(
        "valuemap.get", {"hostids": found[0]["templateid"], "output": ["valuemapid", "name"]}))
    snapshot["the host's items"] = sorted((i["itemid"], i["key_"], i["name"]) for i in zabbix.api(
        "item.get", {"hostids": hostid, "output": ["itemid", "key_", "name"]}))
    snapshot["the host's triggers"] = sorted((t["triggerid"], t["description"]) for t in zabbix.api(
        "trigger.get", {"hostids": hostid, "output": ["triggerid", "description"]}))
    return snapshot


def test_a_second_import_changes_nothing(zabbix, env, case):
    before = entities(zabbix, case.template, case.hostid)
    # Nothing of the template was dropped on the way in: Zabbix holds what the generator wrote.
    tree = template_tree(case.template, format_for(zabbix.zabbix_version))  # what import-template chose
    template = tree["templates"][0]
    rules = template["discovery_rules"]
    prototypes = [p for rule in rules for p in rule["item_prototypes"]]
    assert {method: len(found) for method, found in before.items() if method.endswith(".get")} == {
        "item.get": len(template["items"]), "discoveryrule.get": 2 if case.design.one_poll else 1,
        "itemprototype.get": len(prototypes),
        "trigger.get": sum(len(i.get("triggers", [])) for i in template["items"]),
        "triggerprototype.get": sum(len(p.get("trigger_prototypes", [])) for p in prototypes),
        "graph.get": len(tree["graphs"]),
        "graphprototype.get": sum(len(rule.get("graph_prototypes", [])) for rule in rules),
        "usermacro.get": len(template["macros"]), "templatedashboard.get": len(template["dashboards"]),
        "valuemap.get": len(template["valuemaps"])}
    ran = run_cli("zabbix", "import-template", env=env)
    assert ran.code == 0 and "imported" in ran.stdout, ran
    after = entities(zabbix, case.template, case.hostid)
    assert {k: v for k, v in after.items() if v != before[k]} == {}, "the second import changed these"


def test_discovery_makes_every_connection_s_items_under_its_real_name(case):
    want = expected_items(case.design, case.connections, case.reasons)
    found = {key: item["name"] for key, item in case.items().items()}
    assert found == want
    # What the operator reads: the real name, quotes and all, not the key form.
    assert f'Exalate: Failed syncs, connection "{ODD}"' in found.values()
    keys = set(found)
    connections = keyed(case.connections)
    assert {at(BY_COMMAND[q].key, key) for _, key, _ in connections for q in QUEUES} <= keys
    # Issue 15: the twins and the 10 KB name have items of their own, none refused: tagged keys, names that fit.
    odd = [(key, name) for c, key, name in connections if c["name"] in (TWIN, LONG)]
    assert len(odd) == (3 if case.design.one_poll else 1) and sum(is_tagged_key(key) for key, _ in odd) == \
        len(odd) - (1 if case.design.one_poll else 0), odd
    assert max(len(name) for name in found.values()) <= 255
    if case.design.one_poll:
        assert {node_key(RESPONSE_TIME_KEY), node_key(CONNECTION_COUNT_KEY)} <= keys
        assert {at(STATUS_KEY, key) for _, key, _ in connections} <= keys
        # The discovery script kept every digit of an id beyond 2^53 ({#CONNECTION.ID} in the description).
        (twin,) = [key for c, key, _ in connections if c.get("id") == BIG_ID]
        (item,) = case.zabbix.api("item.get", {"hostids": case.hostid, "output": ["description"],
                                               "filter": {"key_": at(STATUS_KEY, twin)}})
        assert f"id on the node: {BIG_ID}." in item["description"], item


def test_zabbix_stores_the_node_s_numbers(case):
    began = time.time()
    found = settle("every value equals the simulator's", case, expected_values(case))
    if case.design.one_poll:
        response = found[node_key(RESPONSE_TIME_KEY)]
        assert response["state"] == "0" and 0 < float(response["lastvalue"]) < float(COLLECT_TIMEOUT), response
    if case.trapper:
        # Once the server knew the new host, every send was accepted.
        sent = case.feeder.since(began)
        assert all(ran.code == 0 for ran in sent), sent


# --- a value that cannot be read ----------------------------------------------------------------

def test_a_failing_endpoint_makes_exactly_its_item_unsupported_with_our_reason(case):
    metric = BY_COMMAND["blob-responses"]
    targets = {queue_key(metric.command, ODD)}  # (its head, 0 as the queue is empty, stays 0)
    removed = [c["name"] for c in case.connections if c.get("removed")]
    unread = 6 * len(removed)  # the document's failures: a removed connection's six queues
    gone = {key for key, value in expected_values(case).items() if isinstance(value, Unsupported)}
    with case.node.fault(f"2.4/relations/{ODD}/" + metric.path.split("{connection}/")[1], status=500):
        began = time.time()
        reason = case.reason(metric.command, key_form(ODD))  # what the single check says, word for word
        assert "HTTP 500" in reason
        want = {**expected_values(case), **{target: Unsupported.because(case, reason) for target in targets}}
        # The others keep their values: each stores a new one while the fault lasts.
        found = settle("only the failing endpoint's item turned unsupported", case, want, since=began)
        assert {key for key, item in found.items() if item["state"] == "1"} == gone | targets
        if case.design.one_poll:
            # Zabbix writes the document, then each step's result, then the failure: ours is the third line.
            (target,) = targets
            lines = found[target]["error"].splitlines()
            assert len(lines) == 3 and lines[2] == "2. Failed: " + reason, lines
        if case.trapper:
            sent = case.feeder.since(began)
            assert sent and all(ran.code == 0 for ran in sent), sent
            assert f"{unread + 1} values unread" in sent[-1].stdout, sent[-1]
    settle("the item has its value again once the endpoint answers", case, expected_values(case), since=time.time())


@only("one poll", "no document: a connection that is no longer listed keeps being asked for, as Gone is")
def test_a_connection_the_node_no_longer_lists_is_removed_and_its_items_say_why(case):
    mine = {connection_key(m.key, ODD) for m in CONNECTION_METRICS}
    removed = removed_problem(ODD)
    with case.node.connection_changed(ODD, listed=False):
        began = time.time()
        want = {k: v for k, v in expected_values(case).items()}
        want.update({key: Unsupported(exact=CONNECTION_GONE) for key in mine})
        want[connection_key(STATUS_KEY, ODD)] = str(STATUS_CODES["REMOVED"])
        # The items that store only changes: no head, and the newest failure unknown, saying why.
        want.update({connection_key("exalate." + m.oldest_field, ODD): Kept("0")
                     for m in CONNECTION_METRICS if m.in_flight})
        want.update({connection_key("exalate." + m.last_field, ODD): Kept(
            "unknown: the node's connection list could not be read, or no longer lists this connection")
            for m in CONNECTION_METRICS if m.last_field})
        settle("the unlisted connection's items turned unsupported, the others kept their values", case, want,
               since=began)
        # Its problem says what happened, and it alone: its backlog problem (5 over its own 2) resolves.
        wait_for("the removed problem alone for the unlisted connection",
                 lambda: problems_of(case, ODD) == [removed], detail=lambda: problems_of(case, ODD))
    settle("the connection's items have values again once it is listed", case, expected_values(case),
           since=time.time())
    wait_for("the removed problem resolved once the connection is listed again",
             lambda: removed not in case.problems(), detail=case.problems)


def removed_problem(connection: str) -> str:
    return f'Exalate: Connection "{connection}" was removed or renamed on the other side'


def problems_of(case: Case, connection: str) -> List[str]:
    """The open problems of one connection."""
    return [p for p in case.problems() if f'"{connection}"' in p]


# --- problems -----------------------------------------------------------------------------------

def test_connection_problems_follow_their_thresholds(case):
    listed = {c["name"]: c for c in case.document()["connections"]}

    def failed(connection: str, what: str, field: str) -> str:
        """The failed-syncs problem: in a one-poll template, with the newest failure."""
        name = f'Exalate: Connection "{connection}": Failed {what} (over 0 for 12s)'
        return name + (": " + newest_failure(listed[connection][field]) if case.design.one_poll else "")

    expected = {failed("AllContent", "syncs", "last_error"),
                failed("AllContent", "attachments", "last_blob_error"),
                failed(ADO, "syncs", "last_error"),
                f'Exalate: Connection "{ADO}": High backlog of syncs to send (over 10 for 12s)',
                f'Exalate: Connection "{ODD}": High backlog of syncs to send (over 2 for 12s)'}
    if case.design.one_poll:
        # The node's own "not found ... removed" answer: that problem alone for the connection (its queues unread
        # for longer than its 30 s of no data meanwhile), and its status item says so.
        expected |= {'Exalate: Connection "Paused": Connection is deactivated for 12s',
                     'Exalate: Connection "Broken": Connection is in error for 12s', removed_problem("Gone")}
    else:
        expected.add('Exalate: Connection "Gone": No data for 30s')  # no status item to tell more
    found = wait_for("the connections' problems opened", lambda: expected <= set(case.problems()) and case.problems(),
                     detail=lambda: f"missing: {sorted(expected - set(case.problems()))}")
    # 40 queued is over the connection's own 10, not the template's 50, and 5 over the odd name's own 2;
    # "Paused" holds 300 but is deactivated, and a deactivated connection queues by design.
    assert sorted(p for p in found if "backlog" in p) == sorted(p for p in expected if "backlog" in p)
    assert set(found) <= expected, "problems nobody asked for"
    if case.design.one_poll:
        assert problems_of(case, "Gone") == [removed_problem("Gone")]
        status = case.items()[connection_key(STATUS_KEY, "Gone")]
        assert status["lastvalue"] == str(STATUS_CODES["REMOVED"]), status
        # The no-data trigger of Gone would be true by now: it is its condition on the status that keeps it off.
        (nodata,) = case.zabbix.api("trigger.get", {"hostids": case.hostid, "output": ["value", "expression"],
                                                    "search": {"description": 'Connection "Gone": No data'}})
        assert nodata["value"] == "0", nodata
    if case.design.one_poll:
        # What the operator reads: the issue, the reason and the message of the newest failure, in the problem's
        # name (checked above, word for word) and its operational data.
        name = failed(ADO, "syncs", "last_error")
        newest = newest_failure(listed[ADO]["last_error"])
        assert newest.startswith("AJP-100") and "NO_ISSUE_TO_CONNECT_TO: Could not connect" in newest, newest
        (problem,) = [p for p in case.zabbix.api("problem.get", {"hostids": case.hostid, "output": "extend"})
                      if p["name"] == name]
        print(f"problem.get on Zabbix {case.zabbix.zabbix_version}:", json.dumps(problem))  # shown with -s
        if "opdata" in problem:  # where the API expands it; else the frontend does, from the trigger and the item
            assert problem["opdata"] == "Failed: 2", problem
        (trigger,) = case.zabbix.api("trigger.get", {"triggerids": problem["objectid"], "output": ["opdata"]})
        assert trigger["opdata"] == "Failed: {ITEM.LASTVALUE1}", trigger
        assert case.items()[connection_key("exalate.last_error", ADO)]["lastvalue"] == newest
    # Once the other side catches up, the backlog problem resolves; the others stay.
    backlog = f'Exalate: Connection "{ADO}": High backlog of syncs to send (over 10 for 12s)'
    queues = next(c["queues"] for c in case.connections if c["name"] == ADO)
    with case.node.connection_changed(ADO, queues={**queues, "sync-requests": 3}):
        wait_for("the backlog problem resolved once the queue drained", lambda: backlog not in case.problems(),
                 detail=case.problems)
        assert expected - {backlog} <= set(case.problems())


def test_deactivated_connections_get_no_backlog_triggers(case):
    names = [t["description"] for t in case.zabbix.api("trigger.get", {
        "hostids": case.hostid, "output": ["description"], "expandDescription": True})]
    for connection in ("AllContent", ODD):  # the odd name's context, quotes and all, made a valid trigger
        assert f'Exalate: Connection "{connection}": High backlog of syncs to send' in names
        assert f'Exalate: Connection "{connection}": Very high backlog of syncs to send' in names
    assert 'Exalate: Connection "Paused": Failed syncs' in names
    assert not [n for n in names if '"Paused"' in n and "backlog" in n]


def test_every_trigger_description_reads_as_written_once_zabbix_expands_it(case):
    """Zabbix expands the macros of a trigger's description: only where a value is meant ("for 12s"); a macro the
    operator must change is named without braces, and stays so."""
    raw = {t["triggerid"]: t for t in case.zabbix.api("trigger.get", {
        "hostids": case.hostid, "output": ["comments", "description"]})}
    shown = case.zabbix.api("trigger.get", {"hostids": case.hostid, "output": ["comments"], "expandComment": True})
    assert len(shown) == len(raw) > 10
    named = set()
    for t in shown:
        written, expanded = raw[t["triggerid"]]["comments"], t["comments"]
        assert written and not misplaced_macros(written), (raw[t["triggerid"]]["description"], written)
        assert "{$" not in expanded and "docs/" not in expanded, expanded  # every value use got its value
        # What names a macro reaches the operator as written: no value stands where the name was meant.
        assert macro_names(expanded) == macro_names(written), (written, expanded)
        named.update(macro_names(expanded))
    if case.design.one_poll:
        (deactivated,) = [t["comments"] for t in shown
                          if raw[t["triggerid"]]["description"].endswith('"Paused": Connection is deactivated')]
        assert "EXALATE.DEACTIVATED.CONTROL" in deactivated and "^DEACTIVATED$" not in deactivated, deactivated
        assert " 1 to 0" not in deactivated, deactivated
        assert {"EXALATE.DEACTIVATED.CONTROL", "EXALATE.BACKLOG.IGNORE.STATUS", "EXALATE.LLD.LIFETIME"} <= named


def test_a_problem_opens_when_errors_appear_and_resolves_when_they_clear(case):
    def errors_problems():
        return [p for p in case.problems() if p.startswith("Exalate: Errors reported")]
    assert not errors_problems()
    with case.node.changed(errors=3):
        opened = wait_for("the errors problem opened", errors_problems, detail=lambda: (
            f"problems: {case.problems()}; errors item: {case.items()[node_key(BY_COMMAND['errors'].key)]}"))
        assert opened == ["Exalate: Errors reported (over 0 for 12s)"]
    wait_for("the errors problem resolved", lambda: not errors_problems())


@only("one poll", "no connection status item")
def test_the_connection_status_problems_open_resolve_and_follow_their_macro(case):
    deactivated = 'Exalate: Connection "Paused": Connection is deactivated for 12s'
    in_error = 'Exalate: Connection "Broken": Connection is in error for 12s'
    wait_for("both status problems opened", lambda: {deactivated, in_error} <= set(case.problems()),
             detail=case.problems)
    # A connection deactivated on purpose: its context macro silences it, and the other stays.
    macro = case.zabbix.api("usermacro.create", {"hostid": case.hostid, "macro": context(
        "{$EXALATE.DEACTIVATED.CONTROL}", "Paused"), "value": "0"})["hostmacroids"][0]
    try:
        wait_for("the deactivated problem resolved by its macro", lambda: deactivated not in case.problems(),
                 detail=case.problems)
        assert in_error in case.problems()
    finally:
        case.zabbix.api("usermacro.delete", [macro])
    wait_for("the deactivated problem back without the macro", lambda: deactivated in case.problems(),
             detail=case.problems)
    with case.node.connection_changed("Broken", status="ACTIVE"):
        wait_for("the error problem resolved once the connection is active",
                 lambda: in_error not in case.problems(), detail=case.problems)
        status = case.items()[connection_key(STATUS_KEY, "Broken")]
        assert status["lastvalue"] == str(STATUS_CODES["ACTIVE"]), status


@only("one poll", "no head of queue: stuck queues need a one-poll template")
def test_a_stuck_queue_opens_its_problem_and_resolves_when_its_head_moves(case):
    """ADO's queues hold events whose oldest does not move: stuck, however few. AllContent's move all along: never
    stuck, however long they are watched."""
    moving = {m.command: 600 for m in CONNECTION_METRICS if m.in_flight}  # ten events a second go through
    stuck = {f'Exalate: Connection "{ADO}": Syncs to send are stuck (oldest event 1000 waiting for 12s)',
             f'Exalate: Connection "{ADO}": Sync answers to process are stuck (oldest event 1000 waiting for 12s)'}
    macros = case.zabbix.api("usermacro.create", [
        {"hostid": case.hostid, "macro": context("{$EXALATE.STUCK.PERIOD}", name), "value": PERIOD}
        for name in (ADO, "AllContent")])["hostmacroids"]
    try:
        with case.node.connection_changed("AllContent", moves_per_minute=moving):
            found = wait_for("the stuck queues' problems opened", lambda: stuck <= set(case.problems()) and
                             case.problems(), detail=case.problems, seconds=120)
            assert not [p for p in found if "stuck" in p and p not in stuck], found
            problems = {p["name"]: p for p in case.zabbix.api("problem.get", {"hostids": case.hostid,
                                                                               "output": "extend"})}
            requests = problems[f'Exalate: Connection "{ADO}": Syncs to send are stuck (oldest event 1000 waiting for 12s)']
            print(f"problem.get on Zabbix {case.zabbix.zabbix_version}:", json.dumps(requests))  # shown with -s
            if "opdata" in requests:
                assert requests["opdata"] == "Waiting: 40, oldest event: 1000", requests
            (trigger,) = case.zabbix.api("trigger.get", {"triggerids": requests["objectid"],
                                                         "output": ["opdata", "priority"]})
            assert trigger == {"triggerid": requests["objectid"], "priority": "3",
                               "opdata": "Waiting: {ITEM.LASTVALUE3}, oldest event: {ITEM.LASTVALUE1}"}, trigger
            # AllContent went on moving the whole time: its heads changed, its problem never opened.
            heads = {m.oldest_field: case.items()[connection_key("exalate." + m.oldest_field, "AllContent")]
                     for m in CONNECTION_METRICS if m.in_flight}
            assert all(int(h["lastvalue"]) > 1000 for h in heads.values()), heads
            with case.node.connection_changed(ADO, moves_per_minute=moving):
                wait_for("the stuck problems resolved once the heads moved",
                         lambda: not stuck & set(case.problems()), detail=case.problems, seconds=120)
    finally:
        case.zabbix.api("usermacro.delete", macros)


# --- the trapper template's sender --------------------------------------------------------------

@only(TRAPPER, "fed by the agent, not by send")
def test_send_run_as_a_process_feeds_the_trapper_item_and_says_what_zabbix_answered(case, node_env):
    removed = [c for c in case.connections if c.get("removed")]
    ran = run_cli(*case.send_args(), env=node_env)
    assert ran.code == 0, ran
    unread = run_cli("--node", case.section, "--timeout", COLLECT_TIMEOUT, "status", env=node_env).stdout
    assert ran.stdout == (f"[{case.section}] ping 1, {len(case.connections)} connections, "
                          f"{6 * len(removed)} values unread; sent to 127.0.0.1:{case.zabbix.server_port} as "
                          f"exalate.collect of host '{case.host}': accepted\n"), unread
    refused = run_cli(*case.send_args(host=HOST_PREFIX + "no-such-host"), env=node_env)
    refused.assert_failed(10, "did not accept", HOST_PREFIX + "no-such-host")


# --- through a Zabbix proxy ---------------------------------------------------------------------

PROXIED = [d for d in DESIGNS if d.one_poll]


@pytest.fixture(scope="module", params=[d.name for d in PROXIED], ids=[f"{d.slug}-via-proxy" for d in PROXIED])
def proxied(request, zabbix, env, node_env, imported, nodes):
    """A one-poll template's host monitored by the stack's proxy: the proxy polls its agent, or takes what send
    pushes, and preprocesses. It watches the same node as the template's own host."""
    design = BY_NAME[request.param]
    yield from hosted(Case(design, nodes[design.name], zabbix, node_env, proxy=zabbix.proxy_name), env)


def test_through_a_proxy_the_same_items_values_reasons_and_problems(proxied):
    """The assertions of the host the server monitors, on a host the proxy monitors (one host per template)."""
    monitors = {p.get("name") or p["host"]: [h["host"] for h in p["hosts"]]  # 6.0: "host", 7.0: "name"
                for p in proxied.zabbix.api("proxy.get", {"output": "extend", "selectHosts": ["host"]})}
    assert proxied.host in monitors.get(proxied.proxy, []), monitors
    test_discovery_makes_every_connection_s_items_under_its_real_name(proxied)
    test_zabbix_stores_the_node_s_numbers(proxied)
    test_a_failing_endpoint_makes_exactly_its_item_unsupported_with_our_reason(proxied)
    test_a_problem_opens_when_errors_appear_and_resolves_when_they_clear(proxied)


def test_a_proxy_zabbix_does_not_have_is_one_line_saying_what_to_do(zabbix, env, imported):
    name = HOST_PREFIX + "no-proxy"
    ran = run_cli("zabbix", "add-host", name, "--proxy", "no-such-proxy", env=env)
    ran.assert_failed(10, "no proxy 'no-such-proxy'", repr(zabbix.proxy_name), "Administration > Proxies")
    assert not zabbix.api("host.get", {"filter": {"host": name}, "output": ["hostid"]})


# --- the node that is not ours ------------------------------------------------------------------

def test_a_node_that_is_not_ours_is_discovered_with_the_right_values(zabbix, env, node_env, case):
    name = f"{case.host}-{FOREIGN}"
    connections = json.loads((SEED / "jira/rest/issuehub/4.0/connections").read_text())["results"]
    assert [c["name"] for c in connections] == list(QUEUE_VALUES)
    # One poll is all this test needs: no interval, but "check now" (an agent host) or one send (trapper).
    hostid = add_host(zabbix, env, name, FOREIGN, case.design, interval=3600)
    feeder = Feeder(case.send_args(host=name, section=FOREIGN), node_env).start() if case.trapper else None
    # Two per-check hosts at once outrun the stack's two pollers on two cores: the check-now of this one would
    # queue behind the other's overdue checks. The case's host pauses meanwhile.
    paused = case.design.wiring == PER_CHECK
    if paused:
        zabbix.api("host.update", {"hostid": case.hostid, "status": 1})
    try:
        # The seed's failures: AllContent's one (its attachment failures are not valid JSON), ADO's two and two.
        reasons = [("AllContent", "error-responses", "NO_ISSUE_TO_CONNECT_TO")]
        ado = next(c["name"] for c in connections if c["name"].startswith("ADO"))
        reasons += [(ado, "error-responses", "NO_ISSUE_TO_CONNECT_TO"),
                    (ado, "blob-error-responses", "CHECKSUM_MISMATCH")]
        count = len(expected_items(case.design, connections, reasons))
        discovered(zabbix, hostid, case.design, count - len(template_tree(case.template)["templates"][0]["items"]),
                   name)
        found = polled(zabbix, hostid, name, count, poke=lambda: poke(zabbix, hostid, case.design, every_item=True))
        for command, value in NODE_VALUES.items():
            assert found[node_key(BY_COMMAND[command].key)]["lastvalue"] == str(value)
        assert found[node_key(PING_KEY)]["lastvalue"] == "1"
        for connection, values in QUEUE_VALUES.items():
            for queue, value in values.items():
                item = found[queue_key(queue, connection)]
                if value is None:  # the seed's own example lacks a comma: reported, never counted
                    assert item["state"] == "1" and "is not valid JSON" in item["error"], item
                else:
                    assert item["state"] == "0" and item["lastvalue"] == str(value), (connection, queue, item["error"])
        if case.design.one_poll:
            assert found[node_key(CONNECTION_COUNT_KEY)]["lastvalue"] == str(len(connections))
            for c in connections:
                assert found[connection_key(STATUS_KEY, c["name"])]["lastvalue"] == str(STATUS_CODES[c["status"]])
            assert found[connection_key("exalate.last_error", "AllContent")]["lastvalue"] == (
                "AC-113 NO_ISSUE_TO_CONNECT_TO: Could not connect `AC-113` to `AC-111`: issue by key `AC-111` "
                "already was connected to another issue using relation `AllContent`")
            assert found[connection_key("exalate.sync_requests_oldest", "AllContent")]["lastvalue"] == "4"
            assert [found[reason_key(*r)]["lastvalue"] for r in reasons] == ["1", "2", "2"]
    finally:
        if feeder:
            feeder.stop()
        zabbix.api("host.delete", [hostid])
        if paused:
            zabbix.api("host.update", {"hostid": case.hostid, "status": 0})


# --- the node goes down -------------------------------------------------------------------------

def test_node_unreachable_opens_when_the_node_stops_and_resolves_when_it_is_back(case):
    unreachable = "Exalate: Node is unreachable for 12s"
    assert unreachable not in case.problems()
    with case.node.down():
        began = time.time()
        ping = run_cli("--node", case.section, "ping", env=case.node_env)
        assert ping.stdout == "0\n", ping
        reason = ping.stderr.strip().split("] ", 1)[1]
        wait_for("the node-unreachable problem opened", lambda: unreachable in case.problems(),
                 detail=lambda: f"problems: {case.problems()}; ping item: {case.items()[node_key(PING_KEY)]}")
        found = case.items()
        ping_item = found[node_key(PING_KEY)]
        # A value, not an unsupported item: the trigger counts on the 0.
        assert ping_item["lastvalue"] == "0" and ping_item["state"] == "0", ping_item
        if case.design.one_poll:
            response = found[node_key(RESPONSE_TIME_KEY)]
            assert Unsupported.because(case, reason).matches(response), (reason, response)
            # No list from the node: no connection turns REMOVED. Zabbix 7.0 makes the statuses unsupported with
            # the list item's error, 6.0 gives them no value while their master has none.
            status = found[connection_key(STATUS_KEY, "AllContent")]
            assert status["lastvalue"] == str(STATUS_CODES["ACTIVE"]), status
            assert status["state"] == ("1" if case.zabbix.version >= "7.0" else "0"), status
            assert {p for p in case.problems() if "was removed" in p} <= {removed_problem("Gone")}, case.problems()
        if case.trapper:
            sent = case.feeder.since(began)
            assert sent and all(ran.code == 0 and "ping 0" in ran.stdout for ran in sent), sent
    wait_for("the node-unreachable problem resolved", lambda: unreachable not in case.problems(),
             detail=case.problems)
    if not case.design.one_poll:
        return  # the per-check template has no document to tell refused credentials apart: "unreachable" says both
    # The node answers, but refuses our credentials (a password changed, a secret rotated on the node).
    refused = "Exalate: Credentials refused by the node"
    with case.node.changed(credentials={"jwt_secret": "rotated-secret-0123456789abcdef0123", "user": "monitor",
                                        "password": "rotated-pa55"}):
        ran = run_cli("--node", case.section, "--timeout", COLLECT_TIMEOUT, "collect", env=case.node_env)
        doc = json.loads(ran.stdout)
        assert (doc["ping"], doc["credentials"]) == (0, "refused") and "HTTP 401" in doc["failures"]["ping"], doc
        wait_for("the credentials-refused problem opened", lambda: refused in case.problems(), detail=lambda: (
            f"problems: {case.problems()}; credentials item: {case.items()[node_key(CREDENTIALS_KEY)]}"))
        # Long enough for "Node is unreachable" to open were it not for the refusal: the ping has been 0 for more
        # than its period, polled every few seconds meanwhile.
        since = time.time()
        wait_for("the ping at 0 for longer than the unreachable period, and no unreachable problem", lambda: (
            unreachable not in case.problems() and time.time() - since > 12 + 2 * case.interval), every=2,
            seconds=60, detail=case.problems)
        found = case.items()
        assert found[node_key(PING_KEY)]["lastvalue"] == "0" and found[node_key(CREDENTIALS_KEY)]["lastvalue"] == \
            str(CREDENTIAL_CODES["refused"]), found[node_key(CREDENTIALS_KEY)]
        assert unreachable not in case.problems()
        (problem,) = [p for p in case.zabbix.api("problem.get", {"hostids": case.hostid, "output": "extend"})
                      if p["name"] == refused]
        (trigger,) = case.zabbix.api("trigger.get", {"triggerids": problem["objectid"], "output": ["comments"],
                                                     "expandComment": True})
        # What to do, in the description itself: the section to edit, with its name filled in (or the macro).
        assert (f"section {case.section} of /etc/zabbix/zabbix_exalate.conf" if case.design.wiring != HTTP
                else "the host's secret macro: EXALATE.PASSWORD") in trigger["comments"], trigger
    wait_for("the credentials-refused problem resolved", lambda: refused not in case.problems(),
             detail=case.problems)


@only(HTTP, "the other templates' credentials stay in the configuration file of the host that runs the command")
def test_the_zabbix_server_log_holds_no_secret_of_the_node(case):
    """The HTTP template's credentials are macros the server's JavaScript uses: none may reach its log."""
    def log() -> str:
        text = (case.zabbix.zabbix_dir / "server.log").read_text(errors="replace")
        return text if f'"{case.host}:' in text else ""  # the removed connection's items turned unsupported
    text = wait_for("the server log names the host's items (else this test would prove nothing)", log, seconds=60,
                    poke=lambda: poke(case.zabbix, case.hostid, case.design), every=3)
    credentials = case.node.scenario["credentials"]
    assert_no_secret(text, secrets=[credentials["jwt_secret"], credentials["password"]])


# --- both agents --------------------------------------------------------------------------------

def test_agent_2_serves_our_userparameters_as_the_classic_agent_does(zabbix, nodes):
    design = BY_NAME[AGENT_TEMPLATE]
    node = section(design)
    odd = key_form(ODD)
    keys = {f"exalate.ping[{node}]": "1", f"exalate.outgoing[{node}]": "12",
            f"exalate.sync_requests[{node},{key_form(ADO)}]": "40",
            f"exalate.blob_error_responses[{node},{odd}]": "0",
            f"exalate.error_responses[{node},AllContent,NO_ISSUE_TO_CONNECT_TO]": "5",
            f"exalate.error_responses[{node},AllContent,SCRIPT_ERROR]": "0"}
    for key, value in keys.items():
        assert zabbix.get(zabbix.agent2_port, key) == zabbix.get(zabbix.agent_port, key) == value, key
    rows = json.loads(zabbix.get(zabbix.agent2_port, f"exalate.discovery[{node}]"))
    assert [r["{#CONNECTION}"] for r in rows] == [name for _, _, name in keyed(nodes[design.name].scenario["connections"])]
    gone = zabbix.get(zabbix.agent2_port, f"exalate.sync_requests[{node},Gone]")
    assert "connection 'Gone' not found" in gone and gone == zabbix.get(zabbix.agent_port,
                                                                        f"exalate.sync_requests[{node},Gone]")
    # The one-poll master item: the same document from both, but for the time the node took to answer.
    documents = [json.loads(zabbix.get(port, f"exalate.collect[{node},]"))
                 for port in (zabbix.agent2_port, zabbix.agent_port)]
    for document in documents:
        assert document.pop("response_time") > 0
    assert documents[0] == documents[1]
    assert [shown(c["name"], c["key"]) for c in documents[0]["connections"]] == [r["{#CONNECTION}"] for r in rows]


# --- what the operator sees in the frontend -----------------------------------------------------

# $ZABBIX_SCREENSHOTS (a directory; relative: to the checkout) makes this test write the PNGs of docs/screenshots;
# without it they go to a temporary directory, and the pages are checked all the same.
SCREENSHOTS = os.environ.get("ZABBIX_SCREENSHOTS", "")
# The connections whose problems the screenshots show: failing (ADO), deactivated, in error and removed.
SHOWN = (ADO, "Paused", "Broken", "Gone")
PHP_LOG_ERRORS = re.compile(r"PHP (Fatal error|Parse error|Warning|Notice|Recoverable fatal error)")


@pytest.fixture
def shots_dir(zabbix, tmp_path) -> Path:
    if not SCREENSHOTS:
        return tmp_path
    found = Path(SCREENSHOTS)
    return (found if found.is_absolute() else ROOT / found) / zabbix.version


@only(AGENT, "one template's pages are enough, and the agent template is the one the docs show")
def test_the_frontend_shows_the_host_s_pages_without_error(case, shots_dir):
    """Latest data, Problems, the host's dashboard, a problem's description and an unsupported item's reason, as an
    operator sees them in a real frontend: no PHP or locale error on any page, and each shows what it should."""
    why = frontend_shots.available()
    if why:
        pytest.fail(why) if os.environ.get("CI") else pytest.skip(why)
    zabbix, hostid = case.zabbix, case.hostid
    wanted = {name: [] for name in SHOWN}

    def opened():
        found = zabbix.api("problem.get", {"hostids": hostid, "output": ["name", "objectid", "eventid"]})
        for name in wanted:
            wanted[name] = [p for p in found if f'"{name}"' in p["name"]]
        return all(wanted.values()) and found
    found = wait_for("a problem of each connection shown", opened, seconds=180,
                     detail=lambda: f"problems: {case.problems()}")
    items_by_key = case.items()
    gone = items_by_key[queue_key("sync-requests", "Gone")]
    assert gone["state"] == "1", gone
    reason = Unsupported.last_error(gone["error"])
    deactivated = wanted["Paused"][0]
    (trigger,) = zabbix.api("trigger.get", {"triggerids": deactivated["objectid"], "expandComment": True,
                                            "output": ["comments", "expression"]})  # expanding needs both
    v7 = zabbix.version == "7.0"
    pages = {"dashboard": f"zabbix.php?action=host.dashboard.view&hostid={hostid}&from=now-15m&to=now",
             "latest-data": f"zabbix.php?action=latest.view&hostids%5B%5D={hostid}&filter_set=1",
             "problems": f"zabbix.php?action=problem.view&hostids%5B%5D={hostid}&show_opdata=1&filter_set=1",
             "problem-description": f"tr_events.php?triggerid={deactivated['objectid']}"
                                    f"&eventid={deactivated['eventid']}",
             "unsupported-item": f"zabbix.php?action=latest.view&hostids%5B%5D={hostid}&name=Gone&filter_set=1"}
    log_start = zabbix.php_log.stat().st_size  # what PHP logs from here on, the pages logged
    with frontend_shots.Frontend(zabbix.url, "Admin", "zabbix") as browser:
        text = browser.open(pages["latest-data"], expect=ADO)
        assert all(name in text for name in SHOWN), text
        browser.collapse_filters()
        browser.save(shots_dir / "latest-data.png")

        text = browser.open(pages["problems"], expect=deactivated["name"])
        assert all(p["name"] in text for p in found), (sorted(p["name"] for p in found), text)
        browser.collapse_filters()
        browser.save(shots_dir / "problems.png")

        text = browser.open(pages["problem-description"], expect=deactivated["name"])
        assert trigger["comments"].split(". ")[0] in text, (trigger["comments"], text)
        browser.save(shots_dir / "problem-description.png")

        browser.open(pages["unsupported-item"], expect="Gone")
        browser.collapse_filters()
        browser.hover(".zi-i-negative" if v7 else ".icon-info.status-red")
        hint = browser.check()
        assert reason in hint, (reason, hint)
        browser.save(shots_dir / "unsupported-item.png")

        text = dashboard_page(browser, pages["dashboard"], v7, ADO)
        if v7:  # the problems widget: the open problems of the shown connections (they stay open), none resolved
            assert all(p["name"] in text for ps in wanted.values() for p in ps), text
            assert "RESOLVED" not in text, text
        browser.save(shots_dir / "dashboard.png")
        # The node down: the dashboard says so at once, its first tile red.
        with case.node.down():
            wait_for("the node-unreachable problem opened", lambda: [
                p for p in case.problems() if p.startswith("Exalate: Node is unreachable")], detail=case.problems)
            dashboard_page(browser, pages["dashboard"], v7, "Down")
            browser.save(shots_dir / "dashboard-node-down.png")
    logged = zabbix.php_log.read_text(errors="replace")[log_start:]
    assert not PHP_LOG_ERRORS.search(logged), logged


def dashboard_page(browser, page: str, v7: bool, expect: str) -> str:
    """The host's dashboard once its widgets have drawn: no widget that lost its item or says it cannot be shown."""
    text = browser.open(page, expect=expect)
    browser.collapse_filters()
    for broken in ("Inaccessible", "No permissions", "Invalid", "cannot"):
        assert broken not in text, text
    return text
