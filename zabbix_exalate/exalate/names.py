"""Connection names: key form, URL segment, what Zabbix shows, and the one cleaning of the listed connections."""
import hashlib
import re
from typing import Iterable, List, Optional
from urllib.parse import quote, unquote

# Characters kept as they are: none of them is refused by the Zabbix agent in a key parameter,
# none has a meaning in a URL path, and a comma (the key's separator) is not among them.
_KEY_FORM = re.compile(r"(?:[A-Za-z0-9_.-]|%[0-9A-Fa-f]{2})+")

# What zabbix-exalate keeps of the names a node lists (a broken or hostile node: 12 names of 7.9 MB took collect to
# 616 MB, 10,000 names of 10 KB to 666 MB). A longer name is kept cut (LongName): the connection is listed, its
# queues are not asked for. A list whose names add up to more than MAX_NAMES is refused (jsonstream).
MAX_NAME = 16 * 1024          # characters of one name
MAX_NAMES = 1024 * 1024       # characters of all the names of one list, as kept

# How Zabbix shows a name ({#CONNECTION}): in item, trigger and graph names, tag values and macro contexts. A graph
# name holds 128 characters ('Exalate: Connection "NAME": Queues'), an item name and a tag value 255 (Zabbix 6.0
# and 7.0 alike): a name longer than SHOWN is cut to ROOM characters, marked with CUT and followed by its tag.
SHOWN = 96
ROOM = 80
CUT = "\u2026"
# A tag: 12 hex digits of a hash of the name (and of the id, for a name listed again), after KEY_TAG in the key and
# in parentheses after the name shown. 48 bits: two of 10,000 connections share one with a chance of 2e-7.
TAG_LENGTH = 12
KEY_TAG = "+"  # never in a key form ("+" is %2B there), not refused by the agent, inert in JSONPath and the shell
KEY_PREFIX = 64  # characters of the key form a tagged key keeps before its tag
_TAGGED_KEY = re.compile(r"[A-Za-z0-9_.%-]*\+[0-9a-f]{" + str(TAG_LENGTH) + "}")
_TAGGED_SHOWN = re.compile(r" \([0-9a-f]{" + str(TAG_LENGTH) + r"}\)\Z")


def key_form(name: str) -> str:
    """The name percent-encoded down to [A-Za-z0-9_.-]: safe as a Zabbix key parameter and as one
    URL path segment. Reversible, and the identity for plain names like "AllContent"."""
    encoded = quote(name, safe="").replace("~", "%7E")
    if set(encoded) <= {"."}:
        # "." and ".." are path navigation, not a segment: spell the dots out.
        encoded = encoded.replace(".", "%2E")
    return encoded


def connection_name(arg: str) -> str:
    """The exact connection name from what the user passed: the exact name or its key form.

    A string that reads as a key form is decoded; so a name that itself contains "%" followed by
    two hex digits must be given in its key form (as discovery hands it out). A tagged key (is_tagged_key)
    names no connection by itself: the node's list says which one has it."""
    if _KEY_FORM.fullmatch(arg) and "%" in arg:
        try:
            return unquote(arg, errors="strict")
        except UnicodeDecodeError:
            return arg
    return arg


def is_tagged_key(arg: str) -> bool:
    """Whether arg is a key that listed_connections gave a tag: a long name's, or a name listed twice."""
    return bool(_TAGGED_KEY.fullmatch(arg))


class LongName(str):
    """A name longer than zabbix-exalate keeps: its first ROOM characters and CUT. The node's API names a connection
    by its whole name, which is not kept: such a connection's queues cannot be asked for (reason says why)."""
    digest: bytes
    reason: str

    def __new__(cls, name: str):
        cut = super().__new__(cls, name[:ROOM] + CUT)
        cut.digest = _digest(name)
        cut.reason = (f"this connection's name is {len(name)} characters long, more than the {MAX_NAME} "
                      f"zabbix-exalate keeps: its queues cannot be asked for (the node's API names a connection by "
                      f"its whole name); give it a shorter name in Exalate")
        return cut


def kept_name(name: str) -> str:
    """What is kept of a listed name: the name, or a LongName when it is longer than MAX_NAME."""
    return LongName(name) if len(name) > MAX_NAME else name


def _digest(name: str) -> bytes:
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()


def _tag(name: str, again: Optional[str]) -> str:
    whole = name.digest if isinstance(name, LongName) else _digest(name)
    return hashlib.sha256(whole + (b"" if again is None else b"\0" + again.encode("utf-8", "surrogatepass"))
                          ).hexdigest()[:TAG_LENGTH]


def shown(name: str, key: str) -> str:
    """The name as Zabbix shows it ({#CONNECTION}): the name itself, or for a tagged key its first ROOM characters
    (and CUT, when there are more) and the key's tag in parentheses. No two connections of a list share it. The
    discovery scripts of the templates (zabbix/content.py, SHOWN_JS) do the same."""
    if KEY_TAG not in key:
        return name
    return (name if len(name) <= ROOM else name[:ROOM] + CUT) + f" ({key.rpartition(KEY_TAG)[2]})"


def _id_order(entry):
    position, (_, id) = entry
    if isinstance(id, int) and not isinstance(id, bool):
        return (0, id, "", position)
    return (1, 0, id, position) if isinstance(id, str) else (2, 0, "", position)


def listed_connections(found: Iterable[dict]) -> List[dict]:
    """The connections as `collect`'s document and discovery show them, whatever the node put in their fields
    (see listed_connection), each with its own key: a name too long to show whole (or kept cut), a name listed
    again (after the one with the lowest id), and a name that reads like a tagged one get a tagged key: the start
    of the key form, KEY_TAG and a tag that the name (and the id of a repeat) decide, the same at every poll. A
    connection listed twice under one name and id is listed once."""
    found = list(found)
    first_of: dict = {}  # a name (a long one by its digest) -> the position and id of its first listing
    for position, (name, id) in sorted(enumerate((c["name"], c.get("id")) for c in found), key=_id_order):
        first_of.setdefault(_identity(name), (position, id))
    listed, keys = [], set()
    for position, c in enumerate(found):
        name, id = c["name"], c.get("id")
        first, first_id = first_of[_identity(name)]
        if position != first and id == first_id and type(id) is type(first_id):
            continue  # the same connection listed twice: one set of items
        entry = listed_connection(name, id, c.get("status"), c.get("remote"), None if position == first else repr(id))
        if entry["key"] not in keys:  # a repeat of a repeat (the same id again): listed once
            keys.add(entry["key"])
            listed.append(entry)
    return listed


def _identity(name: str):
    return name.digest if isinstance(name, LongName) else name


def listed_connection(name: str, id=None, status=None, remote=None, again: Optional[str] = None) -> dict:
    """One connection as `collect`'s document and discovery show it: {"name", "key", "id", "status"[, "remote"]}; a
    status that is not a string is "UNKNOWN", a remote URL that is not a non-empty string is left out. again: the
    name is listed again, this text (the id) sets it apart."""
    if isinstance(name, LongName) or len(name) > SHOWN or again is not None or _TAGGED_SHOWN.search(name):
        start = key_form(name[:ROOM])[:KEY_PREFIX]
        escape = start.find("%", len(start) - 2)
        key = (start if escape < 0 else start[:escape]) + KEY_TAG + _tag(name, again)
    else:
        key = key_form(name)
    entry = {"name": name, "key": key, "id": id, "status": status if isinstance(status, str) else "UNKNOWN"}
    if isinstance(remote, str) and remote:
        entry["remote"] = remote
    return entry
