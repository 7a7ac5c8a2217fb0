"""What the bundled templates hold, generated from metrics.py: macros, items, triggers, discovery, graphs, dashboard."""
import json
import re
from typing import Dict, List, Optional, Tuple

from ..metrics import (BACKLOG, BY_COMMAND, CONNECTION_COUNT_KEY, CONNECTION_LIST_KEY, CONNECTION_METRICS,
                       CONNECTION_STATUSES, CREDENTIAL_STATES, CREDENTIALS_FIELD, CREDENTIALS_KEY, DISCOVERY_KEY,
                       ERRORS_REPORTED, FAILED, NODE_METRICS, OTHER_STATUS, PING_KEY, REASON_DISCOVERY_KEY,
                       REASON_KEY, REFUSED, REMOVED, RESPONSE_TIME_KEY, STATUS_KEY, UNKNOWN_CREDENTIALS)
from ..exalate.names import CUT, KEY_TAG, ROOM
from .design import (AGENT, BY_NAME, CONNECTION, CONNECTION_KEY, CREDENTIALS_VALUEMAP, DEFAULT_FORMAT,
                     DEFAULT_TEMPLATE, GROUP, GROUP_UUID, HTTP, PER_CHECK, STATUS_VALUEMAP, TRAPPER, VALUEMAP, Design,
                     connection_key, ctx, master_key, node_key, tags)
from .httpscript import http_script

COLORS = ("1A7C11", "F63100", "2774A4", "A54F10", "FC6EA3", "6C59DC")
STATUS_CODES = dict(CONNECTION_STATUSES)
CREDENTIAL_CODES = dict(CREDENTIAL_STATES)


# Zabbix 7.0 takes an item's timeout from the item (a macro may give it), and ends the agent's command when it
# runs out. The command keeps its own, shorter deadline ({$EXALATE.COLLECT.TIMEOUT} for collect, the node's
# timeout for a single check) and says why it gave up, so each value gets its own reason; the item's timeout is
# the backstop. Zabbix cannot compute one macro from another ("collect's timeout minus a margin"), so these are
# two macros, and the default item timeout is 30 s: the most a 6.0 agent's Timeout could be, so that every
# {$EXALATE.COLLECT.TIMEOUT} a host overrode and that worked on 6.0 stays below it after the 7.0 template is
# imported over the 6.0 one. The margin asked for, a second, covers the command's exit and the answer's way
# back (its start-up counts against its own deadline). 7.0 polls agents asynchronously: a long backstop holds no
# server poller.
ITEM_TIMEOUT = "{$EXALATE.ITEM.TIMEOUT}"

# The HTTP template's Script item: each parameter of its JavaScript (exalate_http.js), the macro that gives it, its
# default and what it is. Each is a key of the node's section in the configuration file of the same name (add-host
# copies them from there); the secrets are secret macros.
HTTP_TIMEOUT = "{$EXALATE.HTTP.TIMEOUT}"
HTTP_MACROS: Tuple[Tuple[str, str, str, str], ...] = (
    ("url", "{$EXALATE.URL}", "", "The node's base URL (url in the configuration file), e.g. https://jira.example.com: "
     "the Zabbix server, or the proxy that monitors the host, must reach it."),
    ("monitor_url", "{$EXALATE.MONITOR.URL}", "", "The customer monitor's URL when it is not under the node's "
     "(monitor_url); empty: the node's 4.0/cmonitor."),
    ("jwt_secret", "{$EXALATE.JWT.SECRET}", "", "The connection's shared secret (jwt_secret): a JWT is signed with it "
     "for the 2.4 queues. Secret."),
    ("jwt_user", "{$EXALATE.JWT.USER}", "", "The user claim of the signed JWT (jwt_user)."),
    ("jwt_issuer", "{$EXALATE.JWT.ISSUER}", "EXALATE", "The iss claim of the signed JWT (jwt_issuer)."),
    ("jwt_exp_unit", "{$EXALATE.JWT.EXP.UNIT}", "seconds", "The unit of the signed JWT's exp claim: seconds or "
     "milliseconds (jwt_exp_unit)."),
    ("token", "{$EXALATE.TOKEN}", "", "A ready-made JWT sent as it is (token). Secret."),
    ("user", "{$EXALATE.USER}", "", "Jira basic auth user for the 4.0 endpoints (user)."),
    ("password", "{$EXALATE.PASSWORD}", "", "Jira basic auth password (password). Secret."),
    ("monitor_user", "{$EXALATE.MONITOR.USER}", "", "User for the customer monitor (monitor_user)."),
    ("monitor_password", "{$EXALATE.MONITOR.PASSWORD}", "", "Password for the customer monitor (monitor_password). "
     "Secret."),
    ("login_user", "{$EXALATE.LOGIN.USER}", "", "User of 4.0/authenticate, which returns a JWT (login_user)."),
    ("login_password", "{$EXALATE.LOGIN.PASSWORD}", "", "Password (or token) of 4.0/authenticate (login_password). "
     "Secret."),
    ("ping_check", "{$EXALATE.PING.CHECK}", "outgoing", "The read whose answer is the ping: outgoing, incoming, "
     "errors or discover (ping_check)."),
    ("timeout", HTTP_TIMEOUT, "10s", "The Script item's timeout, 1s to 60s: its requests run one after another, "
     "and none starts in its last half second, so that the values read are returned with a reason for each value "
     "not read. A poll makes 4 requests and 6 per connection (one more to log in)."),
)
SECRET_MACROS = frozenset(m for name, m, _, _ in HTTP_MACROS if name in ("jwt_secret", "token", "password",
                                                                       "monitor_password", "login_password"))

MACROS: Tuple[Tuple[str, str, str], ...] = (
    ("{$EXALATE.NODE}", "default",
     "Section of /etc/zabbix/zabbix_exalate.conf naming the Exalate node this host watches (for the trapper "
     "template: the --node that send runs with)."),
    ("{$EXALATE.INTERVAL}", "1m", "How often the node and its connections are polled."),
    ("{$EXALATE.COLLECT.TIMEOUT}", "2.5",
     "Seconds one collection of the whole node may take (collect's --timeout; empty: the node's timeout in "
     "the configuration file). Keep it below the Timeout of the agent (zabbix_agentd.conf, zabbix_agent2.conf) "
     "and of the server or proxy that polls it (zabbix_server.conf, zabbix_proxy.conf), 3 s by default and at "
     "most 30: past either, every value of the poll is lost. Imported into Zabbix 7.0, this file's items take "
     "their timeout from Administration > General > Timeouts (Zabbix agent, 3 s by default) instead: keep it "
     "below that, or import the 7.0 template, which sets one per item."),
    (ITEM_TIMEOUT, "30s",
     "The timeout of the agent items (Zabbix 7.0): how long the server or proxy waits for the agent's answer, "
     "and the agent for the command, before the item turns unsupported; 1s to 600s. Keep it at least a second "
     "above what the command may take: EXALATE.COLLECT.TIMEOUT for exalate.collect, the node's timeout in "
     "the configuration file for a single check. The default, 30s, is the most a 6.0 agent's Timeout could be."),
    ("{$EXALATE.LLD.INTERVAL}", "1h", "How often the node's connections are discovered. One-poll templates see "
     "a change of the connection list at the next poll and rediscover at least this often otherwise."),
    ("{$EXALATE.LLD.DISABLE.AFTER}", "1d",
     "How long after the node stops listing a connection its items are disabled (Zabbix 7.0): no longer "
     "polled or evaluated, and kept with their history until EXALATE.LLD.LIFETIME deletes them. At least "
     "1h, above EXALATE.LLD.INTERVAL, and below EXALATE.LLD.LIFETIME."),
    ("{$EXALATE.LLD.LIFETIME}", "7d", "How long the items of a connection that is no longer listed are kept."),
    ("{$EXALATE.CONNECTION.MATCHES}", ".*", "Discover only connections whose name matches this regular expression."),
    ("{$EXALATE.CONNECTION.NOT_MATCHES}", "CHANGE_IF_NEEDED",
     "Do not discover connections whose name matches this regular expression."),
    ("{$EXALATE.DOWN.PERIOD}", "3m", "How long the node must fail every check before it counts as unreachable."),
    ("{$EXALATE.NODATA.PERIOD}", "30m", "How long without any value before a check counts as silent. "
     "Context: a connection's name."),
    ("{$EXALATE.ERRORS.MAX.WARN}", "0", "Errors the node may report before a problem opens."),
    ("{$EXALATE.ERRORS.PERIOD}", "5m", "How long errors must stand above the threshold before a problem opens."),
    ("{$EXALATE.FAILED.MAX.WARN}", "0", "Failed syncs a connection may hold. Context: a connection's name."),
    ("{$EXALATE.BLOB.FAILED.MAX.WARN}", "0",
     "Failed attachments a connection may hold. Context: a connection's name."),
    ("{$EXALATE.FAILED.PERIOD}", "10m",
     "How long failures must stand above the threshold before a problem opens. Context: a connection's name."),
    ("{$EXALATE.QUEUE.MAX.WARN}", "50", "Syncs to send (the backlog) of a connection that raise a warning. "
     "Context: a connection's name."),
    ("{$EXALATE.QUEUE.MAX.HIGH}", "200", "Syncs to send (the backlog) of a connection that raise an average problem. "
     "Context: a connection's name."),
    ("{$EXALATE.STUCK.PERIOD}", "30m", "How long a queue of work in flight (syncs and attachments to send, sync "
     "and attachment answers to process) may hold events whose oldest does not move before it counts as stuck: "
     "long enough for the other "
     "side's slowest normal sync. Context: a connection's name."),
    ("{$EXALATE.QUEUE.PERIOD}", "30m", "How long a backlog may stand above a threshold before a problem opens. "
     "Context: a connection's name."),
    ("{$EXALATE.BACKLOG.IGNORE.STATUS}", "^DEACTIVATED$", "Connections whose status matches this regular "
     "expression get no backlog triggers: a deactivated connection queues changes by design."),
    ("{$EXALATE.STATUS.PERIOD}", "10m", "How long a connection must stay in ERROR, or DEACTIVATED, before a "
     "problem opens. Context: a connection's name."),
    ("{$EXALATE.DEACTIVATED.CONTROL}", "1", "1: a connection that stays deactivated raises a warning. Set it to 0 "
     "with the connection's name as context when that connection is deactivated on purpose. "
     "Context: a connection's name."),
) + tuple((macro, default, text) for _, macro, default, text in HTTP_MACROS)

