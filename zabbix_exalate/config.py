"""Reads the INI configuration: one section per Exalate node, plus an optional [zabbix] section."""
import configparser
import json
import os
import stat
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

from .errors import ConfigError

DEFAULT_PATH = "/etc/zabbix/zabbix_exalate.conf"
ENV_VAR = "ZABBIX_EXALATE_CONFIG"
DEFAULT_NODE = "default"
DEFAULT_TIMEOUT = 2.5  # below the Zabbix agent's default Timeout of 3 s
DEFAULT_MAX_CONNECTIONS = 4  # collect's requests in flight at once: the node serves its users too
ZABBIX_SECTION = "zabbix"

SECRET_KEYS = ("jwt_secret", "token", "login_password", "password", "monitor_password")
NODE_KEYS = (
    "url", "jwt_secret", "jwt_issuer", "jwt_user", "jwt_header", "jwt_exp_unit", "jwt_ttl",
    "jwt_claims", "token", "login_user", "login_password", "user", "password", "monitor_url",
    "monitor_user", "monitor_password", "connections", "timeout", "verify", "client_cert",
    "client_key", "proxy", "token_cache", "ping_check", "max_connections",
)
ZABBIX_KEYS = ("url", "user", "password", "token", "verify", "timeout")


@dataclass
class NodeConfig:
    name: str
    url: str
    source: str                      # the file it came from, for messages
    jwt_secret: Optional[str] = None
    jwt_issuer: str = "EXALATE"
    jwt_user: str = ""
    jwt_header: str = "X-exalate-jwt"
    jwt_exp_unit: str = "seconds"    # or "milliseconds": tokens of 2019 carried exp in ms
    jwt_ttl: int = 300
    jwt_claims: Dict[str, object] = field(default_factory=dict)
    token: Optional[str] = None
    login_user: str = ""
    login_password: Optional[str] = None
    user: Optional[str] = None
    password: Optional[str] = None
    monitor_url: Optional[str] = None
    monitor_user: Optional[str] = None
    monitor_password: Optional[str] = None
    connections: List[str] = field(default_factory=list)
    timeout: float = DEFAULT_TIMEOUT
    verify: Union[bool, str] = True
    client_cert: Optional[str] = None
    client_key: Optional[str] = None
    proxy: Optional[str] = None
    token_cache: Optional[str] = None  # a directory; "off" disables caching
    ping_check: str = "outgoing"
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    def secrets(self) -> List[str]:
        return [v for v in (getattr(self, k) for k in SECRET_KEYS) if v]


def config_path(explicit: Optional[str] = None, env=os.environ) -> str:
    return explicit or env.get(ENV_VAR) or DEFAULT_PATH


def read_file(path: str) -> Tuple[configparser.ConfigParser, List[str]]:
    """Parse the file; return it with warnings (file permissions) for the caller to show."""
    # No interpolation: a password may well contain "%".
    parser = configparser.ConfigParser(interpolation=None, default_section="__defaults__")
    try:
        with open(path, encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist: create it (see docs/configuration.md) "
                          f"or point --config or ${ENV_VAR} at yours") from None
    except PermissionError:
        raise ConfigError(f"cannot read configuration file {path} as user {_whoami()}: "
                          f"make it readable by that user (e.g. chown zabbix and chmod 600)") from None
    except (configparser.Error, UnicodeDecodeError) as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(f"configuration file {path} is not valid INI: {detail}") from None
    return parser, _permission_warnings(path, parser)


def _whoami() -> str:
    try:
        import pwd
        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())


def _permission_warnings(path: str, parser: configparser.ConfigParser) -> List[str]:
    held = sorted({k for s in parser.sections() for k in SECRET_KEYS if parser.get(s, k, fallback="")})
    if not held:
        return []
    mode = os.stat(path).st_mode
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        return [f"warning: {path} holds secrets ({', '.join(held)}) and every user on this host can read it: "
                f"run chmod 600 {path} (or 640 with group zabbix)"]
    return []


