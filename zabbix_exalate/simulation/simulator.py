"""A simulated Exalate node over real HTTP: the documented endpoints, shapes, status codes and faults."""
import base64
import fnmatch
import json
import os
import secrets
import threading
import time
import warnings
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator, List, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from ..metrics import API_ROOT, AUTHENTICATE_PATH, BY_COMMAND, CONNECTION_METRICS, CONNECTIONS_PATH, MONITOR

QUEUE_NAMES = tuple(m.command for m in CONNECTION_METRICS)
NOT_FOUND_TEXT = "Connection `{}` not found. Seems like it was removed on the Destination side."
LOGIN_PAGE = (b"<!DOCTYPE html><html><head><title>Log in - Jira</title></head><body>"
              b"<form action=\"/login.jsp\" method=\"post\"><input name=\"os_username\"></form></body></html>")


def sample_scenario_path() -> str:
    return os.path.join(os.path.dirname(__file__), "scenarios", "sample.json")


@dataclass
class Reply:
    status: int
    content_type: str = "application/json"
    chunks: Iterator[bytes] = iter(())
    length: int = 0
    headers: dict = field(default_factory=dict)
    truncate_at: Optional[int] = None  # close the connection after this many body bytes
    trickle: float = 0.0               # seconds to wait between body pieces

    @classmethod
    def of(cls, status: int, body, content_type: str = "application/json", **kw) -> "Reply":
        data = body if isinstance(body, bytes) else (
            body.encode() if isinstance(body, str) else json.dumps(body).encode())
        return cls(status, content_type, iter((data,)), len(data), **kw)


