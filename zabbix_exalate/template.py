"""The Zabbix side, generated from metrics.py: the template, the agent's UserParameters, their reference tables."""
import hashlib
import re
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .metrics import BY_COMMAND, CONNECTION_METRICS, DISCOVERY_KEY, NODE_METRICS, PING_KEY

TEMPLATE = "Exalate by Zabbix agent"
GROUP = "Templates/Applications"
GROUP_UUID = "a571c0d144b14fd4a87a9d9b2aa9fcd6"  # Zabbix's own uuid for this group
VALUEMAP = "Exalate node state"
CONNECTION = "{#CONNECTION}"

# Where the generated files live, relative to the repository root.
TEMPLATE_FILE = "templates/template_exalate_agent.xml"
USERPARAMETER_FILE = "userparameters/userparameter_exalate.conf"
README_FILE = "templates/README.md"
KEYS_DOC = "docs/item-keys.md"

MACROS: Tuple[Tuple[str, str, str], ...] = (
    ("{$EXALATE.NODE}", "default",
     "Section of /etc/zabbix/zabbix_exalate.conf naming the Exalate node this host watches."),
    ("{$EXALATE.INTERVAL}", "1m", "How often the node and its connections are polled."),
    ("{$EXALATE.LLD.INTERVAL}", "1h", "How often the node's connections are discovered."),
    ("{$EXALATE.LLD.LIFETIME}", "7d", "How long the items of a connection that is no longer listed are kept."),
    ("{$EXALATE.CONNECTION.MATCHES}", ".*", "Discover only connections whose name matches this regular expression."),
    ("{$EXALATE.CONNECTION.NOT_MATCHES}", "CHANGE_IF_NEEDED",
     "Do not discover connections whose name matches this regular expression."),
    ("{$EXALATE.DOWN.PERIOD}", "3m", "How long the node must fail every check before it counts as unreachable."),
    ("{$EXALATE.NODATA.PERIOD}", "30m", "How long without any value before a check counts as silent. "
     "Context: a connection's name."),
    ("{$EXALATE.ERRORS.MAX.WARN}", "0", "Errors the node may report before a problem opens."),
    ("{$EXALATE.ERRORS.PERIOD}", "5m", "How long errors must stand above the threshold before a problem opens."),
    ("{$EXALATE.FAILED.MAX.WARN}", "0", "Failed sync requests a connection may hold. Context: a connection's name."),
    ("{$EXALATE.BLOB.FAILED.MAX.WARN}", "0",
     "Failed attachment syncs a connection may hold. Context: a connection's name."),
    ("{$EXALATE.FAILED.PERIOD}", "10m",
     "How long failures must stand above the threshold before a problem opens. Context: a connection's name."),
    ("{$EXALATE.QUEUE.MAX.WARN}", "50", "Sync backlog of a connection that raises a warning. "
     "Context: a connection's name."),
    ("{$EXALATE.QUEUE.MAX.HIGH}", "200", "Sync backlog of a connection that raises an average problem. "
     "Context: a connection's name."),
    ("{$EXALATE.QUEUE.PERIOD}", "30m", "How long a backlog may stand above a threshold before a problem opens. "
     "Context: a connection's name."),
    ("{$EXALATE.BACKLOG.IGNORE.STATUS}", "^DEACTIVATED$", "Connections whose status matches this regular "
     "expression get no backlog triggers: a deactivated connection queues changes by design."),
)

COLORS = ("1A7C11", "F63100", "2774A4", "A54F10", "FC6EA3", "6C59DC")


def uid(slug: str) -> str:
    """A stable UUIDv4 (as Zabbix writes it) for one template entity."""
    return uuid.UUID(bytes=hashlib.md5(f"zabbix-exalate:{slug}".encode()).digest(), version=4).hex


def node_key(base: str) -> str:
    return f"{base}[{{$EXALATE.NODE}}]"


def connection_key(base: str) -> str:
    return f"{base}[{{$EXALATE.NODE}},{{#CONNECTION.KEY}}]"


def ctx(macro: str) -> str:
    """A threshold macro that can be overridden per connection: {$M} -> {$M:"{#CONNECTION}"}."""
    return f'{macro[:-1]}:"{CONNECTION}"}}'


def ref(key: str) -> str:
    return f"/{TEMPLATE}/{key}"


def tags(**pairs: str) -> List[dict]:
    return [{"tag": k, "value": v} for k, v in pairs.items()]


PING = node_key(PING_KEY)
NODE_DOWN = {"name": "Exalate: Node is unreachable", "expression": f"max({ref(PING)},{{$EXALATE.DOWN.PERIOD}})=0"}


