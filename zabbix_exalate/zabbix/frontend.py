"""Sets Zabbix up through its API: imports the template and creates or updates a monitored host."""
import re
from typing import List, Optional

from ..config import ZabbixSettings
from ..errors import AuthError, Unreachable, ZabbixAPIError, printable
from ..httperrors import request_failure

NODE_MACRO = "{$EXALATE.NODE}"
AGENT_INTERFACE = 1
MONITORED_BY_PROXY = 1  # 7.0's host.monitored_by: 0 server, 1 proxy, 2 proxy group


class Zabbix:
    """A logged-in Zabbix API. Every failure becomes a CheckError with one readable line."""

    def __init__(self, settings: ZabbixSettings, masker=None):
        from pyzabbix import ZabbixAPI  # only the zabbix commands pay for importing it
        self.settings = settings
        self.masker = masker
        url = settings.url[:-len("/api_jsonrpc.php")] if settings.url.endswith("/api_jsonrpc.php") else settings.url
        self.api = ZabbixAPI(url, timeout=settings.timeout)
        self.api.session.verify = settings.verify
        self.version = self._call(self.api.api_version)
        if not isinstance(self.version, str) or not re.fullmatch(r"\d+\.\d+(\.\d+)?\S*", self.version):
            raise ZabbixAPIError(f"Zabbix API at {settings.url} answered a version that is not one "
                                 f"({printable(str(self.version)[:40])!r}): is this the frontend's URL?")
        if settings.token:
            self._call(self.api.login, api_token=settings.token)  # checked by the first real call
        else:
            self._call(self.api.login, user=settings.user, password=settings.password)

    def _outside(self, text: str) -> str:
        """What Zabbix said, on one line: secrets masked before it is cut short."""
        text = self.masker.mask(text) if self.masker else text
        return printable(" ".join(text.split()))

    @property
    def major(self) -> float:
        return float(".".join(self.version.split(".")[:2]))

    def _call(self, method, *args, **kwargs):
        import requests
        from pyzabbix import ZabbixAPIException
        try:
            return method(*args, **kwargs)
        except ZabbixAPIException as exc:
            error = exc.error if isinstance(exc.error, dict) else {"data": exc.error}
            detail = self._outside(str(error.get("data") or error.get("message") or exc))
            if "password" in detail.lower() or "session" in detail.lower() or "token" in detail.lower() \
                    or "not authori" in detail.lower():
                who = "an API token" if self.settings.token else f"user {self.settings.user!r}"
                raise AuthError(f"Zabbix API at {self.settings.url} refused {who}: {detail[:200]}") from None
            raise ZabbixAPIError(f"Zabbix API at {self.settings.url}: {detail[:300]}") from None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            # pyzabbix reads the answer as JSON-RPC; anything else fails inside it in one of these ways.
            raise ZabbixAPIError(f"Zabbix API at {self.settings.url} answered something that is not a JSON-RPC "
                                 f"answer ({type(exc).__name__}): is this the frontend's URL?") from None
        except requests.exceptions.HTTPError as exc:
            raise ZabbixAPIError(f"Zabbix API at {self.settings.url} answered HTTP {exc.response.status_code}: "
                                 f"is this the frontend's URL?") from None
        except requests.exceptions.RequestException as exc:
            reason = request_failure(exc, self.settings.url, self.settings.timeout, "", "the Zabbix frontend",
                                     self.settings.source).message
            raise Unreachable(f"cannot reach the Zabbix API at {self.settings.url}: {reason}") from None

    def import_template(self, source: str) -> str:
        """Import (create or update) a template export; importing the same file twice changes nothing.

        The rules are this server's own: 6.2 split template groups from host groups (`groups` is refused from
        then on), and no rule 7.0 deprecates is sent. Returns the export format of the file ("6.0", "7.0")."""
        fmt = "xml" if source.lstrip().startswith("<") else ("yaml" if not source.lstrip().startswith("{") else "json")
        written_for = export_version(source)
        if written_for and _version_tuple(written_for) > _version_tuple(self.version):
            # Zabbix would only say "unsupported version number": say which file this server takes instead.
            raise ZabbixAPIError(f"this is a Zabbix {written_for} export, which Zabbix {self.version} cannot "
                                 f"import: import the one in templates/6.0/, or run import-template without a file: "
                                 f"it picks the export for the server's version")
        both = {"createMissing": True, "updateExisting": True}
        full = {**both, "deleteMissing": True}
        rules = {"templates": both, "items": full, "triggers": full, "graphs": full, "discoveryRules": full,
                 "valueMaps": full, "templateDashboards": full, "templateLinkage": {"createMissing": True}}
        if self.major >= 6.2:  # host and template groups were split in 6.2
            rules["template_groups"] = {"createMissing": True}
        else:
            rules["groups"] = {"createMissing": True}
        self._call(self.api.configuration["import"], format=fmt, source=source, rules=rules)
        return written_for or "unknown"

    def add_host(self, host: str, address: str, port: int, node: str, group: str, template_name: str,
                 macros: Optional[List[dict]] = None, agent_interface: bool = True,
                 proxy: Optional[str] = None) -> str:
        """Create or update the host: agent interface (unless told not to), template linked, {$EXALATE.NODE} and
        macros ([{"macro", "value", "type"}]), and with proxy, monitored by that proxy (without, an existing host
        keeps whoever monitors it). Returns what it did."""
        macros = macros or []
        template = self._call(self.api.template.get, filter={"host": template_name}, output=["templateid"])
        if not template:
            raise ZabbixAPIError(f"template {template_name!r} is not in Zabbix: run "
                                 f"'zabbix-exalate zabbix import-template' first")
        template_id = template[0]["templateid"]
        monitoring = self._monitored_by(proxy) if proxy is not None else {}
        by = f", monitored by proxy {proxy!r}" if proxy is not None else ""
        group_id = self._group(group)
        is_ip = _is_ip(address)
        interface = {"type": AGENT_INTERFACE, "main": 1, "useip": 1 if is_ip else 0,
                     "ip": address if is_ip else "", "dns": "" if is_ip else address, "port": str(port)}
        # selectGroups is deprecated since 6.2, where host groups got their own parameter.
        groups_param = "selectHostGroups" if self.major >= 6.2 else "selectGroups"
        existing = self._call(self.api.host.get, filter={"host": host}, output=["hostid"],
                              selectInterfaces=["interfaceid", "type", "main"], selectParentTemplates=["templateid"],
                              selectMacros=["hostmacroid", "macro", "value"], **{groups_param: ["groupid"]})
        if not existing:
            created = self._call(self.api.host.create, host=host, groups=[{"groupid": group_id}],
                                 interfaces=[interface] if agent_interface else [],
                                 templates=[{"templateid": template_id}],
                                 macros=[{"macro": NODE_MACRO, "value": node}] + macros, **monitoring)
            return f"host {host!r} created (hostid {created['hostids'][0]}), linked to {template_name!r}, " \
                   f"{NODE_MACRO} = {node}{by}" + _macros_set(macros)
        found = existing[0]
        host_id = found["hostid"]
        agent = [i for i in found["interfaces"] if str(i["type"]) == str(AGENT_INTERFACE) and str(i["main"]) == "1"]
        if not agent_interface:
            pass  # the HTTP template reads the node from the server: whatever interfaces the host has stay
        elif agent:
            self._call(self.api.hostinterface.update, interfaceid=agent[0]["interfaceid"],
                       **{k: v for k, v in interface.items() if k not in ("type", "main")})
        else:
            self._call(self.api.hostinterface.create, hostid=host_id, **interface)
        templates = [{"templateid": t["templateid"]} for t in found["parentTemplates"]]
        if template_id not in [t["templateid"] for t in templates]:
            templates.append({"templateid": template_id})
        groups = [{"groupid": g["groupid"]} for g in found.get("hostgroups", found.get("groups", []))]
        if group_id not in [g["groupid"] for g in groups]:
            groups.append({"groupid": group_id})
        self._call(self.api.host.update, hostid=host_id, templates=templates, groups=groups, **monitoring)
        # Only our macros are touched: host.update would replace them all, and secret ones cannot be read back.
        for wanted in [{"macro": NODE_MACRO, "value": node}] + macros:
            mine = [m for m in found["macros"] if m["macro"] == wanted["macro"]]
            if mine:
                self._call(self.api.usermacro.update, hostmacroid=mine[0]["hostmacroid"],
                           **{k: v for k, v in wanted.items() if k != "macro"})
            else:
                self._call(self.api.usermacro.create, hostid=host_id, **wanted)
        return f"host {host!r} updated (hostid {host_id}), linked to {template_name!r}, {NODE_MACRO} = {node}" \
            f"{by}" + _macros_set(macros)

    def _monitored_by(self, proxy: str) -> dict:
        """host.create/update's fields for a host monitored by that proxy; ZabbixAPIError if there is none."""
        # 7.0 renamed the proxy's "host" to "name" and gave hosts "monitored_by" (server, proxy, proxy group).
        v7 = self.major >= 7.0
        found = self._call(self.api.proxy.get, filter={"name" if v7 else "host": proxy}, output=["proxyid"])
        if not found:
            known = self._call(self.api.proxy.get, output=["name" if v7 else "host"])
            names = ", ".join(repr(p.get("name", p.get("host"))) for p in known[:10]) or "none"
            raise ZabbixAPIError(f"Zabbix has no proxy {proxy!r} (its proxies: {names}): create it under "
                                 f"Administration > Proxies, or give the name it has there to --proxy")
        proxy_id = found[0]["proxyid"]
        return {"monitored_by": MONITORED_BY_PROXY, "proxyid": proxy_id} if v7 else {"proxy_hostid": proxy_id}

    def _group(self, name: str) -> str:
        method = self.api.hostgroup
        found = self._call(method.get, filter={"name": name}, output=["groupid"])
        if found:
            return found[0]["groupid"]
        return self._call(method.create, name=name)["groupids"][0]


