"""HTTP to one node within the run's deadline: every way a request or an answer can fail becomes one CheckError."""
import re
import time
from typing import Callable, Dict, Optional, Tuple
from urllib.parse import urlsplit

import requests
import urllib3
from requests.structures import CaseInsensitiveDict

from ..config import NodeConfig
from ..errors import AuthError, BadResponse, CheckTimeout, ServerError, Unreachable, printable
from ..httperrors import host, request_failure, show
from ..masking import Masker
from ..runtime import Deadline

USER_AGENT = "zabbix-exalate"
MAX_TOKEN = 8 << 20  # the longest single JSON value (string) we parse: see Body._mind_tokens
MAX_NUMBER = 64      # the longest number we let the parser convert: see Body._mind_numbers
_NUMBER_CHARS = b"-+.eE0123456789"  # what a JSON number is written with
_AS_NUMBER = bytes(0x31 if c in _NUMBER_CHARS else 0x30 for c in range(256))  # each byte as 1 (number) or 0
_LONG_NUMBER = b"1" * (MAX_NUMBER + 1)
_ESCAPED_QUOTE = re.compile(rb'(\\+)"')


class Body:
    """The response body as a file for the streaming parser, minding the deadline between reads."""

    def __init__(self, response: requests.Response, deadline: Deadline):
        self.raw = response.raw
        self.what = f"the answer of {show(response.url)}" if response.url else "the answer"
        self.raw.decode_content = True
        self.deadline = deadline
        self.bytes_read = 0
        self.head = b""  # the first bytes, to name what came instead of JSON
        self.since_quote = 0  # bytes since the last quote: the length of the token being read, at least
        self.in_string = False  # whether the bytes read so far end inside a JSON string
        self.backslashes = 0    # how many backslashes they end with (an odd run escapes the next quote)
        self.number_tail = 0    # the number characters they end with, outside a string

    def read(self, size: int = -1) -> bytes:
        self.deadline.remaining()
        try:
            data = self.raw.read(size)
        except urllib3.exceptions.ReadTimeoutError:
            raise CheckTimeout(f"the node stopped sending within the timeout of {self.deadline.seconds:g} s, "
                               f"after {self.bytes_read} bytes") from None
        except (urllib3.exceptions.HTTPError, OSError):
            announced = self.raw.headers.get("Content-Length")
            size = f" of the {announced} bytes announced" if announced else ""
            raise BadResponse(f"the answer was cut off before its end{size}: the node or a proxy "
                              f"closed the connection mid-way") from None
        if not self.bytes_read:
            self.head = data[:64].lstrip()
        self.bytes_read += len(data)
        self._mind_tokens(data)
        self._mind_numbers(data)
        return data

    def _mind_numbers(self, data: bytes) -> None:
        """Refuse a number longer than MAX_NUMBER bytes outside a string, before the parser converts it: an
        integer of 4,301 digits makes the C parser fail inside Python (SystemError, or worse) and the pure-Python
        one raise ValueError, and converting a long one costs time with the square of its length. No count or id
        is longer than 20 digits; the same digits inside a string (a message) are only text."""
        inside = self.in_string
        if not inside and self.number_tail + len(data) - len(data.lstrip(_NUMBER_CHARS)) > MAX_NUMBER:
            self._refuse_number()
        mask = data.translate(_AS_NUMBER)  # bytes.find on it runs at memory speed, a regex a tenth of that
        checked, run = 0, mask.find(_LONG_NUMBER)
        while run >= 0:  # rare: only then is the string state at a run counted
            inside = self._string_after(data, checked, run, inside)
            checked = run
            if not inside:
                self._refuse_number()
            after = mask.find(b"0", run)
            run = mask.find(_LONG_NUMBER, after) if after >= 0 else -1
        self.in_string = self._string_after(data, checked, len(data), inside)
        tail = len(data) - len(data.rstrip(_NUMBER_CHARS))
        self.number_tail = 0 if self.in_string else tail + (self.number_tail if tail == len(data) else 0)
        slashes = len(data) - len(data.rstrip(b"\\"))
        self.backslashes = slashes + (self.backslashes if slashes == len(data) else 0)

    def _string_after(self, data: bytes, start: int, end: int, inside: bool) -> bool:
        """Whether the body up to data[end] is inside a string, given whether up to data[start] it was: each
        quote no backslash escapes flips it. (Where the body is not JSON, the parser stops before we matter.)"""
        quotes = data.count(b'"', start, end)
        if quotes and (data.find(b"\\", start, end) >= 0 or start == 0 and self.backslashes % 2):
            quotes -= self._escaped(data, start, end)
        return inside ^ bool(quotes % 2)

    def _escaped(self, data: bytes, start: int, end: int) -> int:
        """How many quotes of data[start:end] an odd run of backslashes escapes. A quote after k backslashes
        holds k of the patterns \\" \\\\" ...: their counts, alternately added and taken, give 1 for odd k, 0 for
        even; a long run of backslashes (hostile) is counted run by run instead."""
        escaped, sign, pattern = 0, 1, b'\\"'
        while len(pattern) <= 8:
            found = data.count(pattern, start, end)
            if not found:
                break
            escaped += sign * found
            sign, pattern = -sign, b"\\" + pattern
        else:
            escaped = sum(len(m.group(1)) % 2 for m in _ESCAPED_QUOTE.finditer(data, start, end))
        if start == 0 and self.backslashes % 2:  # a run that began in the last read
            leading = len(data) - len(data.lstrip(b"\\"))
            if leading < end and data[leading:leading + 1] == b'"':
                escaped += -1 if leading % 2 else 1
        return escaped

    def _refuse_number(self) -> None:
        raise BadResponse(f"{self.what} holds a number too large to be a count (more than {MAX_NUMBER} digits, "
                          f"within its first {self.bytes_read} bytes): not an Exalate answer, or a broken one")

    def _mind_tokens(self, data: bytes) -> None:
        """Refuse one JSON string (or any run without a quote) longer than MAX_TOKEN: the parser's time grows
        with the square of a token's length (32 MB: 4 s here), and no Exalate value is near that long."""
        last = data.rfind(b'"')
        while last > 0 and data[last - 1] == 0x5C:  # an escaped quote does not end the string
            last = data.rfind(b'"', 0, last)
        self.since_quote = len(data) - last - 1 if last >= 0 else self.since_quote + len(data)
        if self.since_quote > MAX_TOKEN:
            raise BadResponse(f"the answer holds a single value longer than {MAX_TOKEN >> 20} MB (after "
                              f"{self.bytes_read} bytes): not an Exalate answer, or a broken one")