class Simulator:
    """The node's behaviour, independent of HTTP plumbing; the scenario file is re-read when it changes."""

    def __init__(self, scenario):
        self._lock = threading.Lock()
        self.path = scenario if isinstance(scenario, str) else None
        self._mtime = None
        self.scenario = {} if self.path else _validated(scenario)
        self._fault_uses: dict = {}
        self._login_secret = secrets.token_urlsafe(32)
        self.started = time.monotonic()  # heads of queues that move advance from here
        self._reload()

    def update(self, **changes) -> None:
        """Change the scenario in place (for tests and the demo)."""
        with self._lock:
            self.scenario = _validated({**self.scenario, **changes})

    def revoke_tokens(self) -> None:
        """Invalidate every token handed out by logging in, as a node restart may."""
        self._login_secret = secrets.token_urlsafe(32)

    def connection(self, name: str) -> Optional[dict]:
        return next((c for c in self.scenario["connections"] if c["name"] == name), None)

    def _reload(self) -> None:
        if not self.path:
            return
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError:
            return  # keep the last good scenario while the file is being replaced
        if mtime == self._mtime:
            return
        try:
            with open(self.path, encoding="utf-8") as handle:
                scenario = _validated(json.load(handle))
        except ValueError as exc:
            if self._mtime is None:
                raise ValueError(f"scenario {self.path}: {exc}") from None
            return  # a half-written edit: keep serving the previous one
        with self._lock:
            self.scenario, self._mtime = scenario, mtime

    # -- requests ------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers, body: bytes) -> Reply:
        self._reload()
        split = urlsplit(raw_path)
        marker = split.path.find(API_ROOT)
        if marker < 0:
            return Reply.of(404, {"message": "not an Exalate REST path"})
        rest = split.path[marker + len(API_ROOT):]
        query = parse_qs(split.query)
        kind = self.credential_kind(rest, headers)
        fault = self._fault(unquote(rest))
        if fault and fault.get("delay"):
            time.sleep(float(fault["delay"]))
        if method == "POST" and rest == AUTHENTICATE_PATH:
            return self._login(body)
        if method != "GET":
            return Reply.of(405, {"message": "method not allowed"})
        if kind == "none":
            return Reply.of(403, {"message": "Not authenticated"})
        if kind == "wrong":
            return Reply.of(401, {"message": "Incorrect credentials"})
        if fault:
            reply = _fault_reply(fault)
            if reply:
                return reply
        reply = self._route(rest, query)
        if fault and reply.status == 200:
            reply.truncate_at = reply.length // 2 if fault.get("truncate") else None
            reply.trickle = float(fault.get("trickle", 0))
        return reply

    def _route(self, rest: str, query) -> Reply:
        s = self.scenario
        if rest == BY_COMMAND["errors"].path:
            return Reply.of(200, {"numErrors": s["errors"]})
        for command in ("outgoing", "incoming"):
            if rest == BY_COMMAND[command].path.split("?")[0]:
                limit = int(query.get("limit", ["50"])[0] or 0)
                results = [{"id": i + 1, "type": command} for i in range(min(limit, s[command]))]
                return Reply.of(200, {"limit": limit, "total": s[command], "results": results})
        if rest == CONNECTIONS_PATH:
            if not s.get("list_connections", True):
                return Reply.of(404, {"message": "Not found"})
            listed = [{"id": c.get("id"), "name": c["name"], "status": c.get("status", "ACTIVE"),
                       "communication": {"remoteUrl": c.get("remote", "")}} for c in s["connections"]]
            return Reply.of(200, {"total": len(listed), "results": listed})
        parts = rest.split("/")
        if len(parts) == 5 and parts[:2] == ["2.4", "relations"]:
            name = unquote(parts[2])
            queue = next((m.command for m in CONNECTION_METRICS
                          if m.path.endswith("/" + "/".join(parts[3:]))), None)
            if queue:
                found = self.connection(name)
                if not found or found.get("removed"):
                    return Reply.of(400, NOT_FOUND_TEXT.format(name), "text/plain")
                return _queue_reply(found, queue, (time.monotonic() - self.started) / 60)
        return Reply.of(404, {"message": f"no such endpoint: {rest}"})

    def credential_kind(self, rest: str, headers) -> str:
        """How the request to rest (the path under API_ROOT) authenticated: jwt, basic, wrong or none."""
        api = MONITOR if rest == BY_COMMAND["errors"].path else "node"
        creds = self.scenario.get("credentials", {})
        header = headers.get(creds.get("jwt_header", "X-exalate-jwt"))
        if header:
            return "jwt" if self._valid_jwt(header) else "wrong"
        auth = headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return "wrong"
            pairs = [(creds.get("user"), creds.get("password"))]
            if api == MONITOR:
                pairs.append((creds.get("monitor_user"), creds.get("monitor_password")))
            return "basic" if any(u and (user, password) == (u, p) for u, p in pairs) else "wrong"
        return "none"

    def _valid_jwt(self, token: str) -> bool:
        import jwt
        creds = self.scenario.get("credentials", {})
        for key in filter(None, (creds.get("jwt_secret"), self._login_secret)):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # short demo secrets are fine here
                    claims = jwt.decode(token, key, algorithms=["HS256"], options={"verify_exp": False, "verify_aud": False})
            except jwt.InvalidTokenError:
                continue
            exp = claims.get("exp")
            if not isinstance(exp, (int, float)) or claims.get("iss") != creds.get("jwt_issuer", "EXALATE"):
                return False
            return (exp / 1000 if exp > 10 ** 11 else exp) > time.time()
        return False

    def _login(self, body: bytes) -> Reply:
        import jwt
        creds = self.scenario.get("credentials", {})
        try:
            sent = json.loads(body or b"{}")
        except ValueError:
            return Reply.of(400, {"message": "body is not JSON"})
        wanted = creds.get("login_password")
        if not wanted or not isinstance(sent, dict) or sent.get("password") != wanted \
                or sent.get("user", "") != creds.get("login_user", ""):
            return Reply.of(401, {"message": "Incorrect credentials"})
        now = time.time()
        token = jwt.encode({"iss": creds.get("jwt_issuer", "EXALATE"), "user": sent.get("user", ""),
                            "iat": int(now), "exp": int(now + float(creds.get("token_ttl", 600)))},
                           self._login_secret, algorithm="HS256")
        where = creds.get("login_token_in", "both")
        headers = {"X-Exalate-Jwt": token} if where in ("header", "both") else {}
        return Reply.of(200, {"token": token} if where in ("body", "both") else {}, headers=headers)

    def _fault(self, rest: str) -> Optional[dict]:
        for index, fault in enumerate(self.scenario.get("faults", [])):
            if fnmatch.fnmatchcase(rest, fault["path"]):
                with self._lock:
                    used = self._fault_uses.get(index, 0)
                    if "times" in fault and used >= fault["times"]:
                        continue
                    self._fault_uses[index] = used + 1
                return fault
        return None


def _fault_reply(fault: dict) -> Optional[Reply]:
    if "status" in fault:
        return Reply.of(int(fault["status"]), {"message": "simulated failure"})
    if fault.get("html"):
        return Reply.of(200, LOGIN_PAGE, "text/html;charset=UTF-8")
    if "body" in fault:
        return Reply.of(200, fault["body"], fault.get("content_type", "application/json"))
    if "redirect" in fault:
        return Reply.of(302, b"", "text/plain", headers={"Location": fault["redirect"]})
    return None