# What a macro's description says in the 7.0 export, where it differs from the 6.0 one above.
MACROS_7_0: Dict[str, str] = {
    "{$EXALATE.COLLECT.TIMEOUT}":
        "Seconds one collection of the whole node may take (collect's --timeout; empty: the node's timeout in "
        "the configuration file). Keep it at least a second below EXALATE.ITEM.TIMEOUT, the item's timeout: "
        "Zabbix ends the command when that runs out, and every value of the poll is lost.",
    "{$EXALATE.LLD.LIFETIME}": "How long the items of a connection that is no longer listed are kept (disabled "
                               "after EXALATE.LLD.DISABLE.AFTER), before they are deleted with their history.",
}


def macro_description(d: Design, macro: str, text: str) -> str:
    return MACROS_7_0.get(macro, text) if d.v7 else text



# --- preprocessing of the one-poll templates -------------------------------------------------------

def step(kind: str, parameter: str = "", error: str = "", otherwise: str = "") -> dict:
    """One preprocessing step; when it fails, the item is unsupported with error, or takes the value otherwise."""
    entity = {"type": kind, "parameters": [parameter]}
    if error:
        entity.update(error_handler="CUSTOM_ERROR", error_handler_params=error)
    elif otherwise:
        entity.update(error_handler="CUSTOM_VALUE", error_handler_params=otherwise)
    return entity


def failure_check(field: str) -> dict:
    """Unsupported with the reason `collect` gave for this field, when it gave one."""
    return step("CHECK_JSON_ERROR", f"$.failures.{field}")


def node_value(field: str) -> List[dict]:
    return [failure_check(field), step("JSONPATH", f"$.{field}")]


CONNECTION_GONE = ("not in the node's connection list: removed or renamed (its items go when their lifetime ends; "
                   "rediscover to see it now), or the list could not be read (see the node's unreachable and "
                   "credentials items)")
# A connection's items start from its entry with the one JSONPath step Zabbix can run on the master value it parsed
# once, and index (6.4+, 7.0: a filter `?(@.key == "constant")` on a path that is definite up to it, first step of
# every dependent item): the cost of a document then grows with its connections, not with their square. Any other
# step on the whole document parses it again, once per item. So no step reads the node's failures before it: a
# connection that is not listed, whatever the reason, stands in as a connection whose field failed for that reason.
# Then one check gives either reason, and Zabbix (6.0.14 and 7.0.22: docs/screenshots/*/unsupported-item.png), which
# lists each step's result before the failing one, shows it on the error's third line, after the document and the
# entry.


ENTRY = f"$.connections[?(@.key=='{CONNECTION_KEY}')].first()"  # this connection's object: the indexed first step


def unlisted(field: str) -> str:
    """The entry of a connection the node does not list: the field failed, CONNECTION_GONE its reason."""
    # At most 255 characters (Zabbix's limit for a custom value): test_custom_values_and_errors_fit...
    return json.dumps({"failures": {field: CONNECTION_GONE}}, separators=(",", ":"))


# An item that stores only changes ("Discard unchanged") must never turn unsupported: Zabbix (measured on 6.0.14)
# compares a value with the last one that passed the step, so after an error the same value again is discarded
# and the item stays unsupported, with the old error, until the value changes. Such an item takes a value for
# every case instead, each step's failure setting one that the next steps carry on with.
UNREAD_CONNECTION = json.dumps({"unread": "the node's connection list could not be read, or no longer lists "
                                          "this connection"})


def kept_connection_entry() -> List[dict]:
    """From the document to this connection's object; {"unread": why} when there is none."""
    return [step("JSONPATH", ENTRY, otherwise=UNREAD_CONNECTION)]


# Zabbix runs preprocessing JavaScript in Duktape: ECMAScript 5.1 only.
# A connection's id may be beyond 2^53, where a JavaScript number (a double) loses digits: the ids of the document
# are read as the text the node wrote. "id" then a colon is a key wherever it stands: in a JSON string each quote
# is escaped.
PARSE_JS = """\
var connections = JSON.parse(value.replace(/("id"\\s*:\\s*)(-?[0-9][0-9.eE+-]*)/g, '$1"$2"')).connections;
if (!Array.isArray(connections)) {
    throw 'the collected document lists no connections';
}"""

# names.shown: the name Zabbix shows ({#CONNECTION}); for a tagged key, its first ROOM characters (counted as Zabbix
# and Python count them: a surrogate pair is one), CUT when there are more, and the key's tag.
SHOWN_JS = """\
function shown(c) {
    var at = c.key.lastIndexOf('%s');
    if (at < 0) {
        return c.name;
    }
    var end = 0;
    for (var points = 0; points < %d && end < c.name.length; points++) {
        var code = c.name.charCodeAt(end), next = c.name.charCodeAt(end + 1);
        end += code >= 0xD800 && code <= 0xDBFF && next >= 0xDC00 && next <= 0xDFFF ? 2 : 1;
    }
    return (end < c.name.length ? c.name.slice(0, end) + '%s' : c.name) + ' (' + c.key.slice(at + 1) + ')';
}""" % (KEY_TAG, ROOM, CUT.encode("unicode_escape").decode())

DISCOVERY_JS = PARSE_JS + "\n" + SHOWN_JS + """
// Only what identifies a connection: its queue numbers change every poll and would defeat discard-unchanged.
return JSON.stringify(connections.map(function (c) {
    return {
        name: shown(c),
        key: c.key,
        id: c.id === null || c.id === undefined ? '' : String(c.id),
        status: typeof c.status === 'string' ? c.status : 'UNKNOWN'
    };
}));"""


def status_js() -> str:
    """The status string to its code, from metrics.CONNECTION_STATUSES."""
    return (f"var codes = {json.dumps(STATUS_CODES)};\n"
            f"return codes.hasOwnProperty(value) ? codes[value] : {OTHER_STATUS};")


