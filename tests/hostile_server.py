"""A loopback HTTP server that misbehaves on purpose, and the one assertion every failing check must pass.

HostileServer answers each request with whatever a test scripts for its path: any status and reason
phrase (control characters included), raw headers, a body of bytes, a generator (hundreds of MB,
never built in memory) or a function of the request (to echo what the client sent), a delay before
answering, or a connection closed without a word. It records every request, so a test can count
logins or read the token the client actually sent. It can speak TLS and act as an HTTP proxy.

assert_contract is the contract of issue 10: whatever went wrong, the agent gets nothing on stdout,
exactly one clean line on stderr, the documented exit status, within the timeout + 0.5 s of the
process's start, and no secret in any form.
"""
import base64
import fnmatch
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import unicodedata
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union
from urllib.parse import quote, quote_plus

from conftest import Run, assert_no_secret, console

SLACK = 0.5  # the contract: the whole process ends within the timeout + this


# -- the server -------------------------------------------------------------------------------

@dataclass
class Request:
    method: str
    path: str          # as sent: an absolute URI when the server acts as a proxy
    headers: dict      # name -> value, names as sent (the first of a repeated header)
    body: bytes

    def header(self, name: str) -> Optional[str]:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


Body = Union[bytes, str, Iterable[bytes], Callable[[Request], bytes]]


@dataclass
class Answer:
    """One scripted answer. body may be bytes, text, an iterable of bytes (streamed as it is produced),
    or a function of the Request (for echoes). length: the Content-Length to announce (None: that of a
    bytes body; for a stream, none, and the connection closes at its end)."""
    status: int = 200
    body: Body = b""
    reason: Optional[str] = None       # the status line's reason phrase, sent byte for byte (Latin-1)
    content_type: Optional[str] = "application/json"
    headers: Sequence[Tuple[str, str]] = ()
    length: Optional[int] = None
    delay: float = 0.0                 # seconds before the status line
    hang_up: bool = False              # close the connection without answering


def echo_headers(*names: str) -> Callable[[Request], bytes]:
    """A body that quotes back, on one short line, the request headers named (those the request had)."""
    def body(request: Request) -> bytes:
        quoted = {name: request.header(name) for name in names if request.header(name) is not None}
        return json.dumps({"you sent": quoted}).encode()
    return body


def echo_body(request: Request) -> bytes:
    """A body that quotes back the request's own body, as some frameworks do in a 4xx."""
    return b'{"message": "cannot process", "request": ' + (request.body or b'""') + b"}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self._answer()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_CONNECT = do_GET

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, 1 << 20)) if length else b""
        request = Request(self.command, self.path, {k: v for k, v in reversed(self.headers.items())}, body)
        server: HostileServer = self.server  # type: ignore[assignment]
        with server.lock:
            server.requests.append(request)
        answer = server.answer_for(request)
        if answer.delay:
            time.sleep(answer.delay)
        if answer.hang_up:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._write(request, answer)

    def _write(self, request: Request, answer: Answer) -> None:
        body = answer.body(request) if callable(answer.body) else answer.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        reason = answer.reason if answer.reason is not None else _phrase(answer.status)
        head = [f"HTTP/1.1 {answer.status} {reason}".encode("latin-1")]
        if answer.content_type:
            head.append(b"Content-Type: " + answer.content_type.encode("latin-1"))
        length = answer.length if answer.length is not None else (len(body) if isinstance(body, bytes) else None)
        if length is not None:
            head.append(b"Content-Length: " + str(length).encode())
        else:
            head.append(b"Connection: close")
            self.close_connection = True
        for name, value in answer.headers:
            head.append(name.encode("latin-1") + b": " + (value if isinstance(value, bytes) else
                                                           value.encode("latin-1")))
        try:
            self.wfile.write(b"\r\n".join(head) + b"\r\n\r\n")
            if self.command == "HEAD":
                return
            for chunk in ([body] if isinstance(body, bytes) else body):
                self.wfile.write(chunk)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True  # the client gave up: that is its right

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Whatever"