# What a node says about a failed sync, by reason (a reason not listed here gets a plain sentence).
FAILURE_MESSAGES = {
    "NO_ISSUE_TO_CONNECT_TO": "Could not connect `{issue}` to `{other}`: issue by key `{other}` already was connected "
                              "to another issue using relation `{connection}`",
    "SCRIPT_ERROR": "Error in the incoming sync script of `{connection}` for `{issue}`: No such property: "
                    "customfield_10400 for class: com.exalate.basic.domain.hubobject.v1.BasicHubIssue (line 12)",
    "ISSUE_NOT_FOUND": "Issue `{other}` that `{issue}` is connected to was not found: it may have been deleted",
    "PERMISSION_DENIED": "The proxy user may not edit `{issue}`: check its permissions in the project",
    "CHECKSUM_MISMATCH": "Checksums for blob id '{blob}' do not match. Expected: 17a7c1aaf84aa7c551dd1e349f30c2c8 "
                         "Was: 90630d8f774de272400bdc9422b26d91",
    "BLOB_NOT_FOUND": "Attachment with blob id '{blob}' of `{issue}` was not found on the other side",
}
DEFAULT_HEAD = 1000  # the oldest syncEventId of a queue that names none


def _queue_reply(connection: dict, queue: str, minutes: float = 0.0) -> Reply:
    """A streamed JSON array shaped like the documented examples, without building it in memory.

    Its elements carry syncEventIds from the queue's head (heads, else DEFAULT_HEAD), listed from the middle
    of the queue, not oldest first, as a node may. A queue with moves_per_minute holds its size while its head
    advances (events go out as new ones come in); one without stays put: it is stuck."""
    count = int(connection.get("queues", {}).get(queue, 0))
    head = int(connection.get("heads", {}).get(queue, DEFAULT_HEAD)) + int(
        minutes * float(connection.get("moves_per_minute", {}).get(queue, 0)))
    payload = _payload(int(connection.get("payload_bytes", 2048)))
    reasons = connection.get("error_reasons") or ["NO_ISSUE_TO_CONNECT_TO"]
    blob_reasons = connection.get("blob_error_reasons") or ["CHECKSUM_MISMATCH"]
    name = connection["name"]
    prefix = connection.get("issue_prefix") or "".join(w[0] for w in name.split() if w[:1].isalpha()).upper() or "SIM"

    def element(i: int) -> List[bytes]:
        event_id = head + (i + count // 2) % count
        key = f"{prefix}-{event_id}"
        event = {"syncEventId": event_id, "relationKey": name}
        issue = {"id": 11700 + event_id, "urn": key}
        blob = {"blobId": 10000 + event_id, "checksum": "90630d8f774de272400bdc9422b26d91"}
        words = {"issue": key, "other": f"{prefix}-{event_id + 1}", "connection": name, "blob": blob["blobId"]}
        if queue in ("sync-requests", "sync-responses"):
            event["replica"] = {"issueKey": issue, "summary": f"Simulated issue {i + 1}", "encodedPayload": "\0"}
            event["traces"] = [{"type": "COMMENT", "localId": str(10800 + i), "remoteId": str(10900 + i),
                                "action": "NONE", "toSynchronize": True}]
            if queue == "sync-requests":
                event["syncEventNumber"] = i + 1
                event["blobMetadataList"] = []
            else:
                event["sourceIssueKey"] = issue
        elif queue in ("blob-requests", "blob-responses"):
            event["blobMetadata"] = blob
            if queue == "blob-responses":
                event["blobEventId"] = 100 + i
        elif queue == "error-responses":
            reason = reasons[i % len(reasons)]
            event.update(sourceIssueKey=issue, message=_message(reason, words), errorReason=reason)
        else:
            reason = blob_reasons[i % len(blob_reasons)]
            event.update(blobEventId=100 + i, blobId=blob["blobId"], sourceIssueKey=issue,
                         errorMessage=_message(reason, words), blobErrorReason=reason)
        head_text, _, tail = json.dumps(event).partition('"\\u0000"')
        pieces = [b"," if i else b"[", head_text.encode()]
        if _:
            pieces += [b'"', payload, b'"', tail.encode()]
        return pieces

    # "[" comes with the first element; "]" closes the array.
    length = sum(sum(len(p) for p in element(i)) for i in range(count)) + 1 if count else 2

    def chunks() -> Iterator[bytes]:
        if not count:
            yield b"[]"
            return
        buffer = []
        size = 0
        for i in range(count):
            for piece in element(i):
                buffer.append(piece)
                size += len(piece)
            if size >= 256 * 1024:
                yield b"".join(buffer)
                buffer, size = [], 0
        buffer.append(b"]")
        yield b"".join(buffer)

    return Reply(200, "application/json", chunks(), length)


def _message(reason: str, words: dict) -> str:
    return FAILURE_MESSAGES.get(reason, "Sync of `{issue}` failed on `{connection}`").format(**words)


def _payload(size: int) -> bytes:
    """base64 text of about size bytes, like a replica's encodedPayload."""
    raw = (b'{"hubIssue":{"summary":"simulated","description":"' + b"x" * max(size, 0) + b'"}}')
    return base64.b64encode(raw)[:max(size, 4)]


def _validated(scenario) -> dict:
    if not isinstance(scenario, dict):
        raise ValueError("a scenario is a JSON object")
    s = {"errors": 0, "outgoing": 0, "incoming": 0, "connections": [], "faults": [], "credentials": {}, **scenario}
    for key in ("errors", "outgoing", "incoming"):
        if not isinstance(s[key], int) or s[key] < 0:
            raise ValueError(f"{key} must be a whole number >= 0")
    if not isinstance(s["credentials"], dict):
        raise ValueError("credentials must be an object")
    for c in s["connections"]:
        if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"]:
            raise ValueError("every connection needs a name")
        for what in ("queues", "heads", "moves_per_minute"):
            for queue, number in c.get(what, {}).items():
                if queue not in QUEUE_NAMES:
                    raise ValueError(f"connection {c['name']!r}: unknown queue {queue!r} in {what} "
                                     f"(known: {', '.join(QUEUE_NAMES)})")
                if not isinstance(number, (int, float)) or isinstance(number, bool) or number < 0 \
                        or (what != "moves_per_minute" and not isinstance(number, int)):
                    raise ValueError(f"connection {c['name']!r}: {what} of {queue} must be a number >= 0"
                                     + ("" if what == "moves_per_minute" else " (whole)"))
    for fault in s["faults"]:
        if not isinstance(fault, dict) or not isinstance(fault.get("path"), str):
            raise ValueError("every fault needs a path pattern, e.g. \"2.4/relations/*\"")
    return s


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ExalateSimulator"
    # Headers and body used to leave as separate small writes: with Nagle on, the second waited for the
    # client's delayed ACK, about 40 ms on every request of a kept-alive connection. A buffered wfile
    # sends a small reply in one write (flushed after each request), and TCP_NODELAY sends what is left
    # of a large one at once, as the stdlib advises for a buffered wfile.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True

    def do_GET(self):
        self._answer("GET")

    def do_POST(self):
        self._answer("POST")

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, 1 << 20)) if length else b""
        self._reply(self.server.simulator.handle(method, self.path, self.headers, body))

    def _reply(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(reply.length))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.truncate_at is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        sent = 0
        try:
            for chunk in reply.chunks:
                if reply.truncate_at is not None and sent + len(chunk) >= reply.truncate_at:
                    self.wfile.write(chunk[:reply.truncate_at - sent])
                    self.close_connection = True
                    return
                if reply.trickle:
                    for start in range(0, len(chunk), 1024):
                        self.wfile.write(chunk[start:start + 1024])
                        self.wfile.flush()
                        time.sleep(reply.trickle)
                else:
                    self.wfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (its timeout): nothing to do

    def log_message(self, format, *args):  # noqa: A002 - the signature is the base class's
        pass  # a console log would drown the demo