def last_failure_js(field: str, queue: str) -> str:
    """The newest failure of a connection's object as one line, "ISSUE REASON: message" (as `status` writes it);
    "none", or "unknown: " and why the queue could not be read."""
    return f"""\
var connection = JSON.parse(value);
var unread = connection.unread || (connection.failures || {{}}).{queue};
if (unread) {{
    return 'unknown: ' + unread;
}}
var failure = connection.{field};
if (!failure) {{
    return 'none';
}}
var head = [failure.issue, failure.reason].filter(function (part) {{ return part; }}).join(' ');
return head && failure.message ? head + ': ' + failure.message : head || failure.message || '(no details)';"""


# The failure reasons of every connection, one row per (connection, kind of failure, reason).
REASON_KINDS = [(m.kind, m.name, m.field_name, m.reasons_field)
                for m in CONNECTION_METRICS if m.reasons_field]  # ("sync", "Failed syncs", "error_responses", ...)
REASON_DISCOVERY_JS = PARSE_JS.replace("%", "%%") + "\n" + SHOWN_JS.replace("%", "%%") + """
var kinds = %s;
var rows = [];
connections.forEach(function (c) {
    kinds.forEach(function (kind) {
        var reasons = c[kind[3]];
        if (reasons !== null && typeof reasons === 'object') {
            Object.keys(reasons).forEach(function (reason) {
                rows.push({connection: shown(c), key: c.key, kind: kind[0], kind_name: kind[1], queue: kind[2],
                           reasons: kind[3],
                           reason: reason, reason_key: encodeURIComponent(reason).replace(/[!'()*~]/g, function (ch) {
                               return '%%' + ch.charCodeAt(0).toString(16).toUpperCase();
                           })});
            });
        }
    });
});
return JSON.stringify(rows);""" % json.dumps([list(k) for k in REASON_KINDS])
REASON_COUNT_JS = """\
var count = JSON.parse(value)[decodeURIComponent('{#REASON.KEY}')];
return count === undefined ? 0 : count;"""
REASON_MACRO_PATHS = (("{#CONNECTION}", "$.connection"), (CONNECTION_KEY, "$.key"), ("{#KIND}", "$.kind"),
                      ("{#KIND.NAME}", "$.kind_name"),
                      ("{#QUEUE}", "$.queue"), ("{#REASONS}", "$.reasons"), ("{#REASON}", "$.reason"),
                      ("{#REASON.KEY}", "$.reason_key"))

LLD_MACRO_PATHS = (("{#CONNECTION}", "$.name"), (CONNECTION_KEY, "$.key"), ("{#CONNECTION.ID}", "$.id"),
                   ("{#CONNECTION.STATUS}", "$.status"))


# --- items and triggers --------------------------------------------------------------------------

def node_down(d: Design) -> dict:
    expression = f"max({d.ref(node_key(PING_KEY))},{{$EXALATE.DOWN.PERIOD}})=0"
    if d.one_poll:
        # A node that refuses our credentials answers: that is "Credentials refused", never this too. A condition,
        # not a dependency: Zabbix leaves a trigger whose master is in problem as it was (measured on 6.0.14), so a
        # dependency would keep this problem open when an unreachable node comes back refusing our credentials.
        expression += f" and last({d.ref(node_key(CREDENTIALS_KEY))})<>{CREDENTIAL_CODES[REFUSED]}"
    return {"name": "Exalate: Node is unreachable", "expression": expression}


def credentials_refused(d: Design) -> dict:
    return {"name": "Exalate: Credentials refused by the node",
            "expression": f"last({d.ref(node_key(CREDENTIALS_KEY))})={CREDENTIAL_CODES[REFUSED]}"}


def node_blind(d: Design) -> Tuple[dict, ...]:
    """What every other problem depends on: nothing of the node can be read."""
    return (node_down(d), credentials_refused(d)) if d.one_poll else (node_down(d),)


def removed(d: Design) -> dict:
    """One poll: the connection was removed on the other side (its status item reads REMOVED)."""
    return {"name": f'Exalate: Connection "{CONNECTION}" was removed or renamed on the other side',
            "expression": f"last({d.ref(connection_key(STATUS_KEY))})={STATUS_CODES[REMOVED]}"}


def not_removed(d: Design) -> str:
    """One poll: the condition a connection's other problems add, so that a removed connection shows only that it
    was removed. A condition, not a dependency: Zabbix leaves a trigger whose master is in problem as it was
    (measured on 6.0.14: a backlog problem open before the removal stayed open beside it); this resolves it (the
    queue's own item is then unsupported, and "unknown and false" is false)."""
    return f" and last({d.ref(connection_key(STATUS_KEY))})<>{STATUS_CODES[REMOVED]}" if d.one_poll else ""


def connection_blind(d: Design) -> Tuple[dict, ...]:
    """What a connection's problems depend on: what the node's depend on (its removal is a condition, see
    not_removed)."""
    return node_blind(d)


def trigger(d: Design, slug: str, expression: str, name: str, priority: str, description: str,
            event_name: str = "", opdata: str = "", depends: Optional[Tuple[dict, ...]] = None,
            scope: str = "availability", manual_close: bool = False) -> dict:
    entity = {"uuid": d.uid(f"trigger:{slug}"), "expression": expression, "name": name}
    if event_name:
        entity["event_name"] = event_name
    if opdata:
        entity["opdata"] = opdata
    entity.update(priority=priority, description=description)
    if manual_close:
        entity["manual_close"] = "YES"
    depends = node_blind(d) if depends is None else depends
    if depends:
        entity["dependencies"] = [dict(dep) for dep in depends]
    entity["tags"] = tags(scope=scope)
    return entity


def item(d: Design, slug: str, name: str, key: str, description: str, component: str, triggers=(),
         connection=False, preprocessing: Optional[List[dict]] = None, value_type="UNSIGNED", master: str = "",
         **extra) -> dict:
    """An item or item prototype: an agent item per check, else a dependent item of the document (or of master)."""
    entity = {"uuid": d.uid(f"item:{slug}"), "name": name}
    if preprocessing is None:
        entity.update(key=key, delay="{$EXALATE.INTERVAL}")
    else:
        entity.update(type="DEPENDENT", key=key, delay="0")
    entity.update(history="7d", value_type=value_type)
    entity.update(extra)
    entity["description"] = description
    if "valuemap" in extra:
        entity["valuemap"] = entity.pop("valuemap")
    if preprocessing is not None:
        entity["preprocessing"] = preprocessing
        entity["master_item"] = {"key": master or master_key(d)}
    elif d.v7:
        entity["timeout"] = ITEM_TIMEOUT  # an agent item: the command gets this long, then Zabbix ends it
    entity["tags"] = tags(component=component, **({"connection": CONNECTION} if connection else {}))
    if triggers:
        entity["trigger_prototypes" if connection else "triggers"] = list(triggers)
    return entity


def master_item(d: Design) -> dict:
    extra = {}
    if d.wiring == AGENT:
        how = {"key": master_key(d), "delay": "{$EXALATE.INTERVAL}"}
        what = ("The node's figures as one JSON document, from `zabbix-exalate --node <node> --timeout <seconds> "
                "collect` run by the agent once per interval. History is not kept: the dependent items store "
                "the values. When it is unsupported, the agent could not run the command in time: ")
        if d.v7:
            # collect's own deadline, {$EXALATE.COLLECT.TIMEOUT}, must end before this one (see ITEM_TIMEOUT).
            extra["timeout"] = ITEM_TIMEOUT
            what += ("keep the macro EXALATE.COLLECT.TIMEOUT at least a second below the item's timeout, the "
                     "macro EXALATE.ITEM.TIMEOUT.")
        else:
            what += ("compare the agent's Timeout (or, on Zabbix 7.0, the agent timeout of Administration > "
                     "General > Timeouts) with the macro EXALATE.COLLECT.TIMEOUT.")
    elif d.wiring == HTTP:
        return http_master_item(d)
    else:
        how = {"type": "TRAP", "key": master_key(d), "delay": "0"}
        what = ("The node's figures as one JSON document, pushed by `zabbix-exalate --node <node> send` (a "
                "systemd timer or cron on a host that reaches the node). History is not kept: the dependent "
                "items store the values.")
    return {"uuid": d.uid("item:collect"), "name": "Exalate: Get node data", **how, "history": "0",
            "trends": "0", "value_type": "TEXT", "description": what, **extra, "tags": tags(component="raw")}


