"""A loopback HTTP server that misbehaves on purpose: a node, a proxy, or a Zabbix frontend's JSON-RPC API.

HostileServer answers each request with whatever a test scripts for its path: any status and reason
phrase (control characters included), raw headers, a body of bytes, a generator (hundreds of MB,
never built in memory) or a function of the request (to echo what the client sent), a delay before
answering, or a connection closed without a word. It records every request, so a test can count
logins or read the token the client actually sent. It can speak TLS and act as an HTTP proxy, and
zabbix_api() makes it a Zabbix frontend whose API answers each method as a test scripts it.
"""
import fnmatch
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

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


# -- a Zabbix frontend ------------------------------------------------------------------------

ZABBIX_OK = {  # what a healthy Zabbix 6.0 answers
    "apiinfo.version": {"result": "6.0.14"},
    "user.login": {"result": "0424bd59b807674191e7d77572075f33"},
    "template.get": {"result": [{"templateid": "10001"}]},
    "hostgroup.get": {"result": [{"groupid": "5"}]},
    "host.get": {"result": []},
    "host.create": {"result": {"hostids": ["10500"]}},
    "configuration.import": {"result": True},
}


def zabbix_api(**answers) -> Callable[[Request], Answer]:
    """A JSON-RPC endpoint for route("POST", "*/api_jsonrpc.php", ...) answering each method as scripted
    (apiinfo__version={"result": "7.0.22"}: a double underscore for the dot), else as ZABBIX_OK says."""
    script = {**ZABBIX_OK, **{k.replace("__", "."): v for k, v in answers.items()}}

    def answer(request: Request) -> Answer:
        call = json.loads(request.body or b"{}")
        reply = script.get(call.get("method"), {"result": []})
        return Answer(200, json.dumps({"jsonrpc": "2.0", "id": call.get("id"), **reply}).encode())
    return answer


def jsonrpc_calls(server: HostileServer) -> List[dict]:
    """The JSON-RPC requests the server received, in order: {"method": ..., "params": ..., ...}."""
    return [json.loads(r.body) for r in server.seen("POST", "*/api_jsonrpc.php")]
