"""The one place secrets are masked: each configured secret in every form it takes on the wire."""
import base64
import json
import threading
from typing import Iterable, List, Optional
from urllib.parse import quote, quote_plus, urlsplit

MASK = "***"
SHORTEST = 3  # shorter values (an empty user, "a") would mask ordinary words


class Masker:
    """Collects secrets as they become known (configuration, tokens minted or received) and masks them,
    and the forms they take in JSON, URLs, Basic headers, before anything is cut short or printed."""

    def __init__(self):
        self._forms: List[str] = []
        self._lock = threading.Lock()  # collect's threads add tokens while others mask

    def add(self, *secrets: Optional[str]) -> None:
        forms = set()
        for secret in secrets:
            if secret and len(secret) >= SHORTEST:
                forms.update(_forms(secret))
        with self._lock:
            # Longest first: a secret containing another is masked whole.
            self._forms = sorted(set(self._forms) | {f for f in forms if len(f) >= SHORTEST}, key=len, reverse=True)

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

    def mask(self, text: str) -> str:
        with self._lock:
            forms = self._forms
        for form in forms:
            if form in text:
                text = text.replace(form, MASK)
        return text


def _forms(secret: str) -> Iterable[str]:
    yield secret
    yield json.dumps(secret)[1:-1]                       # in a JSON body: \" \\ \u20ac ...
    yield json.dumps(secret, ensure_ascii=False)[1:-1]
    yield quote(secret, safe="")                         # in a URL or a form
    yield quote_plus(secret, safe="")
    yield repr(secret)[1:-1]                             # in a Python repr, as some libraries report
    yield base64.b64encode(secret.encode("utf-8")).decode()