def http_master_item(d: Design) -> dict:
    """The Script item: the server (or proxy) runs exalate_http.js, which reads the node as collect does."""
    return {"uuid": d.uid("item:collect"), "name": "Exalate: Get node data", "type": "SCRIPT", "key": master_key(d),
            "delay": "{$EXALATE.INTERVAL}", "history": "0", "trends": "0", "value_type": "TEXT",
            "params": http_script(),
            "description": "The node's figures as one JSON document, the same as `zabbix-exalate collect` prints, read "
                           "by the Zabbix server (or the proxy of the host) with JavaScript once per interval. History "
                           "is not kept: the dependent items store the values. When it is unsupported, its error says "
                           "which macro to set (the URL, the credentials).",
            "timeout": HTTP_TIMEOUT,
            "parameters": [{"name": name, "value": macro} for name, macro, _, _ in HTTP_MACROS],
            "tags": tags(component="raw")}


def node_items(d: Design) -> List[dict]:
    ping = node_key(PING_KEY)
    down = node_down(d)
    where = {PER_CHECK: "On the agent host run `zabbix-exalate --node {$EXALATE.NODE} ping` as the zabbix user",
             AGENT: "The error of the item \"Exalate: Response time\" in Latest data gives the reason; on the "
                    "agent host `zabbix-exalate --node {$EXALATE.NODE} ping`, run as the zabbix user, prints it "
                    "too",
             TRAPPER: "The error of the item \"Exalate: Response time\" in Latest data gives the reason; on the "
                      "host that runs the sender `zabbix-exalate --node {$EXALATE.NODE} ping` prints it too",
             HTTP: "The error of the item \"Exalate: Response time\" in Latest data gives the reason"}
    silent = {
        PER_CHECK: "The agent has sent no result of the Exalate checks for {$EXALATE.NODATA.PERIOD}, so nothing "
                   "about the node is known. Check that the agent is running, that userparameter_exalate.conf is "
                   "in its include directory, and that the item's error in Latest data (for example an "
                   "unsupported key) is resolved.",
        AGENT: "The agent has returned no usable document of `zabbix-exalate collect` for "
               "{$EXALATE.NODATA.PERIOD}, so nothing about the node is known. Check that the agent is running, "
               "that userparameter_exalate.conf (with exalate.collect) is in its include directory, that "
               + ("the item's timeout, the macro EXALATE.ITEM.TIMEOUT, exceeds the macro EXALATE.COLLECT.TIMEOUT"
                  if d.v7 else "on Zabbix 6.0 the agent's Timeout exceeds the macro EXALATE.COLLECT.TIMEOUT")
               + ", and read the error of \"Exalate: Get node data\" or of this item in Latest data.",
        TRAPPER: "No document has arrived from `zabbix-exalate send` for {$EXALATE.NODATA.PERIOD}, so nothing "
                 "about the node is known: the sender stopped. Check its systemd timer (`systemctl list-timers`) "
                 "or cron line, and run `zabbix-exalate --node {$EXALATE.NODE} send` by hand on that host: it "
                 "says what the Zabbix server or proxy answered (a host name that does not match this host, or "
                 "a server it cannot reach, also stops the data).",
        HTTP: "The Script item \"Exalate: Get node data\" has returned no usable document for {$EXALATE.NODATA.PERIOD}, "
              "so nothing about the node is known. Read its error in Latest data: a macro to set (EXALATE.URL, the "
              "credentials), or a poll that ran past its timeout, the macro EXALATE.HTTP.TIMEOUT."}
    ping_description = ("1 when the node answered an authenticated request as its API promises, else 0. Run "
                        "`zabbix-exalate --node <node> ping` as the zabbix user to see why it did not.")
    items = [master_item(d)] if d.one_poll else []
    items.append(item(
        d, "ping", "Exalate: Node reachable", ping, ping_description, "health", valuemap={"name": VALUEMAP},
        # No failure check here: a node that is down is a 0, which "Node is unreachable" counts on.
        preprocessing=[step("JSONPATH", "$.ping")] if d.one_poll else None, triggers=[
            trigger(d, "node-down", down["expression"], down["name"], "HIGH", depends=(),
                    event_name="Exalate: Node is unreachable for {$EXALATE.DOWN.PERIOD}",
                    description="Every check of the node failed for {$EXALATE.DOWN.PERIOD}: it is down, "
                    "unreachable, failing or too slow" + (" (refused credentials are a problem of their own)"
                                                          if d.one_poll else ", or refuses our credentials")
                    + ". No connection of the node is syncing while this lasts. "
                    f"{where[d.wiring]}. What to do by that reason: a name that does not resolve, a refused "
                    "connection or a TLS failure is the network, DNS, a firewall or a proxy between that host and "
                    "the node; HTTP 5xx is the node itself (Jira, Exalate): ask its administrators, its log says "
                    "more; a timeout is a slow node or network" + (
                        "" if d.one_poll else "; HTTP 401 or 403 is refused credentials: put a new password, "
                        "token or secret into the section {$EXALATE.NODE} of /etc/zabbix/zabbix_exalate.conf")
                    + "."),
            trigger(d, "no-data", f"nodata({d.ref(ping)},{{$EXALATE.NODATA.PERIOD}})=1",
                    "Exalate: No data from the checks", "WARNING", depends=(), manual_close=True,
                    event_name="Exalate: No data from the checks for {$EXALATE.NODATA.PERIOD}",
                    description=silent[d.wiring]),
        ]))
    if d.one_poll:
        items.append(credentials_item(d, where[d.wiring]))
        items.append(item(d, "response-time", "Exalate: Response time", node_key(RESPONSE_TIME_KEY),
                          "Seconds the node took to answer the ping request of the poll.", "health",
                          value_type="FLOAT", units="s", preprocessing=node_value("response_time")))
    for m in NODE_METRICS:
        triggers = []
        if m.alarm and m.alarm.kind == ERRORS_REPORTED:
            triggers.append(trigger(
                d, "errors",
                f"min({d.ref(node_key(m.key))},{{$EXALATE.ERRORS.PERIOD}})>{{$EXALATE.ERRORS.MAX.WARN}}",
                "Exalate: Errors reported", "AVERAGE", scope="notice",
                event_name="Exalate: Errors reported (over {$EXALATE.ERRORS.MAX.WARN} for {$EXALATE.ERRORS.PERIOD})",
                opdata="Errors: {ITEM.LASTVALUE1}",
                description="The node reports sync errors. Each error holds up the issues it concerns until "
                "someone resolves it: open the Exalate console, Errors tab, read the cause, fix it (often a "
                "script or a permission on the other side) and resolve the error to resume the sync."))
        items.append(item(d, m.command, f"Exalate: {m.name}", node_key(m.key), m.description,
                          m.component, triggers=triggers,
                          preprocessing=node_value(m.field_name) if d.one_poll else None))
    if d.one_poll:
        items.append(item(d, "connection-count", "Exalate: Number of connections", node_key(CONNECTION_COUNT_KEY),
                          "How many connections the node lists (configured ones included when the node has no "
                          "connection list).", "health",
                          preprocessing=[failure_check("connections"), step("JSONPATH", "$.connections.length()")]))
        items.append(connection_list_item(d))
    return items


def connection_list_item(d: Design) -> dict:
    """One poll: the node's connections, read once for every connection's status (which depends on this item)."""
    return item(d, "connection-list", "Exalate: Connection list", node_key(CONNECTION_LIST_KEY),
                "The connections the node lists, as the collected document holds them. History is not kept: each "
                "connection's status item reads its own entry from here. Unsupported, with the reason, when the "
                "node's list could not be read.", "raw", value_type="TEXT", history="0", trends="0",
                preprocessing=[failure_check("connections"), step("JSONPATH", "$.connections")])


