"""Credentials for each Exalate API: HTTP basic, a ready token, a minted JWT or one from logging in, cached."""
import hashlib
import json
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from .config import NodeConfig
from .metrics import MONITOR, QUEUE

RENEW_BEFORE = 30         # seconds: renew a cached token this long before it expires
MILLISECONDS_FROM = 10 ** 11  # an exp above this is in milliseconds (year 5138 in seconds)


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
    """JWTs kept on disk between checks, each in a 0600 file written atomically (checks run in parallel)."""

    def __init__(self, directory: Optional[str], clock: Callable[[], float] = time.time):
        self.directory = directory
        self.clock = clock

    @classmethod
    def for_config(cls, cfg: NodeConfig) -> "TokenCache":
        if cfg.token_cache == "off":
            return cls(None)
        return cls(cfg.token_cache or _default_cache_dir())

    def _path(self, kind: str, identity: str) -> Optional[str]:
        if not self.directory or not _private_dir(self.directory):
            return None
        digest = hashlib.sha256(identity.encode()).hexdigest()[:24]
        return os.path.join(self.directory, f"{kind}-{digest}.json")

    def get(self, kind: str, identity: str) -> Optional[str]:
        path = self._path(kind, identity)
        if not path:
            return None
        try:
            with open(path, encoding="utf-8") as handle:
                entry = json.load(handle)
            token, expires = entry["token"], float(entry["expires"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not isinstance(token, str) or not is_jwt(token):
            return None  # written by another version, or damaged: a new one costs one request
        return token if expires - RENEW_BEFORE > self.clock() else None

    def put(self, kind: str, identity: str, token: str, expires: float) -> None:
        path = self._path(kind, identity)
        if not path:
            return
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")  # mkstemp creates it 0600
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"token": token, "expires": expires}, handle)
            os.replace(tmp, path)
        except OSError:
            pass  # a cache we cannot write only costs a new token next time

    def drop(self, kind: str, identity: str) -> None:
        path = self._path(kind, identity)
        if path:
            try:
                os.unlink(path)
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
        if _private_dir(directory):
            return directory
    return ""


def _private_dir(directory: str) -> bool:
    # Only trust a directory that is ours and closed to others: else another user could read tokens.
    try:
        info = os.stat(directory)
    except OSError:
        return False
    return info.st_uid == os.geteuid() and not info.st_mode & 0o077


class Authenticator:
    """Chooses the credential for each API and obtains JWTs; `login` does the HTTP for 4.0/authenticate."""

    def __init__(self, cfg: NodeConfig, cache: TokenCache, login: Callable[[NodeConfig], str],
                 clock: Callable[[], float] = time.time, masker=None):
        self.masker = masker
        self.cfg = cfg
        self.cache = cache
        self.login = login
        self.clock = clock
        # One token per run, shared by the threads of `collect`: the lock makes them wait for the first
        # to mint or log in rather than each logging in.
        self._lock = threading.RLock()
        self._token: Optional[str] = None

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
            return self._jwt(self._minted(), f"a JWT signed with jwt_secret for user {cfg.jwt_user!r}", True)
        if cfg.login_password:
            return self._jwt(self._logged_in(), f"a JWT from logging in as {cfg.login_user!r} (login_password)", True)
        return self._basic(cfg.monitor_user, cfg.monitor_password, "monitor_user/monitor_password")

    def forget(self, refused: Credential) -> None:
        """Drop the cached token the node refused, unless another thread has already replaced it."""
        with self._lock:
            if self._token is not None and refused.headers.get(self.cfg.jwt_header) != self._token:
                return
            self._token = None
            self.cache.drop("minted", self._identity())
            self.cache.drop("login", self._identity())

    def _basic(self, user, password, keys) -> Credential:
        return Credential(f"basic auth as {user!r} ({keys} in [{self.cfg.name}])", {}, (user, password))

    def _jwt(self, token, what, renewable=False) -> Credential:
        return Credential(f"{what} in [{self.cfg.name}], sent as {self.cfg.jwt_header}",
                          {self.cfg.jwt_header: token}, None, renewable)

    def _identity(self) -> str:
        cfg = self.cfg
        # The secret's digest is part of the identity: change the secret and old tokens are not reused.
        secret = hashlib.sha256((cfg.jwt_secret or cfg.login_password or "").encode()).hexdigest()
        return json.dumps([cfg.url, cfg.jwt_user, cfg.jwt_issuer, cfg.jwt_exp_unit, cfg.jwt_claims,
                           cfg.login_user, secret], sort_keys=True)

    def _minted(self) -> str:
        with self._lock:
            if not self._token:
                self._token = self.cache.get("minted", self._identity()) or self._mint()
                self._secret(self._token)
            return self._token

    def _mint(self) -> str:
        import jwt  # only when minting: importing pyjwt costs as much as a whole check
        now = self.clock()
        expires = now + self.cfg.jwt_ttl
        scale = 1000 if self.cfg.jwt_exp_unit == "milliseconds" else 1
        # The claims seen in Exalate's tokens; no iat, whose unit would be as uncertain as exp's.
        claims = {"iss": self.cfg.jwt_issuer, "user": self.cfg.jwt_user, "exp": int(expires * scale),
                  **self.cfg.jwt_claims}
        token = jwt.encode(claims, self.cfg.jwt_secret, algorithm="HS256")
        self.cache.put("minted", self._identity(), token, expires)
        return token

    def _logged_in(self) -> str:
        with self._lock:
            if not self._token:
                self._token = self.cache.get("login", self._identity()) or self._log_in()
                self._secret(self._token)
            return self._token

    def _secret(self, token: str) -> None:
        if self.masker:
            self.masker.add(token)

    def _log_in(self) -> str:
        token = self.login(self.cfg)
        expires = token_expiry(token) or self.clock() + self.cfg.jwt_ttl
        self.cache.put("login", self._identity(), token, expires)
        return token