def trigger(slug: str, expression: str, name: str, priority: str, description: str, event_name: str = "",
            opdata: str = "", depends: Tuple[dict, ...] = (NODE_DOWN,), scope: str = "availability") -> dict:
    entity = {"uuid": uid(f"trigger:{slug}"), "expression": expression, "name": name}
    if event_name:
        entity["event_name"] = event_name
    if opdata:
        entity["opdata"] = opdata
    entity.update(priority=priority, description=description)
    if depends:
        entity["dependencies"] = [dict(d) for d in depends]
    entity["tags"] = tags(scope=scope)
    return entity


def item(slug: str, name: str, key: str, description: str, component: str, triggers=(), connection=False, **extra):
    entity = {"uuid": uid(f"item:{slug}"), "name": name, "key": key, "delay": "{$EXALATE.INTERVAL}",
              "history": "7d", "value_type": "UNSIGNED", "description": description}
    entity.update(extra)
    entity["tags"] = tags(component=component, **({"connection": CONNECTION} if connection else {}))
    if triggers:
        entity["trigger_prototypes" if connection else "triggers"] = list(triggers)
    return entity


def node_items() -> List[dict]:
    items = [item("ping", "Exalate: Node reachable", PING,
                  "1 when the node answered an authenticated request as its API promises, else 0. Run "
                  "`zabbix-exalate --node <node> ping` as the zabbix user to see why it did not.", "health",
                  valuemap={"name": VALUEMAP}, triggers=[
                      trigger("node-down", NODE_DOWN["expression"], NODE_DOWN["name"], "HIGH", depends=(),
                              event_name="Exalate: Node is unreachable for {$EXALATE.DOWN.PERIOD}",
                              description="Every check of the node failed for {$EXALATE.DOWN.PERIOD}: it is down, "
                              "unreachable from the agent, or refuses our credentials. No connection of the node is "
                              "syncing while this lasts. On the agent host run `zabbix-exalate --node "
                              "{$EXALATE.NODE} ping` as the zabbix user: its last line says why, and "
                              "docs/troubleshooting.md says what to do."),
                      trigger("no-data", f"nodata({ref(PING)},{{$EXALATE.NODATA.PERIOD}})=1",
                              "Exalate: No data from the checks", "WARNING", depends=(),
                              event_name="Exalate: No data from the checks for {$EXALATE.NODATA.PERIOD}",
                              description="The agent has sent no result of the Exalate checks for "
                              "{$EXALATE.NODATA.PERIOD}, so nothing about the node is known. Check that the agent "
                              "is running, that userparameter_exalate.conf is in its include directory, and that "
                              "the item's error in Latest data (for example an unsupported key) is resolved."),
                  ])]
    for m in NODE_METRICS:
        triggers = []
        if m.command == "errors":
            triggers.append(trigger(
                "errors", f"min({ref(node_key(m.key))},{{$EXALATE.ERRORS.PERIOD}})>{{$EXALATE.ERRORS.MAX.WARN}}",
                "Exalate: Errors reported", "AVERAGE", scope="notice",
                event_name="Exalate: Errors reported (over {$EXALATE.ERRORS.MAX.WARN} for {$EXALATE.ERRORS.PERIOD})",
                opdata="Errors: {ITEM.LASTVALUE1}",
                description="The node reports sync errors. Each error holds up the issues it concerns until "
                "someone resolves it: open the Exalate console, Errors tab, read the cause, fix it (often a "
                "script or a permission on the other side) and resolve the error to resume the sync."))
        items.append(item(m.command, f"Exalate: {m.title}", node_key(m.key), m.description,
                          "errors" if m.command == "errors" else "queue", triggers=triggers))
    return items