CREDENTIALS_JS = (f"var codes = {json.dumps(CREDENTIAL_CODES)};\n"
                  f"return codes.hasOwnProperty(value) ? codes[value] : {CREDENTIAL_CODES[UNKNOWN_CREDENTIALS]};")


def credentials_item(d: Design, where: str) -> dict:
    """One poll: whether the node took our credentials, and the problem when it refused them."""
    refused = credentials_refused(d)
    codes = ", ".join(f"{code} {state}" for state, code in CREDENTIAL_STATES)
    return item(
        d, "credentials", "Exalate: Credentials", node_key(CREDENTIALS_KEY),
        f"Whether the node took the credentials of zabbix-exalate on the ping request of the poll: {codes} (no "
        "answer: the node is down, unreachable or slow).", "health", valuemap={"name": CREDENTIALS_VALUEMAP},
        # A document of an older collect has no such field: unknown, never refused.
        preprocessing=[step("JSONPATH", f"$.{CREDENTIALS_FIELD}", otherwise=UNKNOWN_CREDENTIALS),
                       step("JAVASCRIPT", CREDENTIALS_JS)],
        triggers=[trigger(
            d, "credentials-refused", refused["expression"], refused["name"], "HIGH", depends=(),
            description="The node answers, but refuses the credentials zabbix-exalate uses (HTTP 401 or 403): "
            "nothing of the node can be read, though its syncs may go on. " + where + ": it names the "
            "credential used. " + (HTTP_NEW_CREDENTIAL if d.wiring == HTTP else
            "Put a new one, from the node's administrators, into the section {$EXALATE.NODE} "
            "of /etc/zabbix/zabbix_exalate.conf on that host: password (with user) for HTTP basic auth, token for "
            "a ready-made JWT, jwt_secret for the connection's shared secret, login_password (with login_user) "
            "for a login; monitor_password for the customer monitor.") + " It resolves at the next poll that is "
            "answered.")])


HTTP_NEW_CREDENTIAL = ("Put a new one, from the node's administrators, into the host's secret macro: "
                       "EXALATE.PASSWORD (with EXALATE.USER) for HTTP basic auth, EXALATE.TOKEN for a ready-made JWT, "
                       "EXALATE.JWT.SECRET for the connection's shared secret, EXALATE.LOGIN.PASSWORD (with "
                       "EXALATE.LOGIN.USER) for a login; EXALATE.MONITOR.PASSWORD for the customer monitor.")


def connection_triggers(d: Design, m) -> List[dict]:
    """Trigger prototypes for one per-connection queue."""
    key = d.ref(connection_key(m.key))
    who = f'Exalate: Connection "{CONNECTION}"'
    kind = m.alarm.kind if m.alarm else None
    alive = not_removed(d)
    if kind == BACKLOG:
        period, high_limit, warn_limit = (ctx("{$EXALATE.QUEUE.PERIOD}"), ctx("{$EXALATE.QUEUE.MAX.HIGH}"),
                                          ctx("{$EXALATE.QUEUE.MAX.WARN}"))
        what = m.name.lower()
        # "backlog" in the name: the override for deactivated connections finds these triggers by that word.
        high = trigger(d, "backlog-high", f"min({key},{period})>{high_limit}{alive}",
                       f"{who}: Very high backlog of {what}", "AVERAGE", scope="performance",
                       event_name=f"{who}: Very high backlog of {what} (over {high_limit} for {period})",
                       opdata="Queued: {ITEM.LASTVALUE1}", depends=connection_blind(d),
                       description="Changes are piling up faster than the other side fetches them: the other "
                       "side is down, stuck on an error, or its connection is deactivated. Issues on the two sides "
                       "drift apart until it catches up. Check the connection on both nodes (status, Errors tab) "
                       "and the other node's health.")
        warn = trigger(d, "backlog-warn", f"min({key},{period})>{warn_limit}{alive}",
                       f"{who}: High backlog of {what}", "WARNING", scope="performance",
                       event_name=f"{who}: High backlog of {what} (over {warn_limit} for {period})",
                       opdata="Queued: {ITEM.LASTVALUE1}",
                       description="More changes of this connection are waiting than usual. It often clears "
                       "by itself after a bulk update; if it keeps growing, check the other side's node and the "
                       "connection's Errors tab.",
                       depends=connection_blind(d) + ({"name": high["name"], "expression": high["expression"]},))
        nodata = ctx("{$EXALATE.NODATA.PERIOD}")
        if d.one_poll:
            silent = ("The connection's queues have not been read for " + nodata + ", though the node is "
                      "reachable: the error of this item in Latest data says why (an endpoint that fails or times "
                      "out, an answer that is not the API's). A connection removed on the other side is a problem "
                      "of its own, not this one.")
        else:
            silent = ("The connection's queues have not been read for " + nodata + ". When the error of this "
                      "item in Latest data says \"not found\", the connection was removed or renamed on the other "
                      "side: re-create it in the Exalate console of both nodes, or, if that was intended, delete it "
                      "on this node too and let discovery drop its items. Otherwise the error says why.")
        gone = trigger(d, "connection-gone", f"nodata({key},{nodata})=1{alive}", f"{who}: No data", "WARNING",
                       manual_close=True, event_name=f"{who}: No data for {nodata}", depends=connection_blind(d),
                       description=silent)
        return [high, warn, gone]
    if kind == FAILED:
        limit = ctx(m.alarm.limit)
        period = ctx("{$EXALATE.FAILED.PERIOD}")
        expression, newest, opdata = f"min({key},{period})>{limit}", "", "Failed: {ITEM.LASTVALUE1}"
        if d.one_poll:
            # The newest failure's text item joins the expression (always true) for its value in the problem's
            # name: operational data would cut it to 20 characters (measured on 6.0.14 and 7.0.22).
            expression += f" and length(last({d.ref(connection_key('exalate.' + m.last_field))}))>=0"
            newest = ": {ITEM.LASTVALUE2}"
        return [trigger(d, f"{m.command}-failed", expression + alive, f"{who}: {m.name}",
                        "WARNING", scope="notice", depends=connection_blind(d),
                        event_name=f"{who}: {m.name} (over {limit} for {period}){newest}",
                        opdata=opdata,
                        description=f"The other side could not apply {m.name.lower()[len('failed '):]} of this "
                        "connection; the issues concerned stay out of sync. Read the errors in the Exalate console "
                        "of the other side (Errors tab), fix their cause (often its incoming script or a "
                        "permission) and retry them there. On the agent host `zabbix-exalate --node "
                        f"{{$EXALATE.NODE}} status --connection '{CONNECTION_KEY}'` lists them, newest first.")]
    return []


def status_triggers(d: Design) -> List[dict]:
    key = d.ref(connection_key(STATUS_KEY))
    who = f'Exalate: Connection "{CONNECTION}"'
    period = ctx("{$EXALATE.STATUS.PERIOD}")
    gone = removed(d)

    def held(status: str) -> str:
        code = STATUS_CODES[status]
        return f"min({key},{period})={code} and max({key},{period})={code}"

    return [
        trigger(d, "connection-removed", gone["expression"], gone["name"], "AVERAGE", opdata="Status: {ITEM.LASTVALUE1}",
                description="The node answers that this connection is not found (\"Seems like it was removed on "
                "the Destination side\"), or no longer lists it: nothing of it syncs. If it was renamed, its new "
                "name is discovered as a connection of its own. If it was removed by mistake, re-create it in the "
                "Exalate console of both nodes (a new invitation). If it was removed on purpose, delete it on this "
                "node too: Zabbix then keeps its items, not polled, until discovery's lifetime (the macro "
                "EXALATE.LLD.LIFETIME) ends. Its other problems (no data, backlog, stuck, failed) stay closed "
                "meanwhile."),
        trigger(d, "connection-error", held("ERROR"), f"{who}: Connection is in error", "AVERAGE",
                event_name=f"{who}: Connection is in error for {period}", opdata="Status: {ITEM.LASTVALUE1}",
                description="The node reports this connection in ERROR: it does not sync. Open the connection "
                "in the Exalate console of this node and of the other side, read the error, fix it (credentials, "
                "a script, the other node's URL) and reactivate the connection."),
        trigger(d, "connection-deactivated",
                f"{ctx('{$EXALATE.DEACTIVATED.CONTROL}')}=1 and {held('DEACTIVATED')}",
                f"{who}: Connection is deactivated", "WARNING",
                event_name=f"{who}: Connection is deactivated for {period}", opdata="Status: {ITEM.LASTVALUE1}",
                description="Someone deactivated this connection: its changes queue up and nothing syncs until "
                "it is activated again (its backlog triggers are off meanwhile: the macro "
                "EXALATE.BACKLOG.IGNORE.STATUS names the statuses that get none). If that is intended, add the "
                "host macro EXALATE.DEACTIVATED.CONTROL with this connection's name as its context, set to 0."),
    ]


