"""Connection names: their key-safe form, their URL path segment, and the one cleaning of a listed connection."""
import re
from urllib.parse import quote, unquote

# Characters kept as they are: none of them is refused by the Zabbix agent in a key parameter,
# none has a meaning in a URL path, and a comma (the key's separator) is not among them.
_KEY_FORM = re.compile(r"(?:[A-Za-z0-9_.-]|%[0-9A-Fa-f]{2})+")


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
    two hex digits must be given in its key form (as discovery hands it out)."""
    if _KEY_FORM.fullmatch(arg) and "%" in arg:
        try:
            return unquote(arg, errors="strict")
        except UnicodeDecodeError:
            return arg
    return arg


def listed_connection(name: str, id=None, status=None, remote=None) -> dict:
    """One connection as `collect`'s document and discovery show it, whatever the node put in its fields:
    {"name", "key", "id", "status"[, "remote"]}; a status that is not a string is "UNKNOWN", a remote URL
    that is not a non-empty string is left out."""
    entry = {"name": name, "key": key_form(name), "id": id, "status": status if isinstance(status, str) else "UNKNOWN"}
    if isinstance(remote, str) and remote:
        entry["remote"] = remote
    return entry
