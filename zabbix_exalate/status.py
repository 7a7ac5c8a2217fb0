"""The collection as a person at a terminal reads it: the whole node at a glance, or one connection in full.

Every word the node chose is shown inert (errors.printable: ESC, CR, U+202E... as visible escapes), and the
table measures what it shows as a terminal does (East Asian wide characters take two columns)."""
import textwrap
import unicodedata
from typing import List

from .compact import general_reason
from .errors import printable
from .metrics import CONNECTION_METRICS, CREDENTIALS_FIELD, NODE_METRICS, REFUSED, REMOVED

WIDTH = 80
MAX_ROWS = 40  # connections in the table, and reasons of those left out of it
UNREAD = "?"
EMPTY = "-"


def status_text(doc: dict, node: str) -> str:
    """The whole node: its figures, a table of at most MAX_ROWS connections (of a larger node, those worth a look
    first, the others counted), where each queue's head stands, and why any value could not be read."""
    lines = [_headline(doc, node), _figures(doc)]
    connections = doc.get("connections")
    shown, hidden = _worth_a_look(connections or [])
    if connections is None:
        lines += ["", "Connections: not known (see below)"]
    elif not connections:
        lines += ["", "Connections: none"]
    else:
        lines += [""] + _table(shown)
        if hidden:
            troubled = sum(map(_troubled, hidden))
            lines += _wrap(f"and {len(hidden)} more connections, " + (
                f"{troubled} of them with values unread or failed syncs" if troubled else
                "each with every value read and no failed sync") + ": 'status --connection NAME' shows one")
        heads = [line for c in shown for line in _wrap(_heads(c))]
        if heads:
            lines += ["", "Oldest event waiting (syncs/attachments) and newest failure:"] + heads
    reasons = _reasons(doc, shown, hidden)
    if reasons:
        lines += ["", f"Could not read ({UNREAD} above):"] + reasons
    return "\n".join(lines)


def _worth_a_look(connections: List[dict]):
    """(the connections the table shows, the others): all of them, or of a node with more than MAX_ROWS those with
    values unread, failed syncs or in error first, each kind in the node's order; the rendering stays bounded
    (status keeps to its timeout whatever the node's size) and a person reads the problems first."""
    if len(connections) <= MAX_ROWS:
        return connections, []
    ranked = sorted(connections, key=lambda c: not _troubled(c))  # stable: the node's order within each kind
    return ranked[:MAX_ROWS], ranked[MAX_ROWS:]


def _troubled(c: dict) -> bool:
    return "failures" in c or c.get("status") in ("ERROR", REMOVED) or any(
        c.get(m.field_name) for m in CONNECTION_METRICS if m.reason_field)


def connection_text(doc: dict, node: str, position: int, shown: int) -> str:
    """The connection at position in doc's list, in full: each queue's size and oldest event, its failures by
    reason and the newest ones (up to shown of each kind, as collect kept them)."""
    c = doc["connections"][position]
    lines = [_headline(doc, node), _figures(doc), ""]
    about = ", ".join(inert(v) for v in (c.get("status"), c.get("id") is not None and f"id {c['id']}",
                                         c.get("remote")) if v)
    lines += [f"Connection {inert(c['name'])} ({about})", f"  {'queue':<30}{'size':>8}{'oldest':>12}"]
    for m in CONNECTION_METRICS:
        size = inert(c.get(m.field_name, UNREAD))
        oldest = UNREAD if size == UNREAD else inert(c.get(m.oldest_field, EMPTY))
        lines.append(f"  {queue_label(m):<30}{padded(size, 8, right=True)}{padded(oldest, 12, right=True)}")
    for m in CONNECTION_METRICS:
        if not m.reason_field or m.field_name not in c:
            continue
        by_reason = ", ".join(f"{inert(reason)} {inert(count)}" for reason, count in
                              sorted(c.get(m.reasons_field, {}).items(), key=lambda rc: (-rc[1], rc[0])))
        lines += [""] + _wrap(f"{queue_label(m)} by reason: {by_reason or 'none'}", indent="")
        newest = c.get(m.newest_field, [])
        if newest:
            more = f" of {c[m.field_name]}" if c[m.field_name] > len(newest) else ""
            lines.append(f"{queue_label(m)}, newest first ({len(newest)}{more}, at most {shown} shown):")
            lines += [line for f in newest for line in _wrap(_failure(f, with_id=True))]
    reasons = _reasons({}, [c], [])
    if reasons:
        lines += ["", f"Could not read ({UNREAD} above):"] + reasons
    return "\n".join(lines)


def queue_label(metric) -> str:
    """A queue as `status --connection` and the demo name it: the metric's one name."""
    return metric.name


def _heads(c: dict) -> str:
    """A connection's line: the oldest event of each pair of queues that holds any, and its newest failure."""
    pairs = []
    for first, second in zip(CONNECTION_METRICS[::2], CONNECTION_METRICS[1::2]):
        ids = [c.get(m.oldest_field) for m in (first, second)]
        if any(i is not None for i in ids):
            pairs.append(f"{first.column[0]} " + "/".join(EMPTY if i is None else inert(i) for i in ids))
    failures = [c[m.last_field] for m in CONNECTION_METRICS if m.last_field and m.last_field in c]
    newest = max(failures, key=lambda f: -1 if f.get("id") is None else f["id"], default=None)
    if not pairs and not newest:
        return ""
    name = inert(c["name"])
    text = f"{name}: oldest " + ", ".join(pairs) if pairs else f"{name}:"
    return text + (f"; newest failure {_failure(newest)}" if newest else "")