# A connection's value in the document: "not read" once collect compacted its reasons away (docs/collect.md: the
# connection then says "unread": "see compacted" instead of "failures").
COMPACTED_ERROR = ("not read; its reason was left out of the collected document to fit the agent's 512 KB: see its "
                   "\"compacted\" field, or run zabbix-exalate status")


def connection_value(field: str, path: str = "") -> List[dict]:
    """From the document to one field of this connection (at path, default $.field), or the reason there is none.

    Zabbix (6.0 and 7.0, measured) lists each step's result before the failing one: the reason is the error's last
    line."""
    return [step("JSONPATH", ENTRY, otherwise=unlisted(field)),
            step("CHECK_JSON_ERROR", f"$.failures.{field}"),
            step("JSONPATH", path or f"$.{field}", error=COMPACTED_ERROR)]


# The status item's connection when the node's list no longer holds it: discovery found it, so it was removed.
NOT_LISTED = json.dumps({"status": REMOVED})


def connection_items(d: Design) -> List[dict]:
    prototypes = []
    for m in CONNECTION_METRICS:
        steps = connection_value(m.field_name) if d.one_poll else None
        prototypes.append(item(d, m.command, f'Exalate: {m.name}, connection "{CONNECTION}"', connection_key(m.key),
                               m.description, m.component, connection=True, triggers=connection_triggers(d, m),
                               preprocessing=steps))
    if d.one_poll:
        prototypes += [oldest_item(d, m) for m in CONNECTION_METRICS if m.in_flight]
        prototypes += [last_failure_item(d, m) for m in CONNECTION_METRICS if m.last_field]
        codes = ", ".join(f"{code} {status}" for status, code in CONNECTION_STATUSES)
        prototypes.append(item(
            d, "status", f'Exalate: Status, connection "{CONNECTION}"', connection_key(STATUS_KEY),
            f"The connection's status as the node reports it: {codes}, {OTHER_STATUS} any other. CONFIGURED: "
            "named in the configuration file because the node lists no connections. REMOVED: the node answers that "
            "the connection is not found (removed on the other side), or no longer lists it. The connection's id on "
            "the node: {#CONNECTION.ID}.", "health",
            connection=True, valuemap={"name": STATUS_VALUEMAP}, triggers=status_triggers(d),
            # No list (the node is down) makes the list item unsupported: then its status is no value (Zabbix 6.0)
            # or unsupported with that reason (7.0), never REMOVED. Reading the node's failures here would parse
            # the whole document once per connection; the list item parses it once per poll.
            master=node_key(CONNECTION_LIST_KEY),
            preprocessing=[step("JSONPATH", f"$[?(@.key=='{CONNECTION_KEY}')].first()", otherwise=NOT_LISTED),
                           step("JSONPATH", "$.status"), step("JAVASCRIPT", status_js())]))
    return prototypes


def oldest_item(d: Design, m) -> dict:
    """A queue's oldest waiting event, stored only when it changes, and the problem when it has not for a while."""
    key = connection_key("exalate." + m.oldest_field)
    oldest, size, period = d.ref(key), d.ref(connection_key(m.key)), ctx("{$EXALATE.STUCK.PERIOD}")
    who = f'Exalate: Connection "{CONNECTION}"'
    stuck = trigger(
        d, f"{m.command}-stuck",
        f"nodata({oldest},{period})=1 and last({oldest})>0 and min({size},{period})>0{not_removed(d)}",
        f"{who}: {m.name} are stuck", "AVERAGE", scope="performance", depends=connection_blind(d),
        event_name=f"{who}: {m.name} are stuck (oldest event {{ITEM.LASTVALUE1}} waiting for {period})",
        # {ITEM.LASTVALUEn} counts the item references of the expression: the size is the third.
        opdata="Waiting: {ITEM.LASTVALUE3}, oldest event: {ITEM.LASTVALUE1}",
        description=f"The queue of {m.name.lower()} has held events all along, and its oldest has not moved: "
        "nothing of this connection gets through, whatever the size of the queue. The usual causes: the other "
        "side is down or cannot reach this node, the connection is in error, or the oldest event fails every "
        "time it is retried (see the connection's failed syncs). Open the connection in the Exalate console of "
        "both nodes (Sync Queue, Errors tab) and look at that event. It resolves when the oldest event moves "
        "or the queue empties.")
    return item(d, f"{m.command}-oldest", f'Exalate: {m.name}, oldest event, connection "{CONNECTION}"', key,
                f"The smallest syncEventId waiting in the queue of {m.name.lower()}; 0 when the queue is empty or "
                "could not be read (the item of its size then says why). Stored only when it changes: the time of "
                "its last value is when the queue last moved.",
                m.component, connection=True, triggers=[stuck],
                preprocessing=kept_connection_entry() + [step("JSONPATH", f"$.{m.oldest_field}", otherwise="0"),
                                                         step("DISCARD_UNCHANGED")])


def last_failure_item(d: Design, m) -> dict:
    """The newest failure of a queue of failures as text, with history: the sequence of failures."""
    return item(d, m.last_field.replace("_", "-"), f'Exalate: {m.name}, newest, connection "{CONNECTION}"',
                connection_key("exalate." + m.last_field),
                f"The newest of the connection's {m.name.lower()} (the highest syncEventId): "
                "\"ISSUE REASON: message\", \"none\", or \"unknown: \" and why the queue could not be read. Stored "
                "when it changes: its history is the sequence of failures.", m.component, connection=True,
                value_type="TEXT", trends="0", history="30d",
                preprocessing=kept_connection_entry() + [
                    step("JAVASCRIPT", last_failure_js(m.last_field, m.field_name)), step("DISCARD_UNCHANGED")])


def reason_discovery_rule(d: Design) -> dict:
    """One-poll templates: a dependent rule over every connection's failure reasons, one item each."""
    rule = {"uuid": d.uid("discovery:reasons"), "name": "Exalate: Failure reason discovery", "type": "DEPENDENT",
            "key": node_key(REASON_DISCOVERY_KEY), "delay": "0",
            "filter": connection_filter(), **lifetimes(d),
            "description": "The reasons (errorReason, blobErrorReason) the failed syncs of each connection carry, "
                           "from the connections of the collected document.",
            "item_prototypes": [item(
                d, "failed-by-reason", f'Exalate: {{#KIND.NAME}} by reason {{#REASON}}, connection "{CONNECTION}"',
                connection_key(REASON_KEY)[:-1] + ",{#KIND},{#REASON.KEY}]",
                "How many of the connection's failed syncs or failed attachments carry this reason (0 once none "
                "does).", "queue",
                connection=True, preprocessing=connection_value("{#QUEUE}", "$.{#REASONS}") + [
                    step("JAVASCRIPT", REASON_COUNT_JS)])],
            "master_item": {"key": master_key(d)},
            "lld_macro_paths": [{"lld_macro": m, "path": p} for m, p in REASON_MACRO_PATHS],
            "preprocessing": [failure_check("connections"), step("JAVASCRIPT", REASON_DISCOVERY_JS),
                              step("DISCARD_UNCHANGED_HEARTBEAT", "{$EXALATE.LLD.INTERVAL}")]}
    return rule


