"""Reads the INI configuration: one section per Exalate node, plus an optional [zabbix] section."""
import configparser
import json
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Union
from urllib.parse import urlsplit

from .errors import ConfigError, printable

DEFAULT_PATH = "/etc/zabbix/zabbix_exalate.conf"
ENV_VAR = "ZABBIX_EXALATE_CONFIG"
DEFAULT_NODE = "default"
DEFAULT_TIMEOUT = 2.5  # below the Zabbix agent's default Timeout of 3 s
DEFAULT_MAX_CONNECTIONS = 4  # collect's requests in flight at once: the node serves its users too
ZABBIX_SECTION = "zabbix"
MAX_FILE_BYTES = 1 << 20  # a configuration is a few KB: anything larger is the wrong file
MAX_TIMEOUT = 3600.0  # seconds: the most --timeout and timeout take (an hour: far past any agent or poller)
MAX_JWT_TTL = 86400.0

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

    def register(self, masker) -> None:
        """Tell the masker every secret of this node and the forms it takes on the wire."""
        masker.add(*self.secrets())
        masker.add_basic(self.user, self.password)
        masker.add_basic(self.monitor_user, self.monitor_password)
        masker.add_url_credentials(self.proxy)


@dataclass
class ZabbixSettings:
    """The Zabbix API login, for the zabbix commands."""
    url: str
    source: str
    user: Optional[str] = None
    password: Optional[str] = None
    token: Optional[str] = None
    verify: Union[bool, str] = True
    timeout: float = 30.0

    def register(self, masker) -> None:
        masker.add(self.password, self.token)
        masker.add_basic(self.user, self.password)


def config_path(explicit: Optional[str] = None, env=os.environ) -> str:
    return explicit or env.get(ENV_VAR) or DEFAULT_PATH


def read_file(path: str) -> configparser.ConfigParser:
    """Parse the file, refusing what cannot be a configuration or what shows its secrets to others.

    Errors name the file, the line and the key, never a value: a value may be a secret."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist: create it (see docs/configuration.md) "
                          f"or point --config or ${ENV_VAR} at yours") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path} as user {_whoami()}: {exc.strerror}") from None
    # Checked before opening: a FIFO would block the check and a device never end.
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"configuration file {path} is a directory: point --config at the file")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"configuration file {path} is not a regular file (a pipe or a device?)")
    if info.st_size > MAX_FILE_BYTES:
        raise ConfigError(f"configuration file {path} is {info.st_size >> 20} MB: a configuration is a few KB; "
                          f"is --config pointing at the right file?")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except PermissionError:
        raise ConfigError(f"cannot read configuration file {path} as user {_whoami()}: "
                          f"make it readable by that user (e.g. chown zabbix and chmod 600)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"configuration file {path} is not UTF-8 text (line {line})") from None
    # No interpolation: a password may well contain "%". Comments may follow a value after " ;" or " #".
    parser = configparser.ConfigParser(interpolation=None, default_section="__defaults__",
                                       inline_comment_prefixes=(";", "#"))
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        raise ConfigError(f"configuration file {path} is not valid INI: {_parse_error(exc)}") from None
    _refuse_open_secrets(path, info, parser)
    return parser


def _parse_error(exc: configparser.Error) -> str:
    """What is wrong and where, without the line's text."""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"line {exc.lineno} comes before the first [section]"
    if isinstance(exc, configparser.DuplicateOptionError):
        return f"key {printable(exc.option)!r} is set twice in [{printable(exc.section)}] (line {exc.lineno})"
    if isinstance(exc, configparser.DuplicateSectionError):
        return f"section [{printable(exc.section)}] appears twice (line {exc.lineno})"
    if isinstance(exc, configparser.ParsingError):
        lines = ", ".join(str(n) for n, _ in exc.errors[:5])
        return f"line {lines} is not 'key = value', a [section] or a comment"
    return type(exc).__name__


def _whoami() -> str:
    try:
        import pwd
        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())


def _refuse_open_secrets(path: str, info: os.stat_result, parser: configparser.ConfigParser) -> None:
    held = sorted({k for s in parser.sections() for k in SECRET_KEYS if parser.get(s, k, fallback="")})
    if held and info.st_mode & (stat.S_IROTH | stat.S_IWOTH):
        raise ConfigError(f"{path} holds secrets ({', '.join(held)}) and every user on this host can read it: "
                          f"run chmod 600 {path} (or chmod 640 with group zabbix)")


def load_node(path: str, node: Optional[str]) -> NodeConfig:
    parser = read_file(path)
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
    cfg = NodeConfig(name=name, url=check_url(url, where), source=path)
    for key, raw in values.items():
        setattr(cfg, key, _convert(key, raw, where))
    if cfg.monitor_url:
        check_url(cfg.monitor_url, where)
    if not any((cfg.jwt_secret, cfg.token, cfg.login_password, cfg.user, cfg.monitor_user)):
        raise ConfigError(f"{where} has no credentials: set jwt_secret, token, login_password "
                          f"or user and password")
    if bool(cfg.user) != bool(cfg.password):
        raise ConfigError(f"{where} sets only one of user and password: set both for basic auth")
    if bool(cfg.monitor_user) != bool(cfg.monitor_password):
        raise ConfigError(f"{where} sets only one of monitor_user and monitor_password: set both")
    _check_credentials(cfg, where)
    return cfg


HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
HEADER_VALUE = re.compile(r"[\x21-\x7e]+")  # visible ASCII, no space: what a token header carries as it is


