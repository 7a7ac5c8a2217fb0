"""Talks to one Exalate node over HTTP and turns every way a request can fail into one CheckError."""
import json
import os
import time
from typing import Callable, List, Optional
from urllib.parse import urlsplit

import requests
import urllib3

from .auth import Authenticator, Credential, TokenCache, is_jwt
from .config import NodeConfig
from .masking import Masker
from .errors import (AuthError, BadResponse, CheckTimeout, ConfigError, ConnectionNotFound,
                     ServerError, Unreachable)
from .metrics import AUTHENTICATE_PATH, CONNECTIONS_PATH, QUEUE, Metric
from .names import key_form, printable
from . import jsonstream

API_ROOT = "/rest/issuehub/"
USER_AGENT = "zabbix-exalate"
MAX_TOKEN = 8 << 20  # the longest single JSON value (string) we parse: see _Body._mind_tokens


def process_age() -> float:
    """Seconds since this process started, Python's own start-up included (0 where Linux cannot say)."""
    try:
        with open("/proc/self/stat", "rb") as handle:
            # Field 22, after the command name in parentheses (which may hold spaces): start time in ticks.
            started = int(handle.read().rsplit(b")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


class Deadline:
    """The whole check's time budget, shared by connecting, logging in and reading.

    It counts from when the process started: the agent's Timeout does too."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic, spent: float = 0.0):
        self.seconds = seconds
        self.clock = clock
        self.end = clock() + seconds - spent

    def remaining(self) -> float:
        left = self.end - self.clock()
        if left <= 0:
            raise CheckTimeout(f"no complete answer within the timeout of {self.seconds:g} s")
        return left


class _Body:
    """The response body as a file for the streaming parser, minding the deadline between reads."""

    def __init__(self, response: requests.Response, deadline: Deadline):
        self.raw = response.raw
        self.raw.decode_content = True
        self.deadline = deadline
        self.bytes_read = 0
        self.head = b""  # the first bytes, to name what came instead of JSON
        self.since_quote = 0  # bytes since the last quote: the length of the token being read, at least

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
        return data

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


class Node:
    """One configured Exalate node. Constructing it does no I/O."""

    def __init__(self, cfg: NodeConfig, deadline: Deadline, session: Optional[requests.Session] = None,
                 cache: Optional[TokenCache] = None, trace: Optional[Callable[[str], None]] = None,
                 masker: Optional[Masker] = None):
        self.masker = masker or Masker()
        self.cfg = cfg
        self.deadline = deadline
        self.trace = trace  # --debug: one line per request (never a secret: the CLI masks it too)
        self.waiting_for: Optional[str] = None  # the host a request waits on, for a timeout's message
        self.session = session or requests.Session()
        self.auth = Authenticator(cfg, cache or TokenCache.for_config(cfg), self._login, masker=self.masker)

    # -- the checks ---------------------------------------------------------------------------

    def value(self, metric: Metric, connection: Optional[str] = None, reason: Optional[str] = None) -> int:
        url = self.url_for(metric, connection)
        what = f"the answer of {self._show(url)}"
        with self._get(url, metric.api, connection) as response:
            body = _Body(response, self.deadline)
            if metric.field:
                return jsonstream.read_number(body, metric.field, what)
            return jsonstream.count_elements(body, what, metric.reason_field, reason)

    def connections(self) -> List[dict]:
        """The node's connections as [{"name", "id", "status", "remote"}]; the configured list if it cannot say."""
        url = self.cfg.url + API_ROOT + CONNECTIONS_PATH
        try:
            response = self._get(url, QUEUE, None, missing_ok=True)
        except AuthError:
            # Credentials that may read the queues but not the list (a Cloud customer monitor login):
            # the configured list, when there is one, is what the operator meant.
            if self.cfg.connections:
                return self._configured_connections(url)
            raise
        with response:
            if response.status_code == 404:
                return self._configured_connections(url)
            found, total = jsonstream.read_connections(_Body(response, self.deadline), f"the answer of {self._show(url)}")
        if total is not None and total > len(found):
            # A partial list would let Zabbix delete the items of the connections left out, once the
            # discovery lifetime passes: the configured list, else no list at all, which keeps every item.
            if self.cfg.connections:
                return self._configured_connections(url)
            raise BadResponse(f"{self._show(url)} lists {len(found)} of the node's {total} connections (a paged "
                              f"answer, which zabbix-exalate cannot follow yet): list them in [{self.cfg.name}] of "
                              f"{self.cfg.source} as connections = one name a line, and report this")
        return [c for c in found if c["name"]]  # a nameless entry cannot be queried: skip it

    def url_for(self, metric: Metric, connection: Optional[str] = None) -> str:
        if metric.api == "monitor" and self.cfg.monitor_url:
            return self.cfg.monitor_url
        path = metric.path
        if metric.per_connection:
            if not connection:
                raise ConfigError(f"{metric.command} needs a connection name")
            if any(part in (".", "..") for part in connection.split("/")):
                # HTTP clients and servers resolve "." and ".." (even as %2E) as navigation, and a proxy that
                # decodes %2F turns "x/../.." into it: the request would reach another endpoint (another
                # connection's queue). Refuse rather than count something else.
                raise ConfigError(f"a connection named '{printable(connection)}' cannot be checked: a '.' or "
                                  f"'..' between slashes reads as path navigation in URLs, not as a name; rename "
                                  f"the connection in Exalate")
            try:
                # One percent-encoded segment: "/" and ".." in a name never leave the connection's path.
                path = path.replace("{connection}", key_form(connection))
            except UnicodeEncodeError:  # bytes that are not UTF-8 in the argument (surrogate escapes)
                raise ConfigError("the connection name is not UTF-8 text: give the name as discovery prints "
                                  "it ({#CONNECTION.KEY})") from None
        return self.cfg.url + API_ROOT + path

    # -- HTTP ---------------------------------------------------------------------------------

    def _configured_connections(self, url) -> List[dict]:
        if not self.cfg.connections:
            raise BadResponse(f"this node does not list its connections ({self._show(url)} answered HTTP 404): "
                              f"list them in [{self.cfg.name}] of {self.cfg.source} as connections = "
                              f"one name a line")
        return [{"name": n, "id": None, "status": "CONFIGURED", "remote": None} for n in self.cfg.connections]

    def _get(self, url: str, api: str, connection: Optional[str], missing_ok: bool = False) -> requests.Response:
        credential = self.auth.credential(api)
        response = self._send("GET", url, credential)
        if response.status_code in (401, 403) and credential.renewable:
            # A cached token may have expired or been revoked early: get a fresh one, once.
            response.close()
            self.auth.forget(credential)
            credential = self.auth.credential(api)
            response = self._send("GET", url, credential)
        try:
            self._raise_for_status(response, url, credential, connection, missing_ok)
        except BaseException:
            response.close()
            raise
        return response

    def _send(self, method: str, url: str, credential: Credential, **kwargs) -> requests.Response:
        timeout = self.deadline.remaining()
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **credential.headers}
        started = time.monotonic()
        self.waiting_for = self._host(url)
        try:
            response = self._request(method, url, credential, headers, timeout, **kwargs)
        except Exception as exc:
            if self.trace:
                self.trace(f"{method} {self._show(url)} with {credential.label}: failed after "
                           f"{1000 * (time.monotonic() - started):.0f} ms ({type(exc).__name__})")
            raise
        self.waiting_for = None
        if self.trace:
            self.trace(f"{method} {self._show(url)} with {credential.label}: HTTP {response.status_code}, headers "
                       f"after {1000 * (time.monotonic() - started):.0f} ms, {self.deadline.end - self.deadline.clock():.2f} s "
                       f"of the budget left")
        return response

    def _request(self, method: str, url: str, credential: Credential, headers: dict, timeout: float, **kwargs):
        cfg = self.cfg
        try:
            return self.session.request(
                method, url, headers=headers, auth=credential.basic, timeout=(timeout, timeout),
                stream=True, allow_redirects=False, verify=cfg.verify,
                cert=(cfg.client_cert, cfg.client_key) if cfg.client_key else cfg.client_cert,
                proxies={"http": cfg.proxy, "https": cfg.proxy} if cfg.proxy else None, **kwargs)
        except requests.exceptions.Timeout:
            raise CheckTimeout(f"{self._show(url)} did not answer within the timeout of "
                               f"{self.deadline.seconds:g} s: is the node overloaded? raise timeout if it is just slow") from None
        except requests.exceptions.SSLError as exc:
            raise Unreachable(f"TLS with {self._host(url)} failed ({_tls_reason(exc)}): "
                              f"if the node uses a private CA, set verify = /path/to/ca.pem") from None
        except requests.exceptions.ProxyError:
            raise Unreachable(f"the proxy {self._proxy()} refused, failed or closed the request to {self._host(url)}: "
                              f"check proxy and the proxy's log") from None
        except requests.exceptions.ConnectionError as exc:
            raise Unreachable(f"cannot connect to {self._host(url)}: {_connect_reason(exc)}") from None
        except requests.exceptions.InvalidURL:
            raise ConfigError(f"the url {self._show(url)} in [{cfg.name}] of {cfg.source} is not valid") from None
        except (OSError, requests.exceptions.RequestException) as exc:
            raise Unreachable(f"request to {self._host(url)} failed: {type(exc).__name__}") from None

    def _raise_for_status(self, response, url, credential, connection, missing_ok):
        status = response.status_code
        shown = self._show(url)
        if status == 200:
            self._refuse_html(response, url)
            return
        if status == 404 and missing_ok:
            return
        if status == 400 and connection is not None:
            text = self._text(response)
            if "not found" in text.lower():
                raise ConnectionNotFound(
                    f"connection '{printable(connection)}' not found on {self._host(url)}: it may have been removed "
                    f"or renamed on the other side; check the connection in Exalate and rediscover")
            raise BadResponse(f"{shown} refused the request (HTTP 400): {self._outside(text) or '(empty body)'}")
        if status == 407:
            raise Unreachable(f"the proxy {self._proxy()} refused to pass the request to {self._host(url)} (HTTP 407 "
                              f"Proxy Authentication Required): check the user and password in proxy")
        if status in (401, 403):
            what = "were rejected" if status == 401 else "were not accepted (not authenticated or not allowed)"
            raise AuthError(f"{shown} answered HTTP {status}: the credentials {what}; used {credential.label}")
        if 300 <= status < 400:
            target = self._outside(response.headers.get("Location", "?"))
            if "login" in target.lower():
                raise BadResponse(f"{shown} redirected to a login page ({target}): the credentials were not "
                                  f"accepted or url points to a web UI")
            raise BadResponse(f"{shown} redirected (HTTP {status}) to {target}: set url to the address it redirects to")
        if status >= 500:
            whose = (f"the proxy {self._proxy()} or the node has a problem" if self._proxy() and status in (502, 503, 504)
                     else "the node has a problem; see the Exalate/Jira log on the node")
            raise ServerError(f"{shown} answered HTTP {status} {self._outside(response.reason or '', 60)}".rstrip()
                              + f": {whose}")
        if status == 404:
            raise BadResponse(f"{shown} does not exist (HTTP 404): check url (the node's base URL) and that "
                              f"this Exalate version has this endpoint")
        raise BadResponse(f"{shown} answered HTTP {status} {self._outside(response.reason or '', 60)}".rstrip()
                          + f": {self._outside(self._text(response)) or '(empty body)'}")

    def _refuse_html(self, response, url):
        ctype = response.headers.get("Content-Type", "").lower()
        if "html" in ctype:
            raise BadResponse(f"{self._show(url)} answered with an HTML page instead of JSON (a login page or a "
                              f"proxy's error page?): check url and the credentials")

    def _text(self, response) -> str:
        data = b""
        for chunk in response.iter_content(8192):
            data += chunk
            if len(data) >= 4096:  # the 400 text is one sentence: no need to read more
                break
        return data.decode("utf-8", "replace").strip()

    def _login(self, cfg: NodeConfig) -> str:
        url = cfg.url + API_ROOT + AUTHENTICATE_PATH
        credential = Credential(f"login_password in [{cfg.name}]", {})
        body = {"authProtocol": "basic", "user": cfg.login_user, "password": cfg.login_password}
        with self._send("POST", url, credential, json=body) as response:
            if response.status_code in (401, 403):
                raise AuthError(f"logging in at {self._show(url)} failed (HTTP {response.status_code}): "
                                f"check login_user and login_password in [{cfg.name}]")
            self._raise_for_status(response, url, credential, None, False)
            body = self._text(response)  # read even when the header has the token: the connection is reused
            token = response.headers.get("X-Exalate-Jwt") or _token_in(body)
        if not token:
            raise BadResponse(f"logging in at {self._show(url)} returned no token (neither an X-Exalate-Jwt "
                              f"header nor a token in the body)")
        self.masker.add(token)
        if not is_jwt(token):
            # Never cached: a token no request can carry would fail every check until it expired.
            raise BadResponse(f"logging in at {self._show(url)} returned a token that is not a JWT (characters "
                              f"a header cannot carry, or not three base64url parts): report it to the node's admin")
        return token

    def _outside(self, text: str, width: int = 200) -> str:
        """Text the node (or a proxy) chose, fit for our one line: secrets masked first, then the first
        line, control characters escaped, cut to width."""
        lines = self.masker.mask(text).splitlines()
        line = printable(lines[0].strip()) if lines else ""
        return line if len(line) <= width else line[:width - 3] + "..."

    def _proxy(self) -> str:
        """The proxy's host:port, without its credentials ("" when requests goes direct)."""
        proxy = self.cfg.proxy or requests.utils.get_environ_proxies(self.cfg.url).get(urlsplit(self.cfg.url).scheme)
        if not proxy:
            return ""
        parts = urlsplit(proxy)
        return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)

    def _show(self, url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"  # never the query: it could carry a secret

    def _host(self, url: str) -> str:
        parts = urlsplit(url)
        return parts.netloc


def _token_in(text: str) -> Optional[str]:
    try:
        data = json.loads(text)
    except ValueError:
        data = text
    if isinstance(data, dict):
        data = next((data[k] for k in ("token", "jwt", "accessToken", "access_token") if isinstance(data.get(k), str)), None)
    if isinstance(data, str) and data.count(".") == 2 and " " not in data:
        return data
    return None


def _tls_reason(exc: Exception) -> str:
    text = str(exc)
    lowered = text.lower()
    if "mismatch" in lowered or "is not valid for" in lowered or ("hostname" in lowered and "match" in lowered):
        # Checked first: Python reports a name mismatch as CERTIFICATE_VERIFY_FAILED too.
        return "its certificate is for another host name or address: use the name the certificate is for in url"
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "its certificate is not trusted"
    if "WRONG_VERSION_NUMBER" in text:
        return "it does not speak TLS on that port: is the url http://?"
    return "handshake failed"


def _connect_reason(exc: Exception) -> str:
    text = str(exc)
    if "Name or service not known" in text or "NameResolutionError" in text or "nodename nor servname" in text \
            or "Temporary failure in name resolution" in text:
        return "the host name does not resolve (DNS): check url"
    if "Connection refused" in text:
        return "connection refused: nothing listens on that port, or the node is down"
    if "No route to host" in text or "Network is unreachable" in text:
        return "no route to the host: check the network and firewall"
    if "timed out" in text:
        return "the connection timed out"
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the node closed the connection without answering"
    return "the connection failed"