def lifetimes(d: Design) -> dict:
    """How long a discovery rule keeps what it no longer finds: 7.0 disables lost items first (lifetime_type keeps
    its default, DELETE_AFTER)."""
    return {"lifetime": "{$EXALATE.LLD.LIFETIME}",
            **({"enabled_lifetime_type": "DISABLE_AFTER", "enabled_lifetime": "{$EXALATE.LLD.DISABLE.AFTER}"}
               if d.v7 else {})}


def connection_filter() -> dict:
    return {"evaltype": "AND", "conditions": [
        {"macro": CONNECTION, "value": "{$EXALATE.CONNECTION.MATCHES}", "operator": "MATCHES_REGEX",
         "formulaid": "A"},
        {"macro": CONNECTION, "value": "{$EXALATE.CONNECTION.NOT_MATCHES}", "operator": "NOT_MATCHES_REGEX",
         "formulaid": "B"}]}


def discovery_rule(d: Design) -> dict:
    rule = {"uuid": d.uid("discovery:connections"), "name": "Exalate: Connection discovery"}
    if d.one_poll:
        rule.update(type="DEPENDENT", key=node_key(DISCOVERY_KEY), delay="0")
    else:
        rule.update(key=node_key(DISCOVERY_KEY), delay="{$EXALATE.LLD.INTERVAL}")
    rule.update({
        "filter": connection_filter(),
        **lifetimes(d),
        "description": "The node's connections (GET 4.0/connections, else the connections listed in the "
                       "configuration file), with their six queues each"
                       + (" and their status, from the connections of the collected document." if d.one_poll
                          else "."),
        "item_prototypes": connection_items(d),
        "graph_prototypes": [{
            "uuid": d.uid("graph:connection-queues"), "name": f'Exalate: Connection "{CONNECTION}": Queues',
            "graph_items": graph_items(d, (connection_key(m.key) for m in CONNECTION_METRICS))}],
    })
    if d.v7 and not d.one_poll:
        rule["timeout"] = ITEM_TIMEOUT  # an agent item too: `discover` runs within the node's timeout
    if d.one_poll:
        rule["master_item"] = {"key": master_key(d)}
        rule["lld_macro_paths"] = [{"lld_macro": m, "path": p} for m, p in LLD_MACRO_PATHS]
        rule["preprocessing"] = [
            failure_check("connections"),  # unsupported with our reason: the rule keeps its items meanwhile
            step("JAVASCRIPT", DISCOVERY_JS),
            step("DISCARD_UNCHANGED_HEARTBEAT", "{$EXALATE.LLD.INTERVAL}")]
    rule["overrides"] = [{
        "name": "No backlog triggers for deactivated connections", "step": "1",
        "filter": {"evaltype": "AND", "conditions": [
            {"macro": "{#CONNECTION.STATUS}", "value": "{$EXALATE.BACKLOG.IGNORE.STATUS}",
             "operator": "MATCHES_REGEX", "formulaid": "A"}]},
        "operations": [{"operationobject": "TRIGGER_PROTOTYPE", "operator": "LIKE", "value": word,
                        "discover": "NO_DISCOVER"}
                       for word in (("backlog", "stuck") if d.one_poll else ("backlog",))]}]
    return rule


def graph_items(d: Design, keys) -> List[dict]:
    return [{"sortorder": str(i), "color": COLORS[i % len(COLORS)], "item": {"host": d.name, "key": key}}
            for i, key in enumerate(keys)]


NODE_GRAPHS = (("Exalate: Sync queues", ("outgoing", "incoming")), ("Exalate: Errors", ("errors",)))


# --- the dashboard ---------------------------------------------------------------------------------
# What the operator opens first: is the node there, which connections have problems, how far behind each is.
# Widgets name their items by KEY (a key never changes; names do), and show the item's own name ({ITEM.NAME}):
# the dashboard speaks the vocabulary of the items, with no words of its own to keep in step.
#
# Template dashboards differ by version. 6.0 allows only clock, classic graph, graph prototype, item value, plain
# text and URL widgets (CWidgetConfig::isWidgetTypeSupportedInContext), none of which lists problems or takes an
# item prototype's value: the node's figures as item values, each connection's backlog and failures as a small
# graph (a simple graph prototype, which draws the item's trigger lines). 7.0 allows every widget (ZBXNEXT-8086):
# item values coloured by thresholds, the host's problems with their operational data, and a honeycomb of the
# connections coloured by their status.

GRID_COLUMNS = {"6.0": 24, "7.0": 72}  # 7.0's grid has three times the columns, each a third the width
# Widget types as each export format writes them (6.0's constants, 7.0's module ids).
WIDGET_TYPES = {"6.0": {"item": "ITEM", "graphprototype": "GRAPH_PROTOTYPE"},
                "7.0": {"item": "item", "graphprototype": "graphprototype", "problems": "problems",
                        "honeycomb": "honeycomb"}}
# 7.0 gives a reference (the id other widgets listen to) to the widgets that broadcast something.
BROADCASTS = ("graphprototype", "problems", "honeycomb")
SIMPLE_GRAPH_PROTOTYPE = "3"  # a graph prototype widget's source: one item prototype's simple graph
RED, GREEN, ORANGE, YELLOW, GREY = "E45959", "59DB8F", "FFA059", "FFD54F", "97AAB3"
# A connection's status code from its cell's colour (7.0 thresholds: a value at or above one takes its colour).
STATUS_COLOURS = {"ACTIVE": GREEN, "DEACTIVATED": ORANGE, "ERROR": RED, "PENDING": YELLOW, "CONFIGURED": GREEN,
                  REMOVED: RED}


def field(kind: str, name: str, value) -> dict:
    return {"type": kind, "name": name, "value": value}


class Grid:
    """Widgets of one dashboard page, laid out in 6.0's 24 columns and written in the grid of the export format."""

    def __init__(self, d: Design):
        self.d = d
        self.scale = GRID_COLUMNS[d.format] // GRID_COLUMNS["6.0"]
        self.widgets: List[dict] = []

    def add(self, kind: str, name: str, x: int, y: int, width: int, height: int, fields: List[dict]) -> None:
        if self.d.v7 and kind in BROADCASTS:
            fields = fields + [field("STRING", "reference", "AAAA" + "ABCDEFGHIJ"[len(self.widgets)])]
        self.widgets.append({"type": WIDGET_TYPES[self.d.format][kind], "name": name, "x": str(x * self.scale),
                             "y": str(y), "width": str(width * self.scale), "height": str(height),
                             "fields": sorted(fields, key=lambda f: f["name"])})

    def many(self, name: str, kind: str, values) -> List[dict]:
        """A field of several values: 6.0 repeats its name, 7.0 numbers it (show.0, show.1)."""
        return [field(kind, f"{name}.{i}" if self.d.v7 else name, str(v)) for i, v in enumerate(values)]


def tile(g: Grid, key: str, x: int, width: int, thresholds=(), size: int = 45) -> None:
    """The last value of a node item, big, under the item's name; 7.0: coloured by thresholds [(value, colour)]."""
    fields = [field("ITEM", "itemid.0" if g.d.v7 else "itemid", {"host": g.d.name, "key": key}),
              # Its value alone, whole numbers: the widget's header holds the item's name.
              *g.many("show", "INTEGER", (2,)), field("INTEGER", "value_size", str(size)),
              field("INTEGER", "decimal_places", "0")]
    if not g.d.v7:
        fields.append(field("INTEGER", "adv_conf", "1"))  # 6.0 reads sizes only with advanced configuration on
    for i, (value, colour) in enumerate(thresholds if g.d.v7 else ()):
        fields += [field("STRING", f"thresholds.{i}.color", colour), field("STRING", f"thresholds.{i}.threshold",
                                                                           str(value))]
    g.add("item", "", x, 0, width, 3, fields)


def per_connection_graphs(g: Grid, name: str, key: str, x: int, y: int, width: int, columns: int) -> None:
    """One small graph per discovered connection of one item prototype (with its trigger lines), a page of them."""
    g.add("graphprototype", name, x, y, width, 8, [
        field("INTEGER", "source_type", SIMPLE_GRAPH_PROTOTYPE),
        field("ITEM_PROTOTYPE", "itemid.0" if g.d.v7 else "itemid", {"host": g.d.name, "key": key}),
        field("INTEGER", "columns", str(columns)), field("INTEGER", "rows", "2")])


