"""The HTTP template's JavaScript: exalate_http.js, with the facts it needs filled in from metrics.py."""
import json
from pathlib import Path

from ..exalate import api, jsonstream, names
from ..masking import DATA_SHORTEST, MASK, SHORTEST
from ..metrics import (ACCEPTED, API_ROOT, AUTHENTICATE_PATH, CONNECTION_METRICS, CONNECTIONS_FIELD, CONNECTIONS_PATH,
                       CREDENTIALS_FIELD, NODE_METRICS, REFUSED, REMOVED, UNKNOWN_CREDENTIALS)
from ..collect import CONNECTION_ORDER, NODE_ORDER

SOURCE = Path(__file__).with_name("exalate_http.js")
SPEC_LINE = "var SPEC = {/* filled by the generator */};"

# The longest body the script parses. Duktape's heap holds 64 MB, and a body of small JSON objects takes about
# ten times its size once parsed (measured with zabbix_js 6.0.14: 4 MB of {"a":1} elements failed, 2 MB parsed).
MAX_BODY = 2_000_000
TOO_LARGE = "too large for the HTTP template: use the agent template"
MARGIN_MS = 500  # no request starts later than this before the item's timeout: the document must get back
JWT_TTL = 300    # seconds a minted token is valid (config.py's default jwt_ttl)


def spec() -> dict:
    return {
        "api_root": API_ROOT, "connections_path": CONNECTIONS_PATH, "authenticate_path": AUTHENTICATE_PATH,
        "node_metrics": [{"field": m.field_name, "path": m.path, "api": m.api, "number": m.field}
                         for m in NODE_METRICS],
        "node_fields": {m.command: m.field_name for m in NODE_METRICS},
        "connection_metrics": [{"field": m.field_name, "path": m.path, "api": m.api, "oldest": m.oldest_field,
                                "reasons": m.reasons_field, "last": m.last_field, "reason_field": m.reason_field,
                                "message_field": m.message_field} for m in CONNECTION_METRICS],
        "node_order": list(NODE_ORDER), "connection_order": list(CONNECTION_ORDER),
        "connections_field": CONNECTIONS_FIELD, "credentials_field": CREDENTIALS_FIELD, "accepted": ACCEPTED,
        "refused": REFUSED, "unknown_credentials": UNKNOWN_CREDENTIALS, "removed": REMOVED,
        "max_count": jsonstream.MAX_COUNT, "max_reasons": jsonstream.MAX_REASONS,
        "max_reason_length": jsonstream.MAX_REASON_LENGTH, "no_reason": jsonstream.NO_REASON,
        "other_reasons": jsonstream.OTHER_REASONS, "max_connections": jsonstream.MAX_CONNECTIONS,
        "max_message": api.MAX_MESSAGE, "max_issue": api.MAX_ISSUE,
        "max_name": names.MAX_NAME, "max_names": names.MAX_NAMES, "shown": names.SHOWN, "room": names.ROOM,
        "cut": names.CUT, "key_tag": names.KEY_TAG, "key_prefix": names.KEY_PREFIX, "tag_length": names.TAG_LENGTH,
        "mask": MASK, "mask_shortest": SHORTEST, "data_shortest": DATA_SHORTEST,
        "max_body": MAX_BODY, "too_large": TOO_LARGE, "margin_ms": MARGIN_MS, "jwt_ttl": JWT_TTL,
    }


def http_script() -> str:
    """The Script item's JavaScript, as the template embeds it."""
    source = SOURCE.read_text(encoding="utf-8")
    if SPEC_LINE not in source:
        raise RuntimeError(f"{SOURCE} has no line {SPEC_LINE!r} to fill")
    return source.replace(SPEC_LINE, "var SPEC = " + json.dumps(spec(), ensure_ascii=True) + ";")
