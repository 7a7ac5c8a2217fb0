"""The bundled templates as a model: names, wirings, export formats, and how an entity is named and keyed."""
import hashlib
import re
import uuid
from dataclasses import dataclass, replace
from typing import List, Tuple

from ..metrics import COLLECT_KEY, SEND_KEY

# The bundled templates. Technical names may hold only letters, digits, spaces, "_", "." and "-" (Zabbix
# refuses anything else in a template's or host's technical name), so "per check" carries no comma.
AGENT_TEMPLATE = "Exalate by Zabbix agent"                 # one poll per node: `collect`, dependent items
PER_CHECK_TEMPLATE = "Exalate by Zabbix agent per check"   # one agent item, one process, per value
TRAPPER_TEMPLATE = "Exalate by Zabbix trapper"             # one poll per node, pushed by `send`
HTTP_TEMPLATE = "Exalate by HTTP"                          # one poll per node, a Script item of the server
DEFAULT_TEMPLATE = AGENT_TEMPLATE

GROUP = "Templates/Applications"
GROUP_UUID = "a571c0d144b14fd4a87a9d9b2aa9fcd6"  # Zabbix's own uuid for this group
VALUEMAP = "Exalate node state"
STATUS_VALUEMAP = "Exalate connection status"
CREDENTIALS_VALUEMAP = "Exalate credentials"
CONNECTION = "{#CONNECTION}"
CONNECTION_KEY = "{#CONNECTION.KEY}"

# How the node's figures reach Zabbix.
PER_CHECK = "per check"   # the agent runs one check per value
AGENT = "agent"           # the agent runs `collect`, dependent items split the document
TRAPPER = "trapper"       # `send` pushes the document to a trapper item
HTTP = "http"             # the server's (or proxy's) JavaScript reads the node: nothing of ours installed


# The Zabbix export formats generated, oldest first: each template is written once per format, from the same
# source, in the layout of Zabbix's community-templates repository (templates/6.0/..., templates/7.0/...).
# An entity keeps its uuid in every format: Zabbix matches by uuid when a newer export is imported over an
# older one, so an upgrade updates items (and keeps their history) instead of replacing them.
FORMATS = ("6.0", "7.0")
DEFAULT_FORMAT = "6.0"  # what template_tree and template_xml give when asked for no format


def _major(version: str) -> Tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


def format_for(server_version: str) -> str:
    """The newest export format a Zabbix server of this version imports ("7.0.22" -> "7.0", "6.4.1" -> "6.0")."""
    fitting = [f for f in FORMATS if _major(f) <= _major(server_version)]
    return fitting[-1] if fitting else FORMATS[0]


@dataclass(frozen=True)
class Design:
    name: str           # the template's technical and visible name
    slug: str           # names its generated blocks in the Markdown files
    filename: str       # in templates/<format>/
    wiring: str         # PER_CHECK, AGENT, TRAPPER or HTTP
    uuid_prefix: str    # "": the uuids the agent template has always had (an update keeps its hosts' history)
    summary: str        # how the values arrive, for the template's description
    format: str = DEFAULT_FORMAT  # the Zabbix export format being written

    @property
    def one_poll(self) -> bool:
        return self.wiring != PER_CHECK

    @property
    def v7(self) -> bool:
        """Written for Zabbix 7.0: item timeouts, template groups, disabling lost resources, the 72-column grid."""
        return self.format == "7.0"

    def path(self, fmt: str = DEFAULT_FORMAT) -> str:
        """The file of this template in one export format, relative to the repository root."""
        return f"templates/{fmt}/{self.filename}"

    def at(self, fmt: str) -> "Design":
        """The same template, written in another export format."""
        if fmt not in FORMATS:
            raise KeyError(f"no export format {fmt!r}; there are: {', '.join(FORMATS)}")
        return replace(self, format=fmt)

    def uid(self, slug: str) -> str:
        return uid(self.uuid_prefix + slug)  # the same in every format

    def ref(self, key: str) -> str:
        return f"/{self.name}/{key}"


DESIGNS = (
    Design(AGENT_TEMPLATE, "agent", "template_exalate_agent.xml", AGENT, "",
           "The Zabbix agent runs `zabbix-exalate collect` once per interval; dependent items take each value "
           "from that one document."),
    Design(PER_CHECK_TEMPLATE, "per_check", "template_exalate_agent_per_check.xml", PER_CHECK,
           "per-check:", "The Zabbix agent runs one zabbix-exalate check per value (one process, one request each)."),
    Design(TRAPPER_TEMPLATE, "trapper", "template_exalate_trapper.xml", TRAPPER, "trapper:",
           "`zabbix-exalate send` (a systemd timer or cron) pushes the document of `collect` to a trapper item; "
           "dependent items take each value from it."),
    Design(HTTP_TEMPLATE, "http", "template_exalate_http.xml", HTTP, "http:",
           "A Script item of the Zabbix server or proxy reads the node over HTTP (JavaScript, no agent and nothing "
           "of zabbix-exalate installed) and returns the document of `collect`; dependent items take each value "
           "from it."),
)
BY_NAME = {d.name: d for d in DESIGNS}
TEMPLATE_NAMES = tuple(BY_NAME)


def uid(slug: str) -> str:
    """A stable UUIDv4 (as Zabbix writes it) for one template entity."""
    return uuid.UUID(bytes=hashlib.md5(f"zabbix-exalate:{slug}".encode()).digest(), version=4).hex


def node_key(base: str) -> str:
    return f"{base}[{{$EXALATE.NODE}}]"


def connection_key(base: str) -> str:
    return f"{base}[{{$EXALATE.NODE}},{CONNECTION_KEY}]"


def master_key(d: Design) -> str:
    """The item holding the whole document: the agent passes node and timeout on; a trapper key takes no macro;
    the Script item's names the node."""
    if d.wiring == AGENT:
        return f"{COLLECT_KEY}[{{$EXALATE.NODE}},{{$EXALATE.COLLECT.TIMEOUT}}]"
    if d.wiring == HTTP:
        return node_key(COLLECT_KEY)
    return SEND_KEY


def ctx(macro: str) -> str:
    """A threshold macro that can be overridden per connection: {$M} -> {$M:"{#CONNECTION}"}."""
    return f'{macro[:-1]}:"{CONNECTION}"}}'


def tags(**pairs: str) -> List[dict]:
    return [{"tag": k, "value": v} for k, v in pairs.items()]

