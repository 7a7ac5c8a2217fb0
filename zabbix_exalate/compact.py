"""Fits collect's document into what the Zabbix agent takes from a command: an outage's reasons compacted, never a number."""
import json
from typing import Dict, List, Optional, Tuple

from .errors import ConfigError
from .metrics import CONNECTIONS_FIELD as CONNECTIONS

# The Zabbix 6.0 agent refuses a command's output above 512 KB.
AGENT_OUTPUT_LIMIT = 512 * 1024
COMPACTED = "compacted"  # the top-level field that says what was shortened or left out, and each reason once
CUT = 80                 # a connection's reason, once compacted: enough for ".../syncrequests answered HTTP 401: ..."
MAX_GROUPS = 20          # distinct reasons stated in full (the most frequent); a hostile node could make thousands
MAX_STATED = 300         # and each of them at most this long
LEFT_OUT = "see compacted"  # a connection's "unread" once its reasons are left out: the templates show it


def one_line(document: dict) -> str:
    """The document as collect prints it: one compact line of ASCII JSON."""
    return json.dumps(document, separators=(",", ":"))


def agent_text(document: dict, limit: int = AGENT_OUTPUT_LIMIT) -> str:
    """The document's line, within limit bytes with its newline: as it is when it fits; else with each
    connection's reasons cut to CUT characters; else with them left out. Either way every number stays, and
    the "compacted" field says what was done and states each distinct reason once. Raises ConfigError when even
    that does not fit: then the node's figures themselves are too many for the agent."""
    text = one_line(document)
    if len(text) < limit:
        return text
    # What is left once every connection's reasons are out: measured first, it spares a node too large anyway
    # (10,000 connections) the work of grouping 60,000 reasons after its deadline.
    bare = {k: v for k, v in document.items() if k != CONNECTIONS}
    bare[CONNECTIONS] = [{k: v for k, v in c.items() if k != "failures"} for c in document.get(CONNECTIONS) or ()]
    unread = sum("failures" in c for c in document.get(CONNECTIONS) or ())
    if len(one_line(bare)) + unread * len(f',"unread":"{LEFT_OUT}"') >= limit:
        raise ConfigError(_too_large(len(text), limit))
    reasons = _connection_reasons(document)
    groups = _groups(reasons)
    for cut in (CUT, None):
        compacted = one_line(_compacted(document, reasons, groups, cut))
        if len(compacted) < limit:
            return compacted
    raise ConfigError(_too_large(len(text), limit))


def _too_large(size: int, limit: int) -> str:
    return (f"the collection is {size >> 10} KB, more than the {limit >> 10} KB the Zabbix agent takes from a "
            f"command: use 'zabbix-exalate send' with the \"Exalate by Zabbix trapper\" template, which has no such "
            f"limit")


# (connection's position, field, reason, the reason with the connection's own name and key as {connection})
Reason = Tuple[int, str, str, str]


def _connection_reasons(document: dict) -> List[Reason]:
    found = []
    for i, c in enumerate(document.get(CONNECTIONS) or ()):
        for field, reason in (c.get("failures") or {}).items():
            found.append((i, field, reason, general_reason(reason, c)))
    return found


def general_reason(reason: str, connection: dict) -> str:
    """The reason as it reads for any connection: this one's name and key form (in its URLs) as {connection}."""
    for own in sorted({connection.get("key") or "", connection.get("name") or ""}, key=len, reverse=True):
        if len(own) >= 3:  # a name of one or two characters would turn up by chance in any sentence
            reason = reason.replace(own, "{connection}")
    return reason


def _groups(reasons: List[Reason]) -> List[dict]:
    """Each distinct reason once, the most frequent first (ties: in the order they come), at most MAX_GROUPS."""
    by_text: Dict[str, dict] = {}
    for i, field, _, general in reasons:
        group = by_text.setdefault(general, {"reason": _cut(general, MAX_STATED), "values": 0, "fields": [],
                                             "connections": set()})
        group["values"] += 1
        group["connections"].add(i)
        if field not in group["fields"]:
            group["fields"].append(field)
    ranked = sorted(by_text.values(), key=lambda g: -g["values"])  # sorted() is stable: ties keep their order
    return [{**g, "connections": len(g["connections"])} for g in ranked[:MAX_GROUPS]]


def _compacted(document: dict, reasons: List[Reason], groups: List[dict], cut: Optional[int]) -> dict:
    """The document with each connection's reasons cut to cut characters (cut None: left out, the connection
    marked "unread"), and the "compacted" field after the connections."""
    connections = [dict(c) for c in document[CONNECTIONS]]
    for c in connections:
        if "failures" in c:
            if cut is None:
                del c["failures"]
                c["unread"] = LEFT_OUT
            else:
                c["failures"] = {field: _cut(_own_url_shortened(reason, c), cut)
                                 for field, reason in c["failures"].items()}
    values, unread = len(reasons), len({i for i, *_ in reasons})
    what = (f"each connection's reasons cut to {cut} characters" if cut else
            f"each connection's reasons left out (the connection says \"unread\": \"{LEFT_OUT}\")")
    listed = "" if len(groups) == len({r[3] for r in reasons}) else f" (the {MAX_GROUPS} most frequent)"
    compacted = {"why": f"the reasons of {values} values of {unread} connections that could not be read made the "
                        f"document too large for the Zabbix agent: {what}; each distinct reason is stated once here"
                        f"{listed}, {{connection}} standing for the connection's name",
                 "reasons": groups}
    out = {k: v for k, v in document.items() if k != "failures"}
    out[CONNECTIONS] = connections
    out[COMPACTED] = compacted
    if "failures" in document:
        out["failures"] = document["failures"]  # last, as collect prints it
    return out


def _own_url_shortened(reason: str, connection: dict) -> str:
    """The reason with the URL of this connection's own request shortened to what follows the connection's
    segment (".../syncevents/syncrequests"): the item it reaches already says which connection it is."""
    own = "/" + (connection.get("key") or "")
    at = reason.find(own) if len(own) > 3 else -1
    while at >= 0:
        end = at + len(own)
        start = reason.rfind(" ", 0, at) + 1  # a reason is one line: its URL starts after a space
        if (end == len(reason) or reason[end] in "/?# ") and "://" in reason[start:at]:
            reason = reason[:start] + "..." + reason[end:]
            end = start + 3
        at = reason.find(own, end)
    return reason


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."
