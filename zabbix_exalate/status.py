"""The collection as a person at a terminal reads it: the node's figures, a table of queues, the reasons."""
import textwrap
from typing import List

from .metrics import CONNECTION_METRICS, NODE_METRICS

WIDTH = 80
UNREAD = "?"


def status_text(doc: dict, node: str) -> str:
    lines = [_headline(doc, node), _figures(doc)]
    connections = doc.get("connections")
    if connections is None:
        lines += ["", "Connections: not known (see below)"]
    elif not connections:
        lines += ["", "Connections: none"]
    else:
        lines += [""] + _table(connections)
    reasons = _reasons(doc)
    if reasons:
        lines += ["", f"Could not read ({UNREAD} above):"] + reasons
    return "\n".join(lines)


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
