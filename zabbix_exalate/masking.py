"""The one place secrets are masked: each configured secret in every form it takes on the wire."""
import base64
import json
import re
import threading
from typing import Collection, Iterable, List, Optional
from urllib.parse import quote, quote_plus, urlsplit

MASK = "***"
SHORTEST = 3  # shorter values (an empty user, "a") would mask ordinary words
# The node's own names and states (a connection's name, key, status) are masked only for secrets this long: a
# shorter secret ("1234", "ACTIVE") turns up in them by chance far more often than by an echo, and masking it
# would rename connections and fake their states; one this long found there is an echo. The secret's length, not
# its form's: the key form of a name equal to a 4-character secret is 8 characters, and no more an echo.
DATA_SHORTEST = 8


class Masker:
    """Collects secrets as they become known (configuration, tokens minted or received) and masks them,
    and the forms they take in JSON, URLs, Basic headers, before anything is cut short or printed."""

    def __init__(self):
        self._forms: List[str] = []
        self._data_forms: List[str] = []  # the forms of secrets of DATA_SHORTEST characters or more
        self._lock = threading.Lock()  # collect's threads add tokens while others mask

    def add(self, *secrets: Optional[str]) -> None:
        forms, data_forms = set(), set()
        for secret in secrets:
            if secret and len(secret) >= SHORTEST:
                these = {f for f in _forms(secret) if len(f) >= SHORTEST}
                forms |= these
                if len(secret) >= DATA_SHORTEST:
                    data_forms |= these
        with self._lock:
            # Longest first: a secret containing another is masked whole.
            self._forms = sorted(set(self._forms) | forms, key=len, reverse=True)
            self._data_forms = sorted(set(self._data_forms) | data_forms, key=len, reverse=True)

    def add_basic(self, user: Optional[str], password: Optional[str]) -> None:
        """The Basic header's token: base64 of user:password, in each encoding a client may use."""
        if password:
            pair = f"{user or ''}:{password}"
            for encoding in ("latin-1", "utf-8"):
                try:
                    self.add(base64.b64encode(pair.encode(encoding)).decode())
                except UnicodeEncodeError:
                    continue

    def add_url_credentials(self, url: Optional[str]) -> None:
        """A proxy URL's user:password@, which requests sends as Proxy-Authorization."""
        try:
            parts = urlsplit(url or "")
        except ValueError:
            return
        if parts.password:
            self.add(parts.password)
            self.add_basic(parts.username, parts.password)

    def mask(self, text: str, data: bool = False) -> str:
        """text with every form of every secret as ***; data: the node's names and states, of long secrets only."""
        with self._lock:
            forms = self._data_forms if data else self._forms
        for form in forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def mask_values(self, value, texts: Collection[str] = ()):
        """value (what json.dumps takes) with its strings masked, never its keys, numbers or structure, so that
        the JSON stays valid and its figures true: below a key in texts (a reason, a URL: words a server or a
        file chose) for every secret, elsewhere (the node's names and states) for secrets of DATA_SHORTEST."""
        with self._lock:
            forms = {False: self._forms, True: self._data_forms}
        # One search per string first: a document of 10,000 connections holds 100,000 strings, nearly all
        # without a secret, and status must render it within its timeout.
        finders = {data: re.compile("|".join(map(re.escape, wanted))).search if wanted else None
                   for data, wanted in forms.items()}
        return self._values(value, texts, True, finders)

    def _values(self, value, texts: Collection[str], data: bool, finders: dict):
        if isinstance(value, str):
            find = finders[data]
            return self.mask(value, data) if find and find(value) else value
        if isinstance(value, dict):
            return {k: self._values(v, texts, data and k not in texts, finders) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._values(v, texts, data, finders) for v in value]
        return value  # a number, true/false, null: ours or the node's figures, never a secret's place


def _forms(secret: str) -> Iterable[str]:
    yield secret
    yield json.dumps(secret)[1:-1]                       # in a JSON body: \" \\ \u20ac ...
    yield json.dumps(secret, ensure_ascii=False)[1:-1]
    yield quote(secret, safe="")                         # in a URL or a form
    yield quote(secret, safe="").replace("~", "%7E")     # ... by a stricter encoder (a connection's key form)
    yield quote_plus(secret, safe="")
    yield repr(secret)[1:-1]                             # in a Python repr, as some libraries report
    yield base64.b64encode(secret.encode("utf-8")).decode()