def pooled_session(size: int) -> requests.Session:
    """A session that keeps up to size connections per host alive, for requests from as many threads."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=2, pool_maxsize=size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class Transport:
    """Requests to one configured node, each within what is left of the deadline. Constructing it does no I/O."""

    def __init__(self, cfg: NodeConfig, deadline: Deadline, masker: Masker,
                 session: Optional[requests.Session] = None, trace: Optional[Callable[[str], None]] = None):
        self.cfg = cfg
        self.deadline = deadline
        self.masker = masker
        self.session = session or requests.Session()
        # requests reads the environment (proxy variables, REQUESTS_CA_BUNDLE, ~/.netrc) again at every request, a
        # quarter to a third of its CPU (tests/bench/bench_requests.py). Within a run it does not change: read once
        # (_settings_for) and passed to Session.send, which then reads none of it. The session is left as it is:
        # the demo's second poll shares the first one's.
        self.trust_env = self.session.trust_env
        self._settings: Dict[str, Tuple[dict, object, Optional[tuple]]] = {}
        self._templates: Dict[tuple, requests.PreparedRequest] = {}  # see _prepare
        self.trace = trace  # --debug: one line per request (never a secret: the CLI masks it too)
        self.waiting_for: Optional[str] = None  # the host a request waits on, for a timeout's message

    def send(self, method: str, url: str, credential, **kwargs) -> requests.Response:
        """The answer's status and headers; its body streams. credential: an auth.Credential."""
        timeout = self.deadline.remaining()
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **credential.headers}
        started = time.monotonic()
        self.waiting_for = host(url)
        try:
            response = self._request(method, url, credential, headers, timeout, **kwargs)
        except Exception as exc:
            if self.trace:
                self.trace(f"{method} {show(url)} with {credential.label}: failed after "
                           f"{1000 * (time.monotonic() - started):.0f} ms ({type(exc).__name__})")
            raise
        self.waiting_for = None
        if self.trace:
            self.trace(f"{method} {show(url)} with {credential.label}: HTTP {response.status_code}, headers "
                       f"after {1000 * (time.monotonic() - started):.0f} ms, {self.deadline.left():.2f} s "
                       f"of the budget left")
        return response

    def _request(self, method: str, url: str, credential, headers: dict, timeout: float, **kwargs):
        try:
            try:
                return self._attempt(self.session, method, url, credential, headers, timeout, **kwargs)
            except requests.exceptions.ConnectionError as exc:
                if method != "GET" or not _closed_unanswered(exc):
                    raise
            # The node closed a kept-alive connection as we reused it (it keeps none alive, or closes idle ones):
            # a GET is worth one more try, on a new connection (the pool's others may be just as stale),
            # within what is left of the same deadline. Never a POST: a login may have happened.
            if self.trace:
                self.trace(f"{method} {show(url)}: the node closed the connection without answering; once more, "
                           f"on a new connection")
            with requests.Session() as fresh:
                return self._attempt(fresh, method, url, credential, headers, self.deadline.remaining(), **kwargs)
        except (OSError, requests.exceptions.RequestException) as exc:
            raise request_failure(exc, url, self.deadline.seconds, self.proxy(), "the node",
                                  f"[{self.cfg.name}] of {self.cfg.source}") from None

    def _attempt(self, session: requests.Session, method: str, url: str, credential, headers: dict, timeout: float,
                 **kwargs) -> requests.Response:
        cfg = self.cfg
        proxies, verify, netrc = self._settings_for(url)
        prepared = self._prepare(session, method, url, headers, credential.basic or netrc, kwargs)
        return session.send(prepared, timeout=(timeout, timeout), stream=True, allow_redirects=False, verify=verify,
                            cert=(cfg.client_cert, cfg.client_key) if cfg.client_key else cfg.client_cert,
                            proxies=proxies)

    def _prepare(self, session: requests.Session, method: str, url: str, headers: dict, auth, kwargs: dict):
        """The request as Session.request prepares it, less what costs CPU and changes nothing here: merging the
        session's settings (we pass them all) and copying its cookies into a new jar at every request. A GET's
        headers are prepared once; each GET is a copy given its URL, the session's cookies for it and the
        credentials, in requests' order: preparing it all again was a sixth of a request's CPU
        (tests/bench/bench_requests.py)."""
        if method != "GET" or kwargs:
            merged = CaseInsensitiveDict(session.headers)
            merged.update(headers)
            return requests.Request(method, url, headers=merged, auth=auth, cookies=session.cookies,
                                    **kwargs).prepare()
        key = (tuple(session.headers.items()), tuple(headers.items()))
        template = self._templates.get(key)
        if template is None:
            if len(self._templates) > 8:  # a credential renewed many times in one run: keep the newest only
                self._templates.clear()
            template = self._templates[key] = requests.PreparedRequest()
            template.prepare_method(method)
            template.prepare_headers({**session.headers, **headers})
            template.prepare_hooks({})
        prepared = template.copy()
        prepared.prepare_url(url, None)
        prepared.prepare_cookies(session.cookies)  # those whose domain and path match this URL
        prepared.prepare_auth(auth, url)  # the credentials given, else those in the URL (user:password@host)
        return prepared

    def _settings_for(self, url: str) -> Tuple[dict, object, Optional[tuple]]:
        """The proxies, verify and ~/.netrc login a session trusting the environment would use for url, as
        requests itself finds them, looked up once per scheme and host."""
        scheme, _, rest = url.partition("://")
        origin = scheme + "://" + rest.split("/", 1)[0]
        found = self._settings.get(origin)
        if found is None:
            cfg = self.cfg
            proxies = {"http": cfg.proxy, "https": cfg.proxy} if cfg.proxy else {}
            verify, netrc = cfg.verify, None
            if self.trust_env:
                with requests.Session() as probe:
                    merged = probe.merge_environment_settings(url, proxies, True, verify, None)
                proxies, verify = merged["proxies"], merged["verify"]
                netrc = requests.utils.get_netrc_auth(url)
            found = self._settings[origin] = (proxies, verify, netrc)
        return found

    def raise_for_status(self, response: requests.Response, url: str, credential) -> None:
        """Nothing for a JSON 200; else the CheckError that says what the answer means."""
        status = response.status_code
        shown = show(url)
        if status == 200:
            if "html" in response.headers.get("Content-Type", "").lower():
                raise BadResponse(f"{shown} answered with an HTML page instead of JSON (a login page or a "
                                  f"proxy's error page?): check url and the credentials")
            return
        if status == 407:
            raise Unreachable(f"the proxy {self.proxy()} refused to pass the request to {host(url)} (HTTP 407 "
                              f"Proxy Authentication Required): check the user and password in proxy")
        if status in (401, 403):
            what = "were rejected" if status == 401 else "were not accepted (not authenticated or not allowed)"
            raise AuthError(f"{shown} answered HTTP {status}: the credentials {what}; used {credential.label}")
        if 300 <= status < 400:
            target = self.outside(response.headers.get("Location", "?"))
            if "login" in target.lower():
                raise BadResponse(f"{shown} redirected to a login page ({target}): the credentials were not "
                                  f"accepted or url points to a web UI")
            raise BadResponse(f"{shown} redirected (HTTP {status}) to {target}: set url to the address it redirects to")
        if status >= 500:
            whose = (f"the proxy {self.proxy()} or the node has a problem" if self.proxy() and status in (502, 503, 504)
                     else "the node has a problem; see the Exalate/Jira log on the node")
            raise ServerError(f"{shown} answered HTTP {status} {self.outside(response.reason or '', 60)}".rstrip()
                              + f": {whose}")
        if status == 404:
            raise BadResponse(f"{shown} does not exist (HTTP 404): check url (the node's base URL) and that "
                              f"this Exalate version has this endpoint")
        raise BadResponse(f"{shown} answered HTTP {status} {self.outside(response.reason or '', 60)}".rstrip()
                          + f": {self.outside(text(response)) or '(empty body)'}")

    def outside(self, text: str, width: int = 200) -> str:
        """Text the node (or a proxy) chose, fit for our one line: secrets masked first, then the first
        line, control characters escaped, cut to width."""
        lines = self.masker.mask(text).splitlines()
        line = printable(lines[0].strip()) if lines else ""
        return line if len(line) <= width else line[:width - 3] + "..."

    def proxy(self) -> str:
        """The proxy's host:port, without its credentials ("" when requests goes direct)."""
        proxy = self.cfg.proxy or requests.utils.get_environ_proxies(self.cfg.url).get(urlsplit(self.cfg.url).scheme)
        if not proxy:
            return ""
        parts = urlsplit(proxy)
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def _closed_unanswered(exc: requests.exceptions.ConnectionError) -> bool:
    """Whether the connection was closed or reset before any byte of the answer: urllib3's ProtocolError
    ("Connection aborted.") around http.client's RemoteDisconnected, a reset or a broken pipe."""
    cause = exc.args[0] if exc.args else None
    return isinstance(cause, urllib3.exceptions.ProtocolError) and len(cause.args) > 1 and isinstance(
        cause.args[1], (ConnectionResetError, ConnectionAbortedError, BrokenPipeError))


def text(response: requests.Response) -> str:
    """The start of a short answer (an error's sentence, a login's token): never more than a few KB."""
    data = b""
    for chunk in response.iter_content(8192):
        data += chunk
        if len(data) >= 4096:  # the 400 text is one sentence: no need to read more
            break
    return data.decode("utf-8", "replace").strip()