def connection_triggers(m) -> List[dict]:
    """Trigger prototypes for one per-connection queue."""
    key = ref(connection_key(m.key))
    who = f'Exalate: Connection "{CONNECTION}"'
    if m.command == "sync-requests":
        period, high_limit, warn_limit = (ctx("{$EXALATE.QUEUE.PERIOD}"), ctx("{$EXALATE.QUEUE.MAX.HIGH}"),
                                          ctx("{$EXALATE.QUEUE.MAX.WARN}"))
        high = trigger("backlog-high", f"min({key},{period})>{high_limit}",
                       f"{who}: Sync backlog is very high", "AVERAGE", scope="performance",
                       event_name=f"{who}: Sync backlog is very high (over {high_limit} for {period})",
                       opdata="Queued: {ITEM.LASTVALUE1}",
                       description="Changes are piling up faster than the other side fetches them: the other "
                       "side is down, stuck on an error, or its connection is deactivated. Issues on the two sides "
                       "drift apart until it catches up. Check the connection on both nodes (status, Errors tab) "
                       "and the other node's health.")
        warn = trigger("backlog-warn", f"min({key},{period})>{warn_limit}",
                       f"{who}: Sync backlog is high", "WARNING", scope="performance",
                       event_name=f"{who}: Sync backlog is high (over {warn_limit} for {period})",
                       opdata="Queued: {ITEM.LASTVALUE1}",
                       description="More changes of this connection are waiting than usual. It often clears "
                       "by itself after a bulk update; if it keeps growing, check the other side's node and the "
                       "connection's Errors tab.",
                       depends=(NODE_DOWN, {"name": high["name"], "expression": high["expression"]}))
        gone = trigger("connection-gone", f"nodata({key},{ctx('{$EXALATE.NODATA.PERIOD}')})=1",
                       f"{who}: No data, it may have been removed on the other side", "WARNING",
                       event_name=f"{who}: No data for {ctx('{$EXALATE.NODATA.PERIOD}')}",
                       description="The connection's queues have not been read for "
                       f"{ctx('{$EXALATE.NODATA.PERIOD}')}. When the item's error says \"not found\", the "
                       "connection was removed or renamed on the other side: re-create it or, if that was "
                       "intended, let discovery drop it. Otherwise the item's error in Latest data says why.")
        return [high, warn, gone]
    if m.command in ("error-responses", "blob-error-responses"):
        what = "syncs" if m.command == "error-responses" else "attachment syncs"
        limit = ctx("{$EXALATE.FAILED.MAX.WARN}" if m.command == "error-responses"
                    else "{$EXALATE.BLOB.FAILED.MAX.WARN}")
        period = ctx("{$EXALATE.FAILED.PERIOD}")
        return [trigger(f"{m.command}-failed", f"min({key},{period})>{limit}", f"{who}: Failed {what}", "WARNING",
                        scope="notice", event_name=f"{who}: Failed {what} (over {limit} for {period})",
                        opdata="Failed: {ITEM.LASTVALUE1}",
                        description=f"The other side could not apply {what} of this connection; the issues "
                        "concerned stay out of sync. Run `zabbix-exalate --node {$EXALATE.NODE} "
                        f"{m.command} '{{#CONNECTION.KEY}}' --reason <REASON>` to count one cause, read the "
                        "errors in the Exalate console of the other side, fix them and retry.")]
    return []


def discovery_rule() -> dict:
    prototypes = [item(m.command, f'Exalate: Connection "{CONNECTION}": {m.title}', connection_key(m.key),
                       m.description, "queue", connection=True, triggers=connection_triggers(m))
                  for m in CONNECTION_METRICS]
    return {
        "uuid": uid("discovery:connections"),
        "name": "Exalate: Connection discovery",
        "key": node_key(DISCOVERY_KEY),
        "delay": "{$EXALATE.LLD.INTERVAL}",
        "filter": {"evaltype": "AND", "conditions": [
            {"macro": CONNECTION, "value": "{$EXALATE.CONNECTION.MATCHES}", "operator": "MATCHES_REGEX",
             "formulaid": "A"},
            {"macro": CONNECTION, "value": "{$EXALATE.CONNECTION.NOT_MATCHES}", "operator": "NOT_MATCHES_REGEX",
             "formulaid": "B"}]},
        "lifetime": "{$EXALATE.LLD.LIFETIME}",
        "description": "The node's connections (GET 4.0/connections, else the connections listed in the "
                       "configuration file), with their six queues each.",
        "item_prototypes": prototypes,
        "graph_prototypes": [{
            "uuid": uid("graph:connection-queues"), "name": f'Exalate: Connection "{CONNECTION}": Queues',
            "graph_items": graph_items(connection_key(m.key) for m in CONNECTION_METRICS)}],
        "overrides": [{
            "name": "No backlog triggers for deactivated connections", "step": "1",
            "filter": {"evaltype": "AND", "conditions": [
                {"macro": "{#CONNECTION.STATUS}", "value": "{$EXALATE.BACKLOG.IGNORE.STATUS}",
                 "operator": "MATCHES_REGEX", "formulaid": "A"}]},
            "operations": [{"operationobject": "TRIGGER_PROTOTYPE", "operator": "LIKE", "value": "backlog",
                            "discover": "NO_DISCOVER"}]}],
    }