SECRET_MACRO = 1  # a user macro's type: its value is never shown again (frontend, API)


def http_macros(cfg) -> List[dict]:
    """The host macros the HTTP template needs for a node, from its section of the configuration file: each key of
    the section that the template takes and that differs from the template's default; the secrets secret."""
    from .content import HTTP_MACROS, SECRET_MACROS
    found = []
    for key, macro, default, _ in HTTP_MACROS:
        value = getattr(cfg, key, None)
        if value is None or isinstance(value, float):  # the timeout is the item's, not the node's
            continue
        if str(value) != default:
            found.append({"macro": macro, "value": str(value), **({"type": SECRET_MACRO} if macro in SECRET_MACROS
                                                                   else {})})
    return found


def http_misses(cfg) -> List[str]:
    """The keys of a node's section the HTTP template cannot follow (the server's JavaScript has no such setting)."""
    from ..config import NodeConfig
    defaults = NodeConfig(name="", url="", source="")
    return [key for key in ("verify", "client_cert", "client_key", "proxy", "connections", "jwt_claims", "jwt_header",
                            "jwt_ttl") if getattr(cfg, key) != getattr(defaults, key)]


def _macros_set(macros: List[dict]) -> str:
    # Names only: a value may be a secret, and the URL may say more than the operator wants in a log.
    if not macros:
        return ""
    return ", and " + ", ".join(m["macro"] + (" (secret)" if m.get("type") == SECRET_MACRO else "") for m in macros)


def export_version(source: str) -> str:
    """The format version an export says it is written in ("6.0", "7.0"), from XML, YAML or JSON; "" if none."""
    found = re.search(r"<version>\s*(\d+\.\d+)\s*</version>"          # XML
                      r"|^\s*version:\s*['\"]?(\d+\.\d+)"               # YAML
                      r"|\"version\"\s*:\s*\"(\d+\.\d+)\"", source[:4096], re.M)  # JSON
    return next((g for g in found.groups() if g), "") if found else ""


def _version_tuple(version: str) -> tuple:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


def _is_ip(address: str) -> bool:
    import ipaddress
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True