def _failure(f: dict, with_id: bool = False) -> str:
    """A failed sync in one line, as the templates' newest-failure items write it: "ISSUE REASON: message"."""
    head = " ".join(inert(p) for p in (f.get("issue"), f.get("reason")) if p)
    message = inert(f["message"]) if f.get("message") else ""
    text = f"{head}: {message}" if head and message else head or message or "(no details)"
    return f"{inert(f['id'])} {text}" if with_id and f.get("id") is not None else text


def _wrap(line: str, indent: str = "  ") -> List[str]:
    return textwrap.wrap(line, WIDTH, initial_indent=indent, subsequent_indent=indent + "    ",
                         break_on_hyphens=False) if line else []


def _headline(doc: dict, node: str) -> str:
    if doc.get("ping") == 1:
        return f"Exalate node [{inert(node)}]: up, answered in {doc['response_time']:.3f} s"
    if doc.get(CREDENTIALS_FIELD) == REFUSED:
        return f"Exalate node [{inert(node)}]: CREDENTIALS REFUSED (the node answers, but not to us)"
    return f"Exalate node [{inert(node)}]: DOWN"


def _figures(doc: dict) -> str:
    shown = [(m.command, doc.get(m.field_name, UNREAD)) for m in NODE_METRICS]
    connections = doc.get("connections")
    shown.append(("connections", UNREAD if connections is None else len(connections)))
    return "  " + "   ".join(f"{name} {inert(value)}" for name, value in shown)


def _table(connections: List[dict]) -> List[str]:
    # Two header lines per queue column: what the queue holds, in the words of Exalate's Sync Queue.
    fields = [m.field_name for m in CONNECTION_METRICS]
    headers = [m.heading for m in CONNECTION_METRICS]
    # Widths measured on what is shown (escapes included), in a terminal's columns.
    rows = [[inert(c["name"]), inert(c.get("status", "")), *(inert(c.get(f, UNREAD)) for f in fields)]
            for c in connections]
    widths = [max(len(headers[i][1]), *(shown_width(r[2 + i]) for r in rows)) for i in range(len(fields))]
    status_width = max(len("status"), *(shown_width(r[1]) for r in rows))
    room = WIDTH - 2 - (status_width + 2) - sum(w + 2 for w in widths)
    name_width = max(10, min(room, max(len("connection"), *(shown_width(r[0]) for r in rows))))

    def line(name: str, state: str, cells) -> str:
        return ("  " + padded(_cut(name, name_width), name_width) + "  " + padded(state, status_width)
                + "".join("  " + padded(c, w, right=True) for c, w in zip(cells, widths))).rstrip()

    # The first header line names each pair of columns (syncs, files) once, centred over the pair.
    groups = "  " + " " * (name_width + 2 + status_width)
    for i in range(0, len(fields), 2):
        span = widths[i] + 2 + widths[i + 1]
        groups += "  " + headers[i][0].center(span)
    return [groups.rstrip(), line("connection", "status", [h[1] for h in headers])] + \
        [line(r[0], r[1], r[2:]) for r in rows]


def _reasons(doc: dict, shown: List[dict], hidden: List[dict]) -> List[str]:
    """Each failure's reason once per object: a connection whose six queues failed alike is one line. Of a node
    too large to show whole, connections that failed alike (the same reason but for their own name) share one
    line: the first one's name and how many more, the most frequent first, at most MAX_ROWS lines."""
    out = [f"{', '.join(fields)}: {inert(reason)}" for reason, fields in _grouped(doc.get("failures", {}))]
    if not hidden:
        out += [f"{inert(c['name'])} ({_which(fields)}): {inert(reason)}"
                for c in shown for reason, fields in _grouped(c.get("failures", {}))]
    else:
        alike: dict = {}  # (queues, the reason for any connection) -> [first connection, its reason, how many]
        for c in shown + hidden:
            for reason, fields in _grouped(c.get("failures", {})):
                alike.setdefault((_which(fields), general_reason(reason, c)), [c["name"], reason, 0])[2] += 1
        ranked = sorted(alike.items(), key=lambda kv: -kv[1][2])  # stable: ties in the node's order
        for (which, general), (name, reason, count) in ranked[:MAX_ROWS]:
            who = f"{inert(name)} and {count - 1} more" if count > 1 else inert(name)
            out.append(f"{who} ({which}): {inert(general if count > 1 else reason)}")
        if len(ranked) > MAX_ROWS:
            out.append(f"and {len(ranked) - MAX_ROWS} other reasons")
    return [wrapped for line in out for wrapped in textwrap.wrap(line, WIDTH, initial_indent="  ",
                                                                 subsequent_indent="      ", break_on_hyphens=False)]


def _which(fields: List[str]) -> str:
    return "every queue" if len(fields) == len(CONNECTION_METRICS) else ", ".join(fields)


def _grouped(failures: dict):
    by_reason = {}
    for field, reason in failures.items():
        by_reason.setdefault(reason, []).append(field.replace("_", "-"))
    return by_reason.items()


def inert(value) -> str:
    """A value the node chose as a terminal may show it: control and format characters as visible escapes."""
    return printable(str(value))


def shown_width(text: str) -> int:
    """Columns text takes at a terminal: a wide (East Asian) character two, a combining mark none."""
    return sum(0 if unicodedata.category(c) in ("Mn", "Me") else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in text)


def padded(text: str, width: int, right: bool = False) -> str:
    room = " " * max(0, width - shown_width(text))
    return room + text if right else text + room


def _cut(text: str, width: int) -> str:
    """text in at most width columns, ending in "..." when cut."""
    if shown_width(text) <= width:
        return text
    kept, used = 0, 0
    for c in text:
        used += shown_width(c)
        if used > width - 3:
            break
        kept += 1
    return text[:kept] + "..."