def load_node(path: str, node: Optional[str]) -> Tuple[NodeConfig, List[str]]:
    parser, warnings = read_file(path)
    name = node or DEFAULT_NODE
    if name == ZABBIX_SECTION or not parser.has_section(name):
        nodes = [s for s in parser.sections() if s != ZABBIX_SECTION]
        listed = ", ".join(f"[{s}]" for s in nodes) or "none"
        raise ConfigError(f"no section [{name}] in {path} (nodes configured: {listed}): "
                          f"add it or choose one with --node")
    section = parser[name]
    _reject_unknown(section, NODE_KEYS, name, path)
    values = {k: v.strip() for k, v in section.items() if v.strip()}
    where = f"[{name}] of {path}"
    url = values.pop("url", None)
    if not url:
        raise ConfigError(f"{where} has no url: set it to the node's base URL, e.g. https://jira.example.com")
    cfg = NodeConfig(name=name, url=_check_url(url, where), source=path)
    for key, raw in values.items():
        setattr(cfg, key, _convert(key, raw, where))
    if cfg.monitor_url:
        _check_url(cfg.monitor_url, where)
    if not any((cfg.jwt_secret, cfg.token, cfg.login_password, cfg.user, cfg.monitor_user)):
        raise ConfigError(f"{where} has no credentials: set jwt_secret, token, login_password "
                          f"or user and password")
    if bool(cfg.user) != bool(cfg.password):
        raise ConfigError(f"{where} sets only one of user and password: set both for basic auth")
    if bool(cfg.monitor_user) != bool(cfg.monitor_password):
        raise ConfigError(f"{where} sets only one of monitor_user and monitor_password: set both")
    return cfg, warnings


def _reject_unknown(section, known, name, path):
    # A misspelt key would otherwise be ignored in silence: say so instead.
    unknown = [k for k in section.keys() if k not in known]
    if unknown:
        raise ConfigError(f"unknown key {unknown[0]!r} in [{name}] of {path}; known keys: {', '.join(known)}")


def _check_url(url: str, where: str) -> str:
    if not url.startswith(("http://", "https://")) or "://" == url[-3:]:
        raise ConfigError(f"url {url!r} in {where} is not an http:// or https:// address")
    if "@" in url.split("://", 1)[1].split("/", 1)[0]:
        # Credentials in a URL end up in logs and messages: keep them in their own keys.
        raise ConfigError(f"a url in {where} holds credentials: move them to user/password and remove them from the url")
    return url.rstrip("/")


def _convert(key: str, raw: str, where: str):
    if key == "timeout":
        return _positive_float(raw, key, where)
    if key == "jwt_ttl":
        return int(_positive_float(raw, key, where))
    if key == "max_connections":
        if not raw.isdigit() or not 1 <= int(raw) <= 64:
            raise ConfigError(f"max_connections in {where} must be a whole number from 1 to 64, not {raw!r}")
        return int(raw)
    if key == "verify":
        lowered = raw.lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        if not os.path.exists(raw):
            raise ConfigError(f"verify in {where} is neither true/false nor an existing CA bundle path: {raw}")
        return raw
    if key == "jwt_exp_unit":
        if raw not in ("seconds", "milliseconds"):
            raise ConfigError(f"jwt_exp_unit in {where} must be seconds or milliseconds, not {raw!r}")
        return raw
    if key == "jwt_claims":
        try:
            claims = json.loads(raw)
        except ValueError:
            claims = None
        if not isinstance(claims, dict):
            raise ConfigError(f"jwt_claims in {where} must be a JSON object, e.g. {{\"aud\": \"exalate\"}}")
        return claims
    if key == "connections":
        # One name a line: names may contain commas.
        return [line.strip() for line in raw.splitlines() if line.strip()]
    if key == "ping_check":
        from .metrics import NODE_METRICS
        allowed = [m.command for m in NODE_METRICS] + ["discover"]
        if raw not in allowed:
            raise ConfigError(f"ping_check in {where} must be one of {', '.join(allowed)}, not {raw!r}")
    return raw


def _positive_float(raw: str, key: str, where: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ConfigError(f"{key} in {where} must be a positive number of seconds, not {raw!r}")
    return value
