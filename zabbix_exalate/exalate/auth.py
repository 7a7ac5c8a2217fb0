"""Credentials for each Exalate API: HTTP basic, a ready token, a minted JWT or one from logging in, cached."""
import contextlib
import hashlib
import json
import os
import re
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, Optional, Tuple

from ..config import NodeConfig
from ..errors import AuthError, BadResponse
from ..masking import Masker
from ..metrics import API_ROOT, AUTHENTICATE_PATH, MONITOR, QUEUE
from ..httperrors import show
from .transport import Transport, text

MINTED, LOGIN = "minted", "login"  # the two kinds of cached token
RENEW_BEFORE = 30         # seconds: renew a cached token this long before it expires
MILLISECONDS_FROM = 10 ** 11  # an exp above this is in milliseconds (year 5138 in seconds)
MOST_BYTES = 65536        # a cache entry: a token (at most 16 KB) and its expiry


@dataclass
class Credential:
    """What one request sends, and how to name it in a message (never the secret itself)."""
    label: str
    headers: Dict[str, str]
    basic: Optional[Tuple[str, str]] = None
    renewable: bool = False  # a cached token: a 401 may mean it expired, so log in again once


_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def is_jwt(token: str) -> bool:
    """Three base64url parts: what a header can carry as it is and a node can check."""
    return bool(_JWT.fullmatch(token)) and len(token) <= 16384


def token_expiry(token: str) -> Optional[float]:
    """The token's exp in seconds since the epoch, read without verifying (it is the server's)."""
    import base64
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return None
    return exp / 1000 if exp > MILLISECONDS_FROM else exp


