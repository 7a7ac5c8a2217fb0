"""The collection as a person at a terminal reads it: the whole node at a glance, or one connection in full."""
import textwrap
from typing import List

from .metrics import CONNECTION_METRICS, NODE_METRICS

WIDTH = 80
UNREAD = "?"
EMPTY = "-"


def status_text(doc: dict, node: str) -> str:
    lines = [_headline(doc, node), _figures(doc)]
    connections = doc.get("connections")
    if connections is None:
        lines += ["", "Connections: not known (see below)"]
    elif not connections:
        lines += ["", "Connections: none"]
    else:
        lines += [""] + _table(connections)
        heads = [line for c in connections for line in _wrap(_heads(c))]
        if heads:
            lines += ["", "Oldest event waiting (syncs/files) and newest failure:"] + heads
    reasons = _reasons(doc)
    if reasons:
        lines += ["", f"Could not read ({UNREAD} above):"] + reasons
    return "\n".join(lines)


def connection_text(doc: dict, node: str, position: int, shown: int) -> str:
    """The connection at position in doc's list, in full: each queue's size and oldest event, its failures by
    reason and the newest ones (up to shown of each kind, as collect kept them)."""
    c = doc["connections"][position]
    lines = [_headline(doc, node), _figures(doc), ""]
    about = ", ".join(str(v) for v in (c.get("status"), c.get("id") is not None and f"id {c['id']}", c.get("remote"))
                      if v)
    lines += [f"Connection {c['name']} ({about})", f"  {'queue':<18}{'size':>8}{'oldest':>12}"]
    for m in CONNECTION_METRICS:
        size = c.get(m.field_name, UNREAD)
        oldest = UNREAD if size == UNREAD else c.get(m.oldest_field, EMPTY)
        lines.append(f"  {_label(m):<18}{size:>8}{oldest:>12}")
    for m in CONNECTION_METRICS:
        if not m.reason_field or m.field_name not in c:
            continue
        by_reason = ", ".join(f"{reason} {count}" for reason, count in
                              sorted(c.get(m.reasons_field, {}).items(), key=lambda rc: (-rc[1], rc[0])))
        lines += [""] + _wrap(f"{_label(m).capitalize()} by reason: {by_reason or 'none'}", indent="")
        newest = c.get(m.newest_field, [])
        if newest:
            more = f" of {c[m.field_name]}" if c[m.field_name] > len(newest) else ""
            lines.append(f"{_label(m).capitalize()}, newest first ({len(newest)}{more}, at most {shown} shown):")
            lines += [line for f in newest for line in _wrap(_failure(f, with_id=True))]
    reasons = _reasons({"connections": [c]})
    if reasons:
        lines += ["", f"Could not read ({UNREAD} above):"] + reasons
    return "\n".join(lines)


def _label(metric) -> str:
    group, kind = metric.column
    return f"{group} ({kind})"


def _heads(c: dict) -> str:
    """A connection's line: the oldest event of each pair of queues that holds any, and its newest failure."""
    pairs = []
    for first, second in zip(CONNECTION_METRICS[::2], CONNECTION_METRICS[1::2]):
        ids = [c.get(m.oldest_field) for m in (first, second)]
        if any(i is not None for i in ids):
            pairs.append(f"{first.column[0]} " + "/".join(EMPTY if i is None else str(i) for i in ids))
    failures = [c[m.last_field] for m in CONNECTION_METRICS if m.last_field and m.last_field in c]
    newest = max(failures, key=lambda f: -1 if f.get("id") is None else f["id"], default=None)
    if not pairs and not newest:
        return ""
    text = f"{c['name']}: oldest " + ", ".join(pairs) if pairs else f"{c['name']}:"
    return text + (f"; newest failure {_failure(newest)}" if newest else "")


def _failure(f: dict, with_id: bool = False) -> str:
    """A failed sync in one line, as the templates' newest-failure items write it: "ISSUE REASON: message"."""
    head = " ".join(p for p in (f.get("issue"), f.get("reason")) if p)
    text = f"{head}: {f['message']}" if head and f.get("message") else head or f.get("message") or "(no details)"
    return f"{f['id']} {text}" if with_id and f.get("id") is not None else text


def _wrap(line: str, indent: str = "  ") -> List[str]:
    return textwrap.wrap(line, WIDTH, initial_indent=indent, subsequent_indent=indent + "    ",
                         break_on_hyphens=False) if line else []


def _headline(doc: dict, node: str) -> str:
    if doc.get("ping") == 1:
        return f"Exalate node [{node}]: up, answered in {doc['response_time']:.3f} s"
    return f"Exalate node [{node}]: DOWN"


def _figures(doc: dict) -> str:
    shown = [(m.command, doc.get(m.field_name, UNREAD)) for m in NODE_METRICS]
    connections = doc.get("connections")
    shown.append(("connections", UNREAD if connections is None else len(connections)))
    return "  " + "   ".join(f"{name} {value}" for name, value in shown)


def _table(connections: List[dict]) -> List[str]:
    # Two header lines per queue column: what the queue holds, in the words of Exalate's Sync Queue.
    fields = [m.field_name for m in CONNECTION_METRICS]
    headers = [m.column for m in CONNECTION_METRICS]
    rows = [(c["name"], c.get("status", ""), *(str(c.get(f, UNREAD)) for f in fields)) for c in connections]
    widths = [max(len(headers[i][1]), *(len(r[2 + i]) for r in rows)) for i in range(len(fields))]
    status_width = max(len("status"), *(len(r[1]) for r in rows))
    room = WIDTH - 2 - (status_width + 2) - sum(w + 2 for w in widths)
    name_width = max(10, min(room, max(len("connection"), *(len(r[0]) for r in rows))))

    def line(name: str, state: str, cells) -> str:
        name = name if len(name) <= name_width else name[:name_width - 3] + "..."
        return ("  " + name.ljust(name_width) + "  " + state.ljust(status_width)
                + "".join("  " + c.rjust(w) for c, w in zip(cells, widths))).rstrip()

    # The first header line names each pair of columns (syncs, files) once, centred over the pair.
    groups = "  " + " " * (name_width + 2 + status_width)
    for i in range(0, len(fields), 2):
        span = widths[i] + 2 + widths[i + 1]
        groups += "  " + headers[i][0].center(span)
    return [groups.rstrip(), line("connection", "status", [h[1] for h in headers])] + \
        [line(r[0], r[1], r[2:]) for r in rows]


def _reasons(doc: dict) -> List[str]:
    """Each failure's reason once per object: a connection whose six queues failed alike is one line."""
    out = [f"{', '.join(fields)}: {reason}" for reason, fields in _grouped(doc.get("failures", {}))]
    for c in doc.get("connections") or ():
        for reason, fields in _grouped(c.get("failures", {})):
            what = "every queue" if len(fields) == len(CONNECTION_METRICS) else ", ".join(fields)
            out.append(f"{c['name']} ({what}): {reason}")
    return [wrapped for line in out for wrapped in textwrap.wrap(line, WIDTH, initial_indent="  ",
                                                                 subsequent_indent="      ", break_on_hyphens=False)]


def _grouped(failures: dict):
    by_reason = {}
    for field, reason in failures.items():
        by_reason.setdefault(reason, []).append(field.replace("_", "-"))
    return by_reason.items()