def problems_widget(g: Grid, x: int, y: int, width: int, height: int) -> None:
    """7.0: the host's open problems, worst first, each with its operational data (the backlog, the failure)."""
    g.add("problems", "Problems", x, y, width, height, [
        field("INTEGER", "show", "3"),            # open problems only: resolved ones would push them out
        field("INTEGER", "show_opdata", "1"),     # in a column of its own
        field("INTEGER", "sort_triggers", "1"),   # severity, highest first
        field("INTEGER", "show_timeline", "0"),
        field("INTEGER", "show_lines", "12")])


def status_honeycomb(g: Grid, x: int, y: int, width: int, height: int) -> None:
    """7.0: a cell per connection, coloured by its status, labelled with its name (from the status item's)."""
    codes = sorted((STATUS_CODES[s], c) for s, c in STATUS_COLOURS.items())
    fields = [field("STRING", "items.0", "*"),
              # The status items alone: the only items of a connection that are about its health.
              field("STRING", "item_tags.0.tag", "component"), field("INTEGER", "item_tags.0.operator", "1"),
              field("STRING", "item_tags.0.value", "health"),
              field("STRING", "item_tags.1.tag", "connection"), field("INTEGER", "item_tags.1.operator", "4"),
              field("STRING", "item_tags.1.value", ""),
              # Between the quotes of the item's name: the connection's name (all of it, if it has no quotes).
              field("STRING", "primary_label", '{{ITEM.NAME}.regsub("^[^\\"]*\\"(.*)\\"[^\\"]*$|(.*)", \\1\\2)}'),
              field("INTEGER", "secondary_label_type", "0"), field("STRING", "secondary_label", "{ITEM.LASTVALUE}"),
              field("STRING", "bg_color", GREY)]
    for i, (code, colour) in enumerate(codes):
        fields += [field("STRING", f"thresholds.{i}.color", colour),
                   field("STRING", f"thresholds.{i}.threshold", str(code))]
    g.add("honeycomb", "Connections by status", x, y, width, height, fields)


def dashboard(d: Design) -> dict:
    g = Grid(d)
    backlog = next(m for m in CONNECTION_METRICS if m.alarm and m.alarm.kind == BACKLOG)
    failed = next(m for m in CONNECTION_METRICS if m.alarm and m.alarm.kind == FAILED)
    errors = next(m for m in NODE_METRICS if m.alarm and m.alarm.kind == ERRORS_REPORTED)
    others = [m for m in NODE_METRICS if m is not errors]
    # The first row: the node's state, then its figures. Down is red, errors orange (7.0).
    tiles = [(node_key(PING_KEY), ((1, GREEN),))]
    if d.one_poll:  # refused credentials call for a new token, not for the node's administrators
        tiles.append((node_key(CREDENTIALS_KEY), ((1, GREEN), (2, YELLOW))))
    tiles.append((node_key(errors.key), ((1, ORANGE),)))
    if d.one_poll:
        tiles.append((node_key(CONNECTION_COUNT_KEY), ()))
    tiles += [(node_key(m.key), ()) for m in others]
    width = GRID_COLUMNS["6.0"] // len(tiles)
    for i, (key, thresholds) in enumerate(tiles):
        if key in (node_key(PING_KEY), node_key(CREDENTIALS_KEY)):  # "Down (0)", "Up (1)": words fit smaller
            tile(g, key, i * width, width, ((0, RED),) + thresholds, size=24)
        else:
            tile(g, key, i * width, width, thresholds)
    y = 3
    if d.v7:
        # Which connections have problems, and what (7.0 only: 6.0 has no such widget for templates).
        if d.one_poll:
            problems_widget(g, 0, y, 16, 7)
            status_honeycomb(g, 16, y, 8, 7)
        else:
            problems_widget(g, 0, y, 24, 7)
        y += 7
    per_connection_graphs(g, f"{backlog.name} per connection", connection_key(backlog.key), 0, y, 12, 2)
    per_connection_graphs(g, f"{failed.name} per connection", connection_key(failed.key), 12, y, 12, 2)
    return {"uuid": d.uid("dashboard:overview"), "name": "Exalate node", "pages": [{"widgets": g.widgets}]}


def valuemaps(d: Design) -> List[dict]:
    maps = [{"uuid": d.uid("valuemap"), "name": VALUEMAP, "mappings": [
        {"value": "0", "newvalue": "Down"}, {"value": "1", "newvalue": "Up"}]}]
    if d.one_poll:
        codes = sorted([(OTHER_STATUS, "Other")] + [(code, status.title()) for status, code in CONNECTION_STATUSES])
        maps.append({"uuid": d.uid("valuemap:connection-status"), "name": STATUS_VALUEMAP,
                     "mappings": [{"value": str(code), "newvalue": text} for code, text in codes]})
        maps.append({"uuid": d.uid("valuemap:credentials"), "name": CREDENTIALS_VALUEMAP,
                     "mappings": [{"value": str(code), "newvalue": state.capitalize()}
                                  for state, code in sorted(CREDENTIAL_STATES, key=lambda sc: sc[1])]})
    return maps


MACRO_USE = re.compile(r"\{\$([A-Z0-9_.]+)[:}]")


# The last step of a template's setup, in its description.
_INSTALLED = ("Setup: install zabbix-exalate (pip) where the values are read, describe the node in a section of "
              "/etc/zabbix/zabbix_exalate.conf (mode 600, owned by zabbix) and set the host macro EXALATE.NODE to that "
              "section's name; ")
SETUP = {PER_CHECK: _INSTALLED + "then `zabbix-exalate agent install` gives the agent its UserParameters.",
         AGENT: _INSTALLED + "then `zabbix-exalate agent install` gives the agent its UserParameters.",
         TRAPPER: _INSTALLED + "then run `zabbix-exalate --node NODE send` every minute (a systemd timer or cron) on a host that "
                  "reaches the node and the Zabbix server.",
         HTTP: "Setup: nothing to install; link the template to a host with no interface and set the host macros "
               "EXALATE.URL and those of the credentials (the secrets as secret macros), or let `zabbix-exalate "
               "zabbix add-host --template 'Exalate by HTTP'` copy them from the node's section of the configuration "
               "file. The Zabbix server (or the host's proxy) must reach the node."}


def template_tree(name: str = DEFAULT_TEMPLATE, fmt: str = DEFAULT_FORMAT) -> dict:
    """One template as the dict of Zabbix's export format fmt ("6.0" or "7.0")."""
    d = BY_NAME[name].at(fmt)
    template = {
        "uuid": d.uid("template"), "template": d.name, "name": d.name,
        "description": "Watches an Exalate node (Jira, ServiceNow, Zendesk, GitHub, Azure DevOps, HP ALM sync) "
                       f"with zabbix-exalate. {d.summary} Node reachability, errors, queue totals, and the six "
                       "queues of every discovered connection. " + SETUP[d.wiring],
        "groups": [{"name": GROUP}],
        "items": node_items(d),
        "discovery_rules": [discovery_rule(d)] + ([reason_discovery_rule(d)] if d.one_poll else []),
        "tags": tags(**{"class": "application", "target": "exalate"}),
    }
    # The macros this template uses, in the order of MACROS: each template defines what it needs, no more.
    used = {"{$" + m + "}" for m in MACRO_USE.findall(json.dumps(template))}
    template["macros"] = [{"macro": m, "value": v, **({"type": "SECRET_TEXT"} if m in SECRET_MACROS else {}),
                           "description": macro_description(d, m, text)} for m, v, text in MACROS if m in used]
    template["dashboards"] = [dashboard(d)]
    template["valuemaps"] = valuemaps(d)
    return {"version": d.format,
            # 6.2 split host groups from template groups: 7.0 names the template's group a template group.
            "template_groups" if d.v7 else "groups": [{"uuid": GROUP_UUID, "name": GROUP}],
            "templates": [template],
            "graphs": [{"uuid": d.uid(f"graph:{graph}"), "name": graph,
                        "graph_items": graph_items(d, (node_key(BY_COMMAND[c].key) for c in commands))}
                       for graph, commands in NODE_GRAPHS]}


