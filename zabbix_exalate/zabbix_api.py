"""Sets Zabbix up through its API: imports the template and creates or updates a monitored host."""
import os
from dataclasses import dataclass
from typing import Optional, Union

from .config import ZABBIX_KEYS, ZABBIX_SECTION, read_file
from .errors import AuthError, ConfigError, Unreachable, ZabbixAPIError

TEMPLATE_NAME = "Exalate by Zabbix agent"
NODE_MACRO = "{$EXALATE.NODE}"
AGENT_INTERFACE = 1


@dataclass
class ZabbixSettings:
    url: str
    user: Optional[str] = None
    password: Optional[str] = None
    token: Optional[str] = None
    verify: Union[bool, str] = True
    timeout: float = 30.0

    def secrets(self):
        return [s for s in (self.password, self.token) if s]


def zabbix_settings(config_file: Optional[str], env=os.environ) -> ZabbixSettings:
    """From ZABBIX_URL, ZABBIX_TOKEN or ZABBIX_USER + ZABBIX_PASSWORD, else the [zabbix] section."""
    values = {}
    if config_file and os.path.exists(config_file):
        parser, _ = read_file(config_file)
        if parser.has_section(ZABBIX_SECTION):
            section = parser[ZABBIX_SECTION]
            unknown = [k for k in section if k not in ZABBIX_KEYS]
            if unknown:
                raise ConfigError(f"unknown key {unknown[0]!r} in [zabbix] of {config_file}; "
                                  f"known keys: {', '.join(ZABBIX_KEYS)}")
            values = {k: v.strip() for k, v in section.items() if v.strip()}
    for key in ("url", "user", "password", "token"):
        if env.get(f"ZABBIX_{key.upper()}"):
            values[key] = env[f"ZABBIX_{key.upper()}"]
    if not values.get("url"):
        raise ConfigError("no Zabbix URL: set ZABBIX_URL (e.g. https://zabbix.example.com) or url in a [zabbix] "
                          "section of the configuration file")
    if not values.get("token") and not (values.get("user") and values.get("password")):
        raise ConfigError("no Zabbix credentials: set ZABBIX_TOKEN, or ZABBIX_USER and ZABBIX_PASSWORD "
                          "(or token, or user and password, in the [zabbix] section)")
    settings = ZabbixSettings(url=values["url"], user=values.get("user"), password=values.get("password"),
                              token=values.get("token"))
    if "verify" in values:
        lowered = values["verify"].lower()
        settings.verify = {"true": True, "false": False}.get(lowered, values["verify"])
    if "timeout" in values:
        try:
            settings.timeout = float(values["timeout"])
        except ValueError:
            raise ConfigError(f"timeout in [zabbix] must be a number of seconds, not {values['timeout']!r}") from None
    return settings