def graph_items(keys) -> List[dict]:
    return [{"sortorder": str(i), "color": COLORS[i % len(COLORS)], "item": {"host": TEMPLATE, "key": key}}
            for i, key in enumerate(keys)]


NODE_GRAPHS = (("Exalate: Sync queues", ("outgoing", "incoming")), ("Exalate: Errors", ("errors",)))


def dashboard() -> dict:
    def widget(kind, name, x, y, width, height, fields):
        return {"type": kind, "name": name, "x": str(x), "y": str(y), "width": str(width), "height": str(height),
                "fields": fields}

    graph_name = f'Exalate: Connection "{CONNECTION}": Queues'
    widgets = [widget("GRAPH_CLASSIC", name, 12 * i, 0, 12, 5,
                      [{"type": "GRAPH", "name": "graphid", "value": {"host": TEMPLATE, "name": name}}])
               for i, (name, _) in enumerate(NODE_GRAPHS)]
    widgets.append(widget("GRAPH_PROTOTYPE", "Connections: queues", 0, 5, 24, 10, [
        {"type": "INTEGER", "name": "columns", "value": "2"},
        {"type": "INTEGER", "name": "rows", "value": "2"},
        {"type": "GRAPH_PROTOTYPE", "name": "graphid", "value": {"host": TEMPLATE, "name": graph_name}}]))
    return {"uuid": uid("dashboard:overview"), "name": "Exalate node", "pages": [{"widgets": widgets}]}


def template_tree() -> dict:
    return {"version": "6.0",
            "groups": [{"uuid": GROUP_UUID, "name": GROUP}],
            "templates": [{
                "uuid": uid("template"), "template": TEMPLATE, "name": TEMPLATE,
                "description": "Watches an Exalate node (Jira, ServiceNow, Zendesk, GitHub, Azure DevOps, HP ALM "
                               "sync) through zabbix-exalate run by the Zabbix agent: node reachability, errors, "
                               "queue totals, and the six queues of every discovered connection. Setup: "
                               "templates/README.md of zabbix-exalate.",
                "groups": [{"name": GROUP}],
                "items": node_items(),
                "discovery_rules": [discovery_rule()],
                "tags": tags(**{"class": "application", "target": "exalate"}),
                "macros": [{"macro": m, "value": v, "description": d} for m, v, d in MACROS],
                "dashboards": [dashboard()],
                "valuemaps": [{"uuid": uid("valuemap"), "name": VALUEMAP, "mappings": [
                    {"value": "0", "newvalue": "Down"}, {"value": "1", "newvalue": "Up"}]}]}],
            "graphs": [{"uuid": uid(f"graph:{name}"), "name": name,
                        "graph_items": graph_items(node_key(BY_COMMAND[c].key) for c in commands)}
                       for name, commands in NODE_GRAPHS]}


# In Zabbix's export format a list is a plural element holding one singular element per entry.
SINGULAR = {"groups": "group", "templates": "template", "items": "item", "triggers": "trigger",
            "trigger_prototypes": "trigger_prototype", "item_prototypes": "item_prototype",
            "discovery_rules": "discovery_rule", "graph_prototypes": "graph_prototype", "graphs": "graph",
            "graph_items": "graph_item", "tags": "tag", "macros": "macro", "dependencies": "dependency",
            "conditions": "condition", "overrides": "override", "operations": "operation",
            "dashboards": "dashboard", "pages": "page", "widgets": "widget", "fields": "field",
            "valuemaps": "valuemap", "mappings": "mapping"}


def _element(tag: str, value) -> ET.Element:
    node = ET.Element(tag)
    if isinstance(value, dict):
        node.extend(_element(k, v) for k, v in value.items())
    elif isinstance(value, list):
        node.extend(_element(SINGULAR[tag], v) for v in value)
    else:
        node.text = value
    return node


