"""The checks as the CLI and the demo run them: one number, a ping, or the discovery list."""
from typing import List, Optional, Tuple

from .client import Node
from .errors import CheckError
from .metrics import BY_COMMAND
from .names import connection_name, key_form


def measure(node: Node, command: str, connection: Optional[str] = None, reason: Optional[str] = None) -> int:
    """The number one check reads from its one endpoint. Raises CheckError when it cannot tell."""
    metric = BY_COMMAND[command]
    name = connection_name(connection) if connection is not None else None
    return node.value(metric, name, reason or None)


def ping(node: Node) -> Tuple[int, Optional[str]]:
    """1 when the node answered an authenticated request as the API promises, else 0 and why."""
    try:
        if node.cfg.ping_check == "discover":
            node.connections()
        else:
            measure(node, node.cfg.ping_check)
    except CheckError as exc:
        return 0, exc.message
    return 1, None


def discovery(node: Node) -> List[dict]:
    """Zabbix low-level discovery rows, one per connection."""
    return [{
        "{#CONNECTION}": c["name"],
        "{#CONNECTION.KEY}": key_form(c["name"]),
        "{#CONNECTION.ID}": "" if c["id"] is None else str(c["id"]),
        "{#CONNECTION.STATUS}": c["status"] if isinstance(c["status"], str) else "UNKNOWN",
        "{#CONNECTION.REMOTE}": c["remote"] if isinstance(c["remote"], str) else "",
    } for c in node.connections()]
