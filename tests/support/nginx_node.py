"""A real nginx on a loopback port: the seed bodies under /jira served the way an Exalate node answers them
(NginxNode), or any configuration a test writes (Nginx); and what the seed holds."""
import base64
import hashlib
import os
import socket
import subprocess
import time
import warnings
from pathlib import Path
from typing import Dict, List, Tuple

import jwt

from helpers import ENDPOINTS, SECRET, free_ports

SEED = Path(__file__).resolve().parent.parent / "fixtures" / "seed"
BASE_PATH = "/jira"  # a Jira base URL with a context path, as in the seed's examples
REMOVED = "Connection `{}` not found. Seems like it was removed on the Destination side."


def mint(secret: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyjwt warns of short HMAC keys; ours are test secrets
        return jwt.encode({"iss": "EXALATE", "user": "zabbix", "exp": int(time.time()) + 86400}, secret,
                          algorithm="HS256")


# nginx can only compare the header with a fixed string: a token minted once, configured as `token`.
TOKEN = mint(SECRET)

ADO = "ADO <> Jira Prod – Zürich"
SALES = "Sales, EU"
# Each connection as one percent-encoded path segment, written out by hand: it is what the client
# must send, and the name of the connection's folder under tests/fixtures/seed.
SEGMENT = {"AllContent": "AllContent",
           ADO: "ADO%20%3C%3E%20Jira%20Prod%20%E2%80%93%20Z%C3%BCrich",
           SALES: "Sales%2C%20EU"}
QUEUE_COMMANDS = [c for c, path in ENDPOINTS.items() if "{}" in path]

# What the bodies under tests/fixtures/seed say: numErrors, total, or the array's length.
NODE_VALUES = {"errors": 0, "outgoing": 20, "incoming": 3}
QUEUE_VALUES: Dict[str, Dict[str, object]] = {
    # The seed's examples: one element each; its bloberrorresponses lacks a comma (no number).
    "AllContent": {"sync-requests": 1, "blob-requests": 1, "sync-responses": 1, "blob-responses": 1,
                   "error-responses": 1, "blob-error-responses": None},
    ADO: {"sync-requests": 3, "blob-requests": 2, "sync-responses": 2, "blob-responses": 0,
          "error-responses": 2, "blob-error-responses": 2},
    SALES: dict.fromkeys(QUEUE_COMMANDS, 0),
}

# Placeholders are @NAME@: nginx's own syntax is full of braces and dollars.
CONF = r"""
daemon off;
@USER@
worker_processes 1;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log warn;
events { worker_connections 64; }

http {
    # Distro builds point these at /var/lib/nginx, which a non-root run cannot create.
    client_body_temp_path @DIR@/tmp/body;
    proxy_temp_path @DIR@/tmp/proxy;
    fastcgi_temp_path @DIR@/tmp/fastcgi;
    uwsgi_temp_path @DIR@/tmp/uwsgi;
    scgi_temp_path @DIR@/tmp/scgi;

    # Bodies are files without extension: all JSON, like Jira's "application/json;charset=UTF-8".
    types { }
    default_type application/json;
    charset utf-8;
    charset_types application/json text/plain;
    server_tokens off;

    map_hash_bucket_size 512;  # a JWT is a longer map key than the default bucket holds

    # The connection exactly as the client sent it: one percent-encoded path segment. The seed
    # directories are named by it, so a client that encodes a name differently finds nothing.
    map $request_uri $relation_dir {
        "~^@BASE@/rest/issuehub/2\.4/relations/(?<raw_relation>[^/?]+)/" $raw_relation;
        default "";
    }
    # The 2.4 API only knows its JWT header: nginx can but compare it with the one valid token.
    map $http_x_exalate_jwt $jwt_check {
        ""          missing;
        "@TOKEN@"   valid;
        default     wrong;
    }

    log_format exalate '$request_method $request_uri $status $remote_user $jwt_check';
    access_log @DIR@/access.log exalate;

    server {
        listen 127.0.0.1:@PORT@;
        root "@SEED@";

        location / {
            return 404 '{"message": "null for uri"}';
        }

        # 4.0: Jira basic auth, as the Jira on-premise documentation shows (curl --user).
        location ~ ^@BASE@/rest/issuehub/4\.0/(cmonitor|syncevents|syncrequests|connections)$ {
            auth_basic "Jira";
            auth_basic_user_file @DIR@/htpasswd;
            try_files $uri =404;
        }

        # 2.4: the JWT, then the connection ($relation is the decoded name, for the 400 text).
        location ~ ^@BASE@/rest/issuehub/2\.4/relations/(?<relation>[^/]+)/(?<queue>syncevents/(?:syncrequests|blobrequests)|syncrequests/(?:syncresponses|blobresponses|errorresponses|bloberrorresponses))$ {
            if ($jwt_check = missing) {
                return 403 '{"message": "not authenticated"}';
            }
            if ($jwt_check = wrong) {
                return 401 '{"message": "invalid token"}';
            }
            try_files @BASE@/rest/issuehub/2.4/relations/$relation_dir/$queue @removed;
        }

        location @removed {
            default_type text/plain;
            return 400 "@REMOVED@";
        }
    }
}
"""


def _ssha(password: str) -> str:
    """An htpasswd {SSHA} entry, a scheme nginx reads: no plain password on disk, no htpasswd tool needed."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


class Nginx:
    """nginx with the configuration conf (placeholders @NAME@: @PORT@, @DIR@ and @USER@ filled in here, the rest
    from values), started in workdir on a free loopback port."""

    def __init__(self, workdir: Path, conf: str, **values: str):
        self.dir = Path(workdir)
        self.conf, self.values = conf, values
        self.port = 0
        self.proc = None

    def _write_config(self) -> Path:
        (self.dir / "tmp").mkdir(exist_ok=True)
        # As root nginx would run its worker as nobody, who cannot enter pytest's 0700 tmp dirs.
        user = f"user {_user_name()};" if os.geteuid() == 0 else ""
        text = self.conf
        for name, value in {"USER": user, "DIR": str(self.dir), "PORT": str(self.port), **self.values}.items():
            text = text.replace(f"@{name}@", value)
        conf = self.dir / "nginx.conf"
        conf.write_text(text)
        return conf

    def start(self, attempts: int = 3) -> "Nginx":
        for _ in range(attempts):  # the free port may be taken between choosing and binding it
            (self.port,) = free_ports()
            conf = self._write_config()
            stderr = open(self.dir / "stderr.log", "wb")
            self.proc = subprocess.Popen(["nginx", "-p", str(self.dir), "-c", str(conf),
                                          "-e", str(self.dir / "error.log")],
                                         stdout=stderr, stderr=stderr, stdin=subprocess.DEVNULL)
            stderr.close()
            if self._wait_until_listening():
                return self
            self.stop()
        raise RuntimeError(f"nginx did not start: {self.log()}")

    def _wait_until_listening(self, seconds: float = 10) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: fast shutdown of the master and its worker
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> "Nginx":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        parts = []
        for name in ("stderr.log", "error.log"):
            path = self.dir / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)


class NginxNode(Nginx):
    """nginx serving tests/fixtures/seed as a node does; its url is a node url for our configuration."""

    def __init__(self, workdir: Path, user: str, password: str, token: str):
        super().__init__(workdir, CONF, SEED=str(SEED), BASE=BASE_PATH, TOKEN=token,
                         REMOVED=REMOVED.format("$relation"))
        self.user, self.password, self.token = user, password, token

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{BASE_PATH}"

    def _write_config(self) -> Path:
        (self.dir / "htpasswd").write_text(f"{self.user}:{_ssha(self.password)}\n")
        return super()._write_config()

    def requests(self) -> List[Tuple[str, str, int, str, str]]:
        """The access log: (method, raw request URI, status, basic auth user or "-", JWT check)."""
        path = self.dir / "access.log"
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            method, uri, status, user, jwt_check = line.split(" ")
            rows.append((method, uri, int(status), user, jwt_check))
        return rows

    def mark(self, seconds: float = 5) -> int:
        """Where the log stands once every earlier request is in it: nginx logs each request just after
        answering it, so a line can still be on its way. A marker request of our own, once logged,
        proves the earlier ones are. Returns the number of lines up to and including it."""
        marker = f"/mark-{time.monotonic_ns()}"
        with socket.create_connection(("127.0.0.1", self.port), timeout=seconds) as sock:
            sock.sendall(f"GET {marker} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
            while sock.recv(4096):
                pass
        end = time.monotonic() + seconds
        while True:
            uris = [row[1] for row in self.requests()]
            if marker in uris:
                return uris.index(marker) + 1
            if time.monotonic() > end:
                raise RuntimeError(f"nginx did not log {marker}")
            time.sleep(0.01)

    def requests_since(self, count: int, expected: int = 1, seconds: float = 2) -> list:
        """The requests logged after the first `count`; nginx logs just after answering, so wait a moment."""
        end = time.monotonic() + seconds
        while True:
            rows = self.requests()[count:]
            if len(rows) >= expected or time.monotonic() > end:
                return rows
            time.sleep(0.02)


def _user_name() -> str:
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name