class Zabbix:
    """A logged-in Zabbix API. Every failure becomes a CheckError with one readable line."""

    def __init__(self, settings: ZabbixSettings):
        from pyzabbix import ZabbixAPI  # only the zabbix commands pay for importing it
        self.settings = settings
        url = settings.url[:-len("/api_jsonrpc.php")] if settings.url.endswith("/api_jsonrpc.php") else settings.url
        self.api = ZabbixAPI(url, timeout=settings.timeout)
        self.api.session.verify = settings.verify
        self.version = self._call(self.api.api_version)
        if settings.token:
            self._call(self.api.login, api_token=settings.token)  # checked by the first real call
        else:
            self._call(self.api.login, user=settings.user, password=settings.password)

    @property
    def major(self) -> float:
        return float(".".join(self.version.split(".")[:2]))

    def _call(self, method, *args, **kwargs):
        import requests
        from pyzabbix import ZabbixAPIException
        try:
            return method(*args, **kwargs)
        except ZabbixAPIException as exc:
            error = exc.error or {}
            detail = " ".join(str(error.get("data") or error.get("message") or exc).split())
            if "password" in detail.lower() or "session" in detail.lower() or "token" in detail.lower() \
                    or "not authori" in detail.lower():
                who = "an API token" if self.settings.token else f"user {self.settings.user!r}"
                raise AuthError(f"Zabbix API at {self.settings.url} refused {who}: {detail[:200]}") from None
            raise ZabbixAPIError(f"Zabbix API at {self.settings.url}: {detail[:300]}") from None
        except requests.exceptions.HTTPError as exc:
            raise ZabbixAPIError(f"Zabbix API at {self.settings.url} answered HTTP {exc.response.status_code}: "
                                 f"is this the frontend's URL?") from None
        except requests.exceptions.Timeout:
            raise Unreachable(f"Zabbix API at {self.settings.url} did not answer within "
                              f"{self.settings.timeout:g} s") from None
        except requests.exceptions.RequestException:
            raise Unreachable(f"cannot reach the Zabbix API at {self.settings.url}: check ZABBIX_URL and that "
                              f"the frontend is up") from None

    def import_template(self, source: str) -> None:
        """Import (create or update) a template export; importing the same file twice changes nothing."""
        both = {"createMissing": True, "updateExisting": True}
        full = {**both, "deleteMissing": True}
        rules = {"templates": both, "items": full, "triggers": full, "graphs": full, "discoveryRules": full,
                 "valueMaps": full, "templateDashboards": full, "templateLinkage": {"createMissing": True}}
        if self.major >= 6.2:  # host and template groups were split in 6.2
            rules["template_groups"] = {"createMissing": True}
        else:
            rules["groups"] = {"createMissing": True}
        fmt = "xml" if source.lstrip().startswith("<") else ("yaml" if not source.lstrip().startswith("{") else "json")
        self._call(self.api.configuration["import"], format=fmt, source=source, rules=rules)

    def add_host(self, host: str, address: str, port: int, node: str, group: str) -> str:
        """Create or update the host: agent interface, template linked, {$EXALATE.NODE}. Returns what it did."""
        template = self._call(self.api.template.get, filter={"host": TEMPLATE_NAME}, output=["templateid"])
        if not template:
            raise ZabbixAPIError(f"template {TEMPLATE_NAME!r} is not in Zabbix: run "
                                 f"'zabbix-exalate zabbix import-template' first")
        template_id = template[0]["templateid"]
        group_id = self._group(group)
        is_ip = _is_ip(address)
        interface = {"type": AGENT_INTERFACE, "main": 1, "useip": 1 if is_ip else 0,
                     "ip": address if is_ip else "", "dns": "" if is_ip else address, "port": str(port)}
        existing = self._call(self.api.host.get, filter={"host": host}, output=["hostid"],
                              selectInterfaces=["interfaceid", "type", "main"], selectParentTemplates=["templateid"],
                              selectGroups=["groupid"], selectMacros=["hostmacroid", "macro", "value"])
        if not existing:
            created = self._call(self.api.host.create, host=host, groups=[{"groupid": group_id}],
                                 interfaces=[interface], templates=[{"templateid": template_id}],
                                 macros=[{"macro": NODE_MACRO, "value": node}])
            return f"host {host!r} created (hostid {created['hostids'][0]}), linked to {TEMPLATE_NAME!r}, " \
                   f"{NODE_MACRO} = {node}"
        found = existing[0]
        host_id = found["hostid"]
        agent = [i for i in found["interfaces"] if str(i["type"]) == str(AGENT_INTERFACE) and str(i["main"]) == "1"]
        if agent:
            self._call(self.api.hostinterface.update, interfaceid=agent[0]["interfaceid"],
                       **{k: v for k, v in interface.items() if k not in ("type", "main")})
        else:
            self._call(self.api.hostinterface.create, hostid=host_id, **interface)
        templates = [{"templateid": t["templateid"]} for t in found["parentTemplates"]]
        if template_id not in [t["templateid"] for t in templates]:
            templates.append({"templateid": template_id})
        groups = [{"groupid": g["groupid"]} for g in found["groups"]]
        if group_id not in [g["groupid"] for g in groups]:
            groups.append({"groupid": group_id})
        self._call(self.api.host.update, hostid=host_id, templates=templates, groups=groups)
        # Only our macro is touched: host.update would replace them all, and secret ones cannot be read back.
        mine = [m for m in found["macros"] if m["macro"] == NODE_MACRO]
        if mine:
            self._call(self.api.usermacro.update, hostmacroid=mine[0]["hostmacroid"], value=node)
        else:
            self._call(self.api.usermacro.create, hostid=host_id, macro=NODE_MACRO, value=node)
        return f"host {host!r} updated (hostid {host_id}), linked to {TEMPLATE_NAME!r}, {NODE_MACRO} = {node}"

    def _group(self, name: str) -> str:
        method = self.api.hostgroup
        found = self._call(method.get, filter={"name": name}, output=["groupid"])
        if found:
            return found[0]["groupid"]
        return self._call(method.create, name=name)["groupids"][0]


def _is_ip(address: str) -> bool:
    import ipaddress
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True