class HostileServer(ThreadingHTTPServer):
    """A scriptable server on 127.0.0.1:0: server.route("GET", "*/4.0/syncevents*", Answer(...)).

    Routes are matched in the order added (fnmatch on the request path, query included); an Answer or a
    function Request -> Answer. Anything unscripted gets a 404 JSON body."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, tls: Optional[Tuple[str, str]] = None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: List[Tuple[str, str, Union[Answer, Callable[[Request], Answer]]]] = []
        self.requests: List[Request] = []
        self.lock = threading.Lock()
        self.scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.socket = context.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def route(self, method: str, pattern: str, answer) -> "HostileServer":
        self.routes.append((method, pattern, answer))
        return self

    def answer_for(self, request: Request) -> Answer:
        for method, pattern, answer in self.routes:
            if method in ("*", request.method) and fnmatch.fnmatchcase(request.path, pattern):
                return answer(request) if callable(answer) else answer
        return Answer(404, b'{"message": "nothing scripted here"}')

    def seen(self, method: str = "*", pattern: str = "*") -> List[Request]:
        with self.lock:
            return [r for r in self.requests
                    if method in ("*", r.method) and fnmatch.fnmatchcase(r.path, pattern)]

    def sent_values(self, header: str) -> List[str]:
        """Every value the client sent in this header (the JWT it actually used, the Basic pair...)."""
        return [v for v in (r.header(header) for r in self.seen()) if v]

    def handle_error(self, request, client_address):
        pass  # a client hanging up mid-answer is part of the game

    def start(self) -> "HostileServer":
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True,
                                        name="hostile-server")
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self) -> "HostileServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def big_string_body(megabytes: int) -> Tuple[Callable[[Request], Iterable[bytes]], int]:
    """A JSON array of one string of `megabytes` MB, streamed from one reused 1 MB block (a body for
    Answer: a new stream for each request); and its length."""
    block = b"a" * (1 << 20)

    def chunks(request=None):
        yield b'["'
        for _ in range(megabytes):
            yield block
        yield b'"]'
    return chunks, megabytes * len(block) + 4


def many_entries_body(count: int, entry: bytes = b"{}") -> Tuple[Callable[[Request], Iterable[bytes]], int]:
    """{"results": [entry, entry, ...]} with count entries, streamed in pieces of 64k entries (a body for
    Answer: a new stream for each request); and its length."""
    piece = b",".join([entry] * 65536)

    def chunks(request=None):
        yield b'{"results":['
        left = count
        first = True
        while left > 0:
            n = min(left, 65536)
            yield (b"" if first else b",") + (piece if n == 65536 else b",".join([entry] * n))
            first = False
            left -= n
        yield b"]}"
    length = len(b'{"results":[]}') + count * len(entry) + max(count - 1, 0)
    return chunks, length


def self_signed_cert(directory: str, common_name: str = "localhost") -> Tuple[str, str]:
    """A certificate for common_name (CN and subjectAltName) and its key, made by the openssl CLI."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", f"/CN={common_name}", "-addext", f"subjectAltName=DNS:{common_name}"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


# -- configuration ----------------------------------------------------------------------------

def write_node_config(path, url: str, section: str = "default", **keys) -> str:
    """An INI file (mode 0600) with one node section. A value with a line break is written as INI's
    continuation lines, so it reaches the program with the line break in it."""
    lines = [f"[{section}]", f"url = {url}"]
    for key, value in keys.items():
        if value is None:
            continue
        first, *rest = str(value).split("\n")
        lines.append(f"{key} = {first}")
        lines.extend(f"    {more}" for more in rest)
    path = str(path)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    return path


# -- running the program as the agent does ----------------------------------------------------

def run_agent(*args, env=None, timeout: float = 60) -> Tuple[Run, float]:
    """The installed console script as a separate process (conftest's console), and its wall time."""
    started = time.monotonic()
    ran = console(*args, env=env, timeout=timeout)
    return ran, time.monotonic() - started