class SimulatorServer(ThreadingHTTPServer):
    """The simulator on a real socket; start() serves from a background thread."""

    daemon_threads = True
    # socketserver listens with a backlog of 5: a burst of new connections beyond it (a poll of many
    # checks, clients opening their pools together) waits a second for a SYN to be sent again.
    request_queue_size = 128

    handler = _Handler

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0):
        self.simulator = simulator
        super().__init__((host, port), self.handler)
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def handle_error(self, request, client_address):
        # A client that hangs up early (its own timeout) is normal here; the base class would print a
        # traceback on stderr, in the middle of whatever the process is showing.
        pass

    def start(self) -> "SimulatorServer":
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), name="exalate-simulator",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def config_text(self, node: str = "default") -> str:
        """An INI section that reaches this simulator with the scenario's credentials."""
        creds = self.simulator.scenario.get("credentials", {})
        lines = [f"[{node}]", f"url = {self.url}"]
        for key in ("jwt_secret", "jwt_issuer", "user", "password", "monitor_user", "monitor_password",
                    "login_user", "login_password"):
            if creds.get(key):
                lines.append(f"{key} = {creds[key]}")
        return "\n".join(lines) + "\n"

    def write_config(self, path: str, node: str = "default") -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(self.config_text(node))
        os.chmod(path, 0o600)