def _check_credentials(cfg: NodeConfig, where: str) -> None:
    """What HTTP cannot carry is a configuration mistake now, not a crash or a refused request later."""
    for key in ("user", "password", "monitor_user", "monitor_password"):
        value = getattr(cfg, key)
        if value is None:
            continue
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise ConfigError(f"{key} in {where} has characters HTTP basic auth cannot carry (it sends Latin-1): "
                              f"use a password of Latin-1 characters for the monitoring user") from None
        if not value.isprintable():
            raise ConfigError(f"{key} in {where} has a control character")
    if cfg.token is not None and not HEADER_VALUE.fullmatch(cfg.token):
        raise ConfigError(f"token in {where} is not a token a header can carry (spaces, line breaks or "
                          f"characters outside ASCII): paste the JWT alone, on one line")
    if not HEADER_NAME.fullmatch(cfg.jwt_header):
        raise ConfigError(f"jwt_header in {where} is not an HTTP header name (letters, digits and -)")
    for key in ("client_cert", "client_key"):
        path = getattr(cfg, key)
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"{key} in {where} names a file this user ({_whoami()}) cannot read: {printable(path)}")
    if cfg.proxy:
        try:
            parts = urlsplit(cfg.proxy)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            parts = None
        if not parts or parts.scheme not in ("http", "https", "socks5", "socks5h") or not parts.hostname:
            raise ConfigError(f"proxy in {where} is not a proxy URL such as http://proxy.example.com:3128")


def _reject_unknown(section, known, name, path):
    # A misspelt key would otherwise be ignored in silence: say so instead.
    unknown = [k for k in section.keys() if k not in known]
    if unknown:
        raise ConfigError(f"unknown key {printable(unknown[0][:40])!r} in [{name}] of {path}; "
                          f"known keys: {', '.join(known)}")


def check_url(url: str, where: str) -> str:
    """The URL without a trailing slash; never echoed in an error, since it may hold credentials."""
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ConfigError(f"the url in {where} contains spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        host = parts.hostname
    except ValueError:
        raise ConfigError(f"the url in {where} is not a valid address (a bracket or port out of place?)") from None
    if "@" in parts.netloc:
        # Credentials in a URL end up in logs and messages: keep them in their own keys.
        raise ConfigError(f"the url in {where} holds credentials: move them to their own keys and remove them "
                          f"from the url")
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"the url in {where} is not an http:// or https:// address with a host name")
    return url.rstrip("/")


def _convert(key: str, raw: str, where: str):
    if key == "timeout":
        return positive_seconds(raw, key, where, MAX_TIMEOUT)
    if key == "jwt_ttl":
        return int(positive_seconds(raw, key, where, MAX_JWT_TTL))
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
        if not os.path.isfile(raw):
            raise ConfigError(f"verify in {where} is neither true/false nor an existing CA bundle path: "
                              f"{printable(raw)}")
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
        from .metrics import NODE_METRICS, PING_DISCOVER
        allowed = [m.command for m in NODE_METRICS] + [PING_DISCOVER]
        if raw not in allowed:
            raise ConfigError(f"ping_check in {where} must be one of {', '.join(allowed)}, not {raw!r}")
    return raw


def seconds(raw: str, most: float = MAX_TIMEOUT) -> Optional[float]:
    """raw as a number of seconds above 0 and up to most; None when it is not one. The one reader of seconds,
    for the command line and the file alike."""
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if 0 < value <= most else None  # NaN fails this too


def positive_seconds(raw: str, key: str, where: str, most: float) -> float:
    value = seconds(raw, most)
    if value is None:
        raise ConfigError(f"{key} in {where} must be a positive number of seconds up to {most:g}, not "
                          f"{printable(raw[:20])!r}")
    return value


def load_zabbix(path: Optional[str], env=os.environ) -> ZabbixSettings:
    """From ZABBIX_URL, ZABBIX_TOKEN or ZABBIX_USER + ZABBIX_PASSWORD, else the [zabbix] section."""
    values: Dict[str, str] = {}
    where = f"[{ZABBIX_SECTION}] of {path}"
    if path and os.path.exists(path):
        parser = read_file(path)
        if parser.has_section(ZABBIX_SECTION):
            _reject_unknown(parser[ZABBIX_SECTION], ZABBIX_KEYS, ZABBIX_SECTION, path)
            values = {k: v.strip() for k, v in parser[ZABBIX_SECTION].items() if v.strip()}
    for key in ("url", "user", "password", "token"):
        if env.get(f"ZABBIX_{key.upper()}"):
            values[key] = env[f"ZABBIX_{key.upper()}"]
            if key == "url":
                where = "ZABBIX_URL"
    if not values.get("url"):
        raise ConfigError("no Zabbix URL: set ZABBIX_URL (e.g. https://zabbix.example.com) or url in a [zabbix] "
                          "section of the configuration file")
    if not values.get("token") and not (values.get("user") and values.get("password")):
        raise ConfigError("no Zabbix credentials: set ZABBIX_TOKEN, or ZABBIX_USER and ZABBIX_PASSWORD "
                          "(or token, or user and password, in the [zabbix] section)")
    settings = ZabbixSettings(url=check_url(values["url"], where), source=where, user=values.get("user"),
                              password=values.get("password"), token=values.get("token"))
    if "verify" in values:
        settings.verify = _convert("verify", values["verify"], where)
    if "timeout" in values:
        settings.timeout = positive_seconds(values["timeout"], "timeout", where, MAX_TIMEOUT)
    return settings