class TokenCache:
    """JWTs kept on disk between checks, each in a 0600 file written atomically (checks run in parallel).

    The directory is checked through the descriptor every read and write then goes through, never by path
    before use: a link swapped in between cannot send a token elsewhere."""

    def __init__(self, directory: Optional[str], clock: Callable[[], float] = time.time):
        self.directory = directory
        self.clock = clock

    @classmethod
    def for_config(cls, cfg: NodeConfig) -> "TokenCache":
        if cfg.token_cache == "off":
            return cls(None)
        return cls(cfg.token_cache or _default_cache_dir())

    @staticmethod
    def _name(kind: str, identity: str) -> str:
        return f"{kind}-{hashlib.sha256(identity.encode()).hexdigest()[:24]}.json"

    def get(self, kind: str, identity: str) -> Optional[str]:
        with _private_dir(self.directory) as dir_fd:
            if dir_fd is None:
                return None
            try:
                fd = os.open(self._name(kind, identity), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
                with os.fdopen(fd, "rb") as handle:
                    entry = json.loads(handle.read(MOST_BYTES))
                token, expires = entry["token"], float(entry["expires"])
            except (OSError, ValueError, KeyError, TypeError):
                return None
        if not isinstance(token, str) or not is_jwt(token):
            return None  # written by another version, or damaged: a new one costs one request
        return token if expires - RENEW_BEFORE > self.clock() else None

    def put(self, kind: str, identity: str, token: str, expires: float) -> None:
        with _private_dir(self.directory) as dir_fd:
            if dir_fd is None:
                return
            tmp = f".tmp-{secrets.token_hex(8)}"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=dir_fd)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump({"token": token, "expires": expires}, handle)
                os.replace(tmp, self._name(kind, identity), src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except OSError:
                try:
                    os.unlink(tmp, dir_fd=dir_fd)
                except OSError:
                    pass
                # a cache we cannot write only costs a new token next time

    def drop(self, kind: str, identity: str) -> None:
        with _private_dir(self.directory) as dir_fd:
            if dir_fd is not None:
                try:
                    os.unlink(self._name(kind, identity), dir_fd=dir_fd)
                except OSError:
                    pass


def _default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for directory in (os.path.join(base, "zabbix-exalate"),
                      os.path.join(tempfile.gettempdir(), f"zabbix-exalate-{os.geteuid()}")):
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError:
            continue
        with _private_dir(directory) as dir_fd:
            if dir_fd is not None:
                return directory
    return ""


@contextlib.contextmanager
def _private_dir(directory: Optional[str]) -> Iterator[Optional[int]]:
    """The directory opened (a link in its place is refused), if it is ours and closed to others; else None.
    Only trust a directory that is ours and closed to others: else another user could read or plant tokens."""
    fd = None
    if directory:
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            info = os.fstat(fd)
            if info.st_uid != os.geteuid() or info.st_mode & 0o077:
                os.close(fd)
                fd = None
        except OSError:
            if fd is not None:
                os.close(fd)
            fd = None
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


class Authenticator:
    """Chooses the credential for each API, and obtains the run's one JWT: minted, or from logging in."""

    def __init__(self, cfg: NodeConfig, cache: TokenCache, transport: Transport, masker: Masker,
                 clock: Callable[[], float] = time.time):
        self.cfg = cfg
        self.cache = cache
        self.transport = transport
        self.masker = masker
        self.clock = clock
        # One token per run, shared by the threads of `collect`: the lock makes them wait for the first
        # to mint or log in rather than each logging in.
        self._lock = threading.RLock()
        self._token: Optional[str] = None
        self._cached = False  # the run's token came from the cache: a refusal may mean it expired

    def credential(self, api: str) -> Credential:
        cfg = self.cfg
        if api == MONITOR and cfg.monitor_user:
            return self._basic(cfg.monitor_user, cfg.monitor_password, "monitor_user/monitor_password")
        has_jwt = bool(cfg.jwt_secret or cfg.token or cfg.login_password)
        if cfg.user and (api in (MONITOR, QUEUE) or not has_jwt):
            return self._basic(cfg.user, cfg.password, "user/password")
        if cfg.token:
            return self._jwt(cfg.token, "the token from the token key")
        if cfg.jwt_secret:
            return self._jwt(self._obtained(MINTED, self._mint),
                             f"a JWT signed with jwt_secret for user {cfg.jwt_user!r}")
        if cfg.login_password:
            return self._jwt(self._obtained(LOGIN, lambda: log_in(self.transport, cfg)),
                             f"a JWT from logging in as {cfg.login_user!r} (login_password)")
        return self._basic(cfg.monitor_user, cfg.monitor_password, "monitor_user/monitor_password")

    def forget(self, refused: Credential) -> None:
        """Drop the cached token the node refused, unless another thread has already replaced it."""
        with self._lock:
            if self._token is not None and refused.headers.get(self.cfg.jwt_header) != self._token:
                return
            self._token = None
            for kind in (MINTED, LOGIN):
                self.cache.drop(kind, self._identity())

    def _basic(self, user, password, keys) -> Credential:
        return Credential(f"basic auth as {user!r} ({keys} in [{self.cfg.name}])", {}, (user, password))

    def _jwt(self, token, what) -> Credential:
        # Only a cached token is worth renewing: a fresh one refused would be refused again, once per queue.
        renewable = token == self._token and self._cached
        return Credential(f"{what} in [{self.cfg.name}], sent as {self.cfg.jwt_header}",
                          {self.cfg.jwt_header: token}, None, renewable)

    def _identity(self) -> str:
        cfg = self.cfg
        # The secret's digest is part of the identity: change the secret and old tokens are not reused.
        secret = hashlib.sha256((cfg.jwt_secret or cfg.login_password or "").encode()).hexdigest()
        return json.dumps([cfg.url, cfg.jwt_user, cfg.jwt_issuer, cfg.jwt_exp_unit, cfg.jwt_claims,
                           cfg.login_user, secret], sort_keys=True)

    def _obtained(self, kind: str, fresh: Callable[[], str]) -> str:
        """The run's token: from the cache, else a fresh one (kept in the cache until it expires)."""
        with self._lock:
            if not self._token:
                token = self.cache.get(kind, self._identity())
                self._cached = bool(token)
                if not token:
                    token = fresh()
                    expires = token_expiry(token) or self.clock() + self.cfg.jwt_ttl
                    self.cache.put(kind, self._identity(), token, expires)
                self.masker.add(token)  # the one place a token becomes known as a secret
                self._token = token
            return self._token

    def _mint(self) -> str:
        import jwt  # only when minting: importing pyjwt costs as much as a whole check
        expires = self.clock() + self.cfg.jwt_ttl
        scale = 1000 if self.cfg.jwt_exp_unit == "milliseconds" else 1
        # The claims seen in Exalate's tokens; no iat, whose unit would be as uncertain as exp's.
        claims = {"iss": self.cfg.jwt_issuer, "user": self.cfg.jwt_user, "exp": int(expires * scale),
                  **self.cfg.jwt_claims}
        return jwt.encode(claims, self.cfg.jwt_secret, algorithm="HS256")


def log_in(transport: Transport, cfg: NodeConfig) -> str:
    """A JWT from 4.0/authenticate with login_user and login_password."""
    url = cfg.url + API_ROOT + AUTHENTICATE_PATH
    credential = Credential(f"login_password in [{cfg.name}]", {})
    body = {"authProtocol": "basic", "user": cfg.login_user, "password": cfg.login_password}
    with transport.send("POST", url, credential, json=body) as response:
        if response.status_code in (401, 403):
            raise AuthError(f"logging in at {show(url)} failed (HTTP {response.status_code}): "
                            f"check login_user and login_password in [{cfg.name}]")
        transport.raise_for_status(response, url, credential)
        answer = text(response)  # read even when the header has the token: the connection is reused
        token = response.headers.get("X-Exalate-Jwt") or _token_in(answer)
    if not token:
        raise BadResponse(f"logging in at {show(url)} returned no token (neither an X-Exalate-Jwt "
                          f"header nor a token in the body)")
    if not is_jwt(token):
        # Never cached: a token no request can carry would fail every check until it expired.
        raise BadResponse(f"logging in at {show(url)} returned a token that is not a JWT (characters "
                          f"a header cannot carry, or not three base64url parts): report it to the node's admin")
    return token


def _token_in(answer: str) -> Optional[str]:
    try:
        data = json.loads(answer)
    except ValueError:
        data = answer
    if isinstance(data, dict):
        data = next((data[k] for k in ("token", "jwt", "accessToken", "access_token") if isinstance(data.get(k), str)), None)
    if isinstance(data, str) and data.count(".") == 2 and " " not in data:
        return data
    return None
