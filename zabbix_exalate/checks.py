"""The node's reads as a check makes them: one number, the ping and its one rule, the discovery list."""
from typing import Callable, Dict, List, Optional, Tuple

from .errors import CheckError
from .exalate.api import Node
from .exalate.names import shown
from .metrics import BY_COMMAND, CONNECTIONS_FIELD, NODE_METRICS, PING_DISCOVER


def measure(node: Node, command: str, connection: Optional[str] = None, reason: Optional[str] = None) -> int:
    """The number one check reads from its one endpoint. Raises CheckError when it cannot tell."""
    metric = BY_COMMAND[command]
    name = node.connection_named(connection) if connection is not None else None
    return node.value(metric, name, reason or None)


def node_reads(node: Node) -> Dict[str, Callable[[], object]]:
    """Each read of the node as a whole, by its field in `collect`'s document: the totals and the connection list."""
    reads: Dict[str, Callable[[], object]] = {m.field_name: (lambda m=m: node.value(m)) for m in NODE_METRICS}
    reads[CONNECTIONS_FIELD] = node.connections
    return reads


def ping_field(node: Node) -> str:
    """The read whose success is the ping: the node total ping_check names, or the connection list."""
    check = node.cfg.ping_check
    return CONNECTIONS_FIELD if check == PING_DISCOVER else BY_COMMAND[check].field_name


def ping(node: Node) -> Tuple[int, Optional[str]]:
    """1 when the node answered an authenticated request as the API promises, else 0 and why."""
    try:
        node_reads(node)[ping_field(node)]()
    except CheckError as exc:
        return 0, exc.message
    return 1, None


def discovery(node: Node) -> List[dict]:
    """Zabbix low-level discovery rows, one per connection."""
    return [{
        "{#CONNECTION}": shown(c["name"], c["key"]),
        "{#CONNECTION.KEY}": c["key"],
        "{#CONNECTION.ID}": "" if c["id"] is None else str(c["id"]),
        "{#CONNECTION.STATUS}": c["status"],
        "{#CONNECTION.REMOTE}": c.get("remote", ""),
    } for c in node.connections()]
