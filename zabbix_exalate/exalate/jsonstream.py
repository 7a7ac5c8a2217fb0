"""Reads numbers out of JSON bodies as they stream in, never holding a whole body in memory."""
import heapq
from dataclasses import dataclass, field
from decimal import Decimal
from typing import BinaryIO, Dict, List, Optional, Tuple

import ijson  # yajl's C parser: validates and streams multi-gigabyte bodies at parser speed

from ..errors import BadResponse, printable
from .names import MAX_NAMES, kept_name

MAX_COUNT = 2 ** 64 - 1  # what a Zabbix unsigned numeric item stores
MAX_ID = 10 ** 64        # beyond any id (and longer numbers never reach the parser: transport.MAX_NUMBER)
MAX_DEPTH = 64           # Exalate's answers are a few levels deep; a deeper body is hostile or broken
MAX_CONNECTIONS = 10_000  # per node: far above any real node, far below what would exhaust memory
# A queue's failures counted by reason: Exalate's reasons are a few dozen names like NO_ISSUE_TO_CONNECT_TO.
MAX_REASONS = 50         # distinct reasons kept per queue; the elements of any further one count under OTHER_REASONS
MAX_REASON_LENGTH = 64   # a longer reason is cut (and ends in "...")
NO_REASON = "(none)"     # an element without a reason (or one that is not a string)
OTHER_REASONS = "(other)"
EVENT_ID = "syncEventId"
ISSUE = ("sourceIssueKey", "urn")


def _events(body: BinaryIO, what: str):
    try:
        yield from ijson.basic_parse(body, buf_size=256 * 1024)
    except ijson.JSONError as exc:
        raise _not_json(body, what, exc) from None


def _not_json(body, what: str, exc: Exception) -> BadResponse:
    if getattr(body, "head", b"").startswith(b"<"):
        return BadResponse(f"{what} is an HTML page, not JSON (a login or error page?): check url "
                           f"and the credentials")
    detail = " ".join(str(exc).split())[:120]
    return BadResponse(f"{what} is not valid JSON ({detail}) after {getattr(body, 'bytes_read', '?')} bytes")


def count_elements(body: BinaryIO, what: str, reason_field: Optional[str] = None,
                   reason: Optional[str] = None) -> int:
    """The number of elements of the JSON array in body (those whose reason_field equals reason, if given)."""
    count = 0
    key = None
    events = _events(body, what)
    first = next(events, (None, None))[0]
    if first != "start_array":
        raise BadResponse(f"{what} is {_describe(first)} where the API promises a JSON array")
    depth = 1
    seen_reason = False
    for event, value in events:
        if event in ("start_map", "start_array"):
            if depth == 1:
                count += reason is None
                seen_reason = False
            depth += 1
            if depth > MAX_DEPTH:
                raise BadResponse(f"{what} is nested deeper than {MAX_DEPTH} levels: not an Exalate answer")
        elif event in ("end_map", "end_array"):
            depth -= 1
        elif depth == 1:
            count += reason is None
        elif depth == 2 and reason is not None:
            if event == "map_key":
                key = value
                if value == reason_field:
                    if seen_reason:
                        raise BadResponse(f"{what} has an element with {reason_field!r} twice")
                    seen_reason = True
                continue
            if key == reason_field and value == reason:
                count += 1
        key = None
    return count