def template_xml() -> str:
    """The template as Zabbix 6.0 XML, byte for byte what templates/ holds."""
    root = _element("zabbix_export", template_tree())
    ET.indent(root, "    ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# --- the agent's side: one UserParameter per key -------------------------------------------------

def userparameters() -> List[Tuple[str, str]]:
    """(key, command) for every item key the template uses; $1 is the node, $2 a connection's key form."""
    rows = [(PING_KEY, "zabbix-exalate --node '$1' ping 2>/dev/null"),  # 0 and why: the why would spoil the 0
            (DISCOVERY_KEY, "zabbix-exalate --node '$1' discover")]
    rows += [(m.key, f"zabbix-exalate --node '$1' {m.command}") for m in NODE_METRICS]
    for m in CONNECTION_METRICS:
        reason = " --reason '$3'" if m.reason_field else ""
        rows.append((m.key, f"zabbix-exalate --node '$1' {m.command}{reason} -- '$2'"))  # --: a key may start with -
    return rows


USERPARAMETER_HEADER = """\
# zabbix-exalate: the Exalate checks for the Zabbix agent (classic agent and agent 2).
#
# Install: copy this file into the agent's include directory, then restart the agent:
#   classic agent: /etc/zabbix/zabbix_agentd.d/ (Debian's own package: /etc/zabbix/zabbix_agentd.conf.d/)
#                  systemctl restart zabbix-agent
#   agent 2:       /etc/zabbix/zabbix_agent2.d/   then   systemctl restart zabbix-agent2
# The checks read /etc/zabbix/zabbix_exalate.conf (or $ZABBIX_EXALATE_CONFIG in the agent's environment):
# it holds secrets, so make it readable by the zabbix user and nobody else:
#   chown root:zabbix /etc/zabbix/zabbix_exalate.conf && chmod 0640 /etc/zabbix/zabbix_exalate.conf
# zabbix-exalate must be on the agent's PATH (pip puts it in /usr/local/bin), or write its full path below.
# Keep the agent's Timeout at 3 s or more: each check gives up after its own timeout (2.5 s by default).
# Try one: zabbix_get -s 127.0.0.1 -k 'exalate.ping[default]'
#
# Keys: exalate.<check>[<node>] and exalate.<check>[<node>,<connection key>]. <node> is a section of the
# configuration file (empty: [default]); <connection key> is {#CONNECTION.KEY} from exalate.discovery, or
# a name without the characters the agent refuses. No key or command line carries a secret.
# exalate.error_responses and exalate.blob_error_responses take a third parameter: count one reason only.
# Generated from zabbix_exalate/metrics.py by `python -m zabbix_exalate.template`: edit that, not this.
"""


def userparameter_conf() -> str:
    return USERPARAMETER_HEADER + "".join(f"UserParameter={key}[*],{command}\n" for key, command in userparameters())


# --- reference tables for templates/README.md and docs/item-keys.md ------------------------------

def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Tuple[str, ...], rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _walk_triggers() -> List[Tuple[str, dict]]:
    tree = template_tree()["templates"][0]
    found = [("", t) for i in tree["items"] for t in i.get("triggers", [])]
    prototypes = tree["discovery_rules"][0]["item_prototypes"]
    found += [("yes", t) for i in prototypes for t in i.get("trigger_prototypes", [])]
    return found


def tables() -> Dict[str, str]:
    tree = template_tree()["templates"][0]
    rule = tree["discovery_rules"][0]
    return {
        "macros": _table(("Macro", "Default", "Description"), ((f"`{m}`", f"`{v}`", d) for m, v, d in MACROS)),
        "discovery": _table(("Name", "Key", "Description"), [(rule["name"], f"`{rule['key']}`", rule["description"])]),
        "items": _table(("Name", "Key", "Description"), ((i["name"], f"`{i['key']}`", i["description"])
                                                         for i in tree["items"] + rule["item_prototypes"])),
        "triggers": _table(("Name", "Expression", "Severity", "Per connection", "Depends on"), (
            (t.get("event_name") or t["name"], f"`{t['expression']}`", t["priority"].title(), proto,
             "; ".join(d["name"] for d in t.get("dependencies", []))) for proto, t in _walk_triggers())),
        "keys": _table(("Key", "Command the agent runs"), ((f"`{k}[*]`", f"`{c}`") for k, c in userparameters())),
    }


BLOCK = re.compile(r"(<!-- generated: (\w+) -->\n).*?(\n<!-- end generated -->)", re.S)


def fill(text: str) -> str:
    """Replace every generated block of a Markdown file with the current table."""
    current = tables()
    return BLOCK.sub(lambda m: m.group(1) + current[m.group(2)] + m.group(3), text)


def generated_files(root: Path) -> Dict[Path, str]:
    """Every file this module writes, with the content it should have."""
    return {root / TEMPLATE_FILE: template_xml(),
            root / USERPARAMETER_FILE: userparameter_conf(),
            root / README_FILE: fill((root / README_FILE).read_text(encoding="utf-8")),
            root / KEYS_DOC: fill((root / KEYS_DOC).read_text(encoding="utf-8"))}


def main(argv: Optional[List[str]] = None) -> None:
    """Rewrite the generated files of the repository (default: the one this package sits in)."""
    root = Path((argv or sys.argv[1:] or [Path(__file__).resolve().parent.parent])[0])
    for path, content in generated_files(root).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")


if __name__ == "__main__":
    main()
