"""Reads numbers out of JSON bodies as they stream in, never holding a whole body in memory."""
from typing import BinaryIO, Optional

import ijson  # yajl's C parser: validates and streams multi-gigabyte bodies at parser speed

from .errors import BadResponse


def _events(body: BinaryIO, what: str):
    try:
        yield from ijson.basic_parse(body, buf_size=256 * 1024)
    except ijson.JSONError as exc:
        if getattr(body, "head", b"").startswith(b"<"):
            raise BadResponse(f"{what} is an HTML page, not JSON (a login or error page?): check url "
                              f"and the credentials") from None
        detail = " ".join(str(exc).split())[:120]
        raise BadResponse(f"{what} is not valid JSON ({detail}) after {getattr(body, 'bytes_read', '?')} bytes") from None


def count_elements(body: BinaryIO, what: str, reason_field: Optional[str] = None,
                   reason: Optional[str] = None) -> int:
    """The number of elements of the JSON array in body (those whose reason_field equals reason, if given)."""
    depth = 0
    count = 0
    key = None
    events = _events(body, what)
    first = next(events, (None, None))[0]
    if first != "start_array":
        raise BadResponse(f"{what} is {_describe(first)} where the API promises a JSON array")
    depth = 1
    for event, value in events:
        if event in ("start_map", "start_array"):
            if depth == 1 and reason is None:
                count += 1
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
        elif depth == 1:
            if reason is None:
                count += 1
        elif depth == 2 and reason is not None:
            if event == "map_key":
                key = value
                continue
            if key == reason_field and value == reason:
                count += 1
        key = None
    return count


def read_number(body: BinaryIO, field: str, what: str) -> int:
    """The non-negative integer at the top-level field of the JSON object in body."""
    events = _events(body, what)
    first = next(events, (None, None))[0]
    if first != "start_map":
        raise BadResponse(f"{what} is {_describe(first)} where the API promises a JSON object with {field!r}")
    depth = 1
    key = None
    found = None
    # Read to the end even once the field is found: a body that is not valid JSON as a whole is no
    # proof of anything, and the parser streams whatever a server ignoring limit=0 sends along.
    for event, value in events:
        if depth == 1 and event == "map_key":
            key = value
            continue
        if depth == 1 and key == field:
            if event != "number" or int(value) != value or value < 0:
                raise BadResponse(f"{what} has {field!r} = {_short(value)}, not a count")
            found = int(value)
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