def read_connections(body: BinaryIO, what: str) -> Tuple[List[dict], Optional[int]]:
    """The connections listed in body ({"total", "results": [...]} or a bare array), never more than
    MAX_CONNECTIONS of them: [{"name", "id", "status", "remote"}] and the total the node announces. A name longer
    than names.MAX_NAME is kept cut (names.LongName); names adding up to more than names.MAX_NAMES are refused."""
    entries: List[dict] = []
    kept = 0  # characters of the names kept
    total = None
    # One frame per open object or array: [keys met so far, current key] for an object (a duplicate key is
    # refused), None for an array. A value's path is each frame's current key, or "item" in an array.
    frames: List[Optional[list]] = []
    events = _events(body, what)
    top = next(events, (None, None))[0]
    if top not in ("start_map", "start_array"):
        raise BadResponse(f"{what} is {_describe(top)} where the API promises the connections")
    frames.append([set(), None] if top == "start_map" else None)
    entry = ["item"] if top == "start_array" else ["results", "item"]
    listed = top == "start_array"
    for event, value in events:
        if event == "map_key":
            if value in frames[-1][0]:  # which one counts is each parser's guess: refuse rather than pick
                raise BadResponse(f"{what} has the key {_short(value)} twice in one object")
            frames[-1][0].add(value)
            frames[-1][1] = value
            continue
        if event in ("end_map", "end_array"):
            frames.pop()
            continue
        path = ["item" if f is None else f[1] for f in frames]
        if event in ("start_map", "start_array"):
            if len(frames) >= MAX_DEPTH:
                raise BadResponse(f"{what} is nested deeper than {MAX_DEPTH} levels: not an Exalate answer")
            listed = listed or (path == ["results"] and event == "start_array")
            if path == entry and event == "start_map":
                if len(entries) >= MAX_CONNECTIONS:
                    raise BadResponse(f"{what} lists more than {MAX_CONNECTIONS} connections: more than "
                                      f"zabbix-exalate watches on one node")
                entries.append({"name": None, "id": None, "status": None, "remote": None})
            frames.append([set(), None] if event == "start_map" else None)
        elif path == ["total"] and event == "number":
            if not -MAX_COUNT <= value <= MAX_COUNT:  # not abs(): it overflows the Decimal context
                raise _not_a_count(what, "total", value)
            total = _whole(value, -MAX_COUNT, MAX_COUNT)
        elif entries and len(path) > len(entry) and path[:len(entry)] == entry:
            field = _CONNECTION_FIELDS.get(".".join(path[len(entry):]))
            if field == "id":
                entries[-1]["id"] = _scalar(value)
            elif field == "name":
                name = kept_name(value) if isinstance(value, str) else None
                kept += len(name or "")
                if kept > MAX_NAMES:
                    raise BadResponse(f"{what} lists connections whose names add up to more than {MAX_NAMES} "
                                      f"characters ({len(entries)} connections so far): more than zabbix-exalate "
                                      f"holds for one node, a broken or hostile answer")
                entries[-1]["name"] = name
            elif field:
                entries[-1][field] = value if isinstance(value, str) else None
    if not listed:
        raise BadResponse(f"{what} has no list of connections (no 'results' array)")
    return entries, total


_CONNECTION_FIELDS = {"name": "name", "id": "id", "status": "status", "communication.remoteUrl": "remote"}


def _scalar(value):
    """An id as the node wrote it: a whole number or a string; anything else is not an id."""
    if isinstance(value, str):
        return value
    return _whole(value, -MAX_ID, MAX_ID)


def _whole(value, low: int = 0, high: int = MAX_COUNT) -> Optional[int]:
    """value as an int when the node wrote a whole number from low to high, else None. The bounds come first:
    int() of 1e999999 builds a million digits, 40 s of CPU that no deadline can interrupt."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        return None
    if isinstance(value, Decimal) and not value.is_finite() or not low <= value <= high:
        return None
    whole = int(value)
    return whole if whole == value else None


def _not_a_count(what: str, name: str, value) -> BadResponse:
    # Compared, never abs(): abs(Decimal("1E+1000000")) overflows the decimal context (ijson 3.2 hands it so).
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool) and not -MAX_COUNT <= value <= MAX_COUNT:
        return BadResponse(f"{what} holds a number too large to be a count: {name!r} = {_short(value)}")
    return BadResponse(f"{what} has {name!r} = {_short(value)}, not a count")


def read_number(body: BinaryIO, field: str, what: str) -> int:
    """The non-negative integer at the top-level field of the JSON object in body."""
    events = _events(body, what)
    first = next(events, (None, None))[0]
    if first != "start_map":
        raise BadResponse(f"{what} is {_describe(first)} where the API promises a JSON object with {field!r}")
    depth = 1
    key = None
    found = None
    keys = set()
    # Read to the end even once the field is found: a body that is not valid JSON as a whole is no
    # proof of anything, and the parser streams whatever a server ignoring limit=0 sends along.
    for event, value in events:
        if depth == 1 and event == "map_key":
            if value in keys:  # which one counts is each parser's guess: refuse rather than pick
                raise BadResponse(f"{what} has the key {_short(value)} twice")
            keys.add(value)
            key = value
            continue
        if depth == 1 and key == field:
            found = _whole(value) if event == "number" else None
            if found is None:
                raise _not_a_count(what, field, value)
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
        key = None
    if found is None:
        raise BadResponse(f"{what} has no {field!r} field")
    return found


def _describe(event) -> str:
    return {None: "empty", "start_map": "a JSON object", "start_array": "a JSON array"}.get(event, "a single JSON value")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class Failure:
    """One failed sync as its queue lists it; any part may be missing."""
    id: Optional[int]
    issue: Optional[str]
    reason: Optional[str]
    message: Optional[str]


@dataclass
class Queue:
    """What one pass over a queue's answer found."""
    count: int = 0
    oldest: Optional[int] = None  # the smallest syncEventId waiting; None: empty, or no element has one
    reasons: Dict[str, int] = field(default_factory=dict)  # a queue of failures: how many carry each reason
    newest: List[Failure] = field(default_factory=list)   # the newest failures, newest first (see read_queue)


