"""Connection names: the key-safe form handed to Zabbix, and the one URL path segment sent to the node."""
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


def printable(name: str) -> str:
    """The name fit for a one-line message: control characters shown as escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)