def run_agent_bytes(*args: Union[str, bytes], env=None, timeout: float = 60) -> Tuple[Run, float]:
    """As run_agent, for arguments that are not text (bytes that are not UTF-8, as a shell can pass)."""
    argv = [b"zabbix-exalate"] + [a if isinstance(a, bytes) else a.encode() for a in args]
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, timeout=timeout, env={**os.environ, **(env or {})})
    elapsed = time.monotonic() - started
    out, err = (_utf8(proc.stdout, "stdout"), _utf8(proc.stderr, "stderr"))
    ran = Run(proc.returncode, out, err)
    assert_no_secret(ran.stdout, ran.stderr)
    return ran, elapsed


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise AssertionError(f"{what} is not UTF-8: {data!r}") from None


# -- the contract -----------------------------------------------------------------------------

def secret_forms(*secrets: str, basic: Sequence[Tuple[str, str]] = ()) -> List[str]:
    """Every form a secret may take on its way out: as is, JSON-escaped (either way of escaping non-ASCII),
    URL-encoded (path and form style), and the base64 of user:password as a Basic header carries it."""
    forms = []
    for secret in secrets:
        if not secret:
            continue
        forms += [secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
                  quote(secret, safe=""), quote(secret), quote_plus(secret)]
    for user, password in basic:
        for encoding in ("latin-1", "utf-8"):
            try:
                pair = f"{user}:{password}".encode(encoding)
            except UnicodeEncodeError:
                continue
            forms.append(base64.b64encode(pair).decode())
    return sorted({f for f in forms if len(f) >= 6})


CUT = 12  # a secret cut short (a message truncated before masking) still gives this much of it away


def leaked(text: str, forms: Sequence[str]) -> List[str]:
    """The forms found in text, whole or cut short (the first CUT characters of a longer form)."""
    found = []
    for form in forms:
        if form in text:
            found.append(form)
        elif len(form) >= CUT + 4 and form[:CUT] in text:
            found.append(f"{form[:CUT]}... (cut short)")
    return sorted(set(found))


def control_characters(line: str) -> List[str]:
    """Characters that break a line or move the cursor: C0/C1 controls, DEL, the Unicode line separators."""
    return [c for c in line if unicodedata.category(c) in ("Cc", "Zl", "Zp")]


def assert_one_clean_line(stderr: str, context) -> str:
    """Exactly one line on stderr, newline-terminated, with no other control character; returns it."""
    assert stderr.endswith("\n") and stderr.count("\n") == 1, f"not exactly one stderr line: {context}"
    line = stderr[:-1]
    assert not control_characters(line), f"control characters {control_characters(line)!r} in: {context}"
    assert "Traceback" not in line, context
    assert line.strip(), f"an empty stderr line: {context}"
    return line


def assert_contract(ran: Run, code: Union[int, Sequence[int]], *words: str, elapsed: Optional[float] = None,
                    timeout: Optional[float] = None, secrets: Sequence[str] = (), stdout: Optional[str] = "",
                    absent: Sequence[str] = ()) -> str:
    """A failing check as the agent must see it (issue 10); returns the stderr line.

    code: the documented exit status (or the statuses a test allows); words: what the line must say;
    absent: what it must not say; elapsed/timeout: the process's wall time and the configured timeout;
    secrets: every form to look for (see secret_forms); stdout: what stdout must be ("" for a check,
    "0\\n" for ping)."""
    codes = (code,) if isinstance(code, int) else tuple(code)
    context = f"{ran}" + (f" after {elapsed:.2f} s" if elapsed is not None else "")
    assert ran.code in codes, f"exit {ran.code}, expected {' or '.join(map(str, codes))}: {context}"
    if stdout is not None:
        assert ran.stdout == stdout, f"stdout should be {stdout!r}: {context}"
    line = assert_one_clean_line(ran.stderr, context)
    for word in words:
        assert word in line, f"{word!r} missing from the line: {context}"
    for word in absent:
        assert word not in line, f"{word!r} should not be in the line: {context}"
    found = leaked(ran.stdout + ran.stderr, secrets)
    assert not found, f"secret forms {found!r} printed: {context}"
    if elapsed is not None and timeout is not None:
        assert elapsed <= timeout + SLACK, f"{elapsed:.2f} s for a timeout of {timeout:g} s: {context}"
    return line