def read_queue(body: BinaryIO, what: str, reason_field: Optional[str] = None, message_field: Optional[str] = None,
               keep: int = 0) -> Queue:
    """One pass over the JSON array in body: how many elements, the smallest syncEventId, and for a queue of
    failures (reason_field given) the count of each reason and the keep newest failures (highest syncEventId
    first; those without one after, the last listed first). Memory stays bounded whatever the body's size."""
    found = Queue()
    events = _events(body, what)
    first = next(events, (None, None))[0]
    if first != "start_array":
        raise BadResponse(f"{what} is {_describe(first)} where the API promises a JSON array")
    # What an element's own keys hold, by the name kept for it; the issue is sourceIssueKey.urn, a level deeper.
    slots = {k: v for k, v in ((EVENT_ID, "id"), (reason_field, "reason"), (message_field, "message")) if k}
    heap: List[Tuple[int, int, Failure]] = []  # (id or -1, position, failure): the oldest is dropped first
    depth = 1
    key = parent = None  # the current key (at depth 2, or 3), and at depth 3 the depth-2 key it is under
    element: Optional[dict] = None  # the element being read, when it is an object
    for event, value in events:
        if event == "map_key":
            if depth == 2 and element is not None and slots.get(value) in element and value != message_field:
                raise BadResponse(f"{what} has an element with {value!r} twice")
            key = value
            continue
        if event in ("start_map", "start_array"):
            if depth == 1:
                found.count += 1
                element = {} if event == "start_map" else None
            elif depth == 2:
                parent = key if event == "start_map" else None
            depth += 1
            if depth > MAX_DEPTH:
                raise BadResponse(f"{what} is nested deeper than {MAX_DEPTH} levels: not an Exalate answer")
            key = None
            continue
        if event in ("end_map", "end_array"):
            depth -= 1
            if depth == 1 and element is not None:
                _element_done(found, heap, element, reason_field is not None, keep)
                element = None
            elif depth == 2:
                parent = None
            key = None
            continue
        if depth == 1:
            found.count += 1  # a bare value as an element: counted, nothing more to learn
        elif element is not None and depth == 2 and key in slots:
            slot = slots[key]
            element[slot] = value if (_is_id(value) if slot == "id" else isinstance(value, str)) else None
        elif element is not None and depth == 3 and (parent, key) == ISSUE and isinstance(value, str):
            element["issue"] = value
        if depth == 2:
            key = None
    found.newest = [f for _, _, f in sorted(heap, key=lambda entry: entry[:2], reverse=True)]
    return found


def _element_done(found: Queue, heap: list, element: dict, failures: bool, keep: int) -> None:
    event_id = element.get("id")
    if event_id is not None and (found.oldest is None or event_id < found.oldest):
        found.oldest = event_id
    if not failures:
        return
    reason = _reason(element.get("reason"))
    counted = reason if reason in found.reasons or len(found.reasons) < MAX_REASONS else OTHER_REASONS
    found.reasons[counted] = found.reasons.get(counted, 0) + 1
    if keep:
        failure = Failure(event_id, element.get("issue"), None if reason == NO_REASON else reason,
                          element.get("message"))
        entry = (-1 if event_id is None else event_id, found.count, failure)
        if len(heap) < keep:
            heapq.heappush(heap, entry)
        elif entry[:2] > heap[0][:2]:
            heapq.heapreplace(heap, entry)


def _reason(value) -> str:
    if not isinstance(value, str) or not value.strip():
        return NO_REASON
    text = printable(value.strip())
    return text if len(text) <= MAX_REASON_LENGTH else text[:MAX_REASON_LENGTH - 3] + "..."


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT
