"""The Zabbix servers and proxies a value goes to, read from ServerActive's syntax (the agent's, and --server's)."""
import ipaddress
import re
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ..errors import ConfigError, one_line

DEFAULT_PORT = 10051
# A host name as DNS and /etc/hosts take it: letters, digits, dots, hyphens (and underscores, which some use).
HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252}[A-Za-z0-9_.])?")
SHOWN = 80  # of an entry that is wrong, in the message


@dataclass(frozen=True)
class Server:
    """One server or proxy: a host name or an IP address, and its port."""
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


# The value goes to every destination; a destination is a cluster, its nodes tried in order until one answers.
Destination = Tuple[Server, ...]


def destinations(text: str, where: str) -> List[Destination]:
    """ServerActive's value: ","-separated destinations, each of ";"-separated nodes, each host, host:port,
    [address], [address]:port or a bare IPv6 address. A destination written twice is kept once; what the agent
    would refuse (an empty entry, a bad port, a server in two destinations) raises ConfigError naming it."""
    found: List[Destination] = []
    for part in text.split(","):
        destination = tuple(server(node, where) for node in part.split(";"))
        if destination in found:
            continue  # the value would go twice to the same place
        repeated = next((s for s in destination if destination.count(s) > 1 or any(s in d for d in found)), None)
        if repeated:
            raise ConfigError(f"{where} names {repeated} twice ({_shown(text)}): a server belongs to one "
                              f"destination (\",\" separates destinations, \";\" the nodes of a cluster)")
        found.append(destination)
    return found


def server(entry: str, where: str) -> Server:
    """One node of ServerActive; raises ConfigError saying what is wrong with it."""
    text = entry.strip()
    host: Optional[str]
    if not text:
        raise ConfigError(f"{where} has an empty entry: remove the extra \",\" or \";\"")
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ConfigError(f"{where}: {_shown(entry)} is not [address] or [address]:port")
        port = rest[1:] if rest else None
        if _ip(host) is None and not HOST_NAME.fullmatch(host):
            raise ConfigError(f"{where}: {_shown(host)} in {_shown(entry)} is neither an IP address nor a host name")
    elif text.count(":") > 1:
        if _ip(text) is None:
            raise ConfigError(f"{where}: {_shown(entry)} is not an IPv6 address: write one with a port as "
                              f"[address]:port")
        host, port = text, None
    else:
        host, colon, port = text.partition(":")
        port = port if colon else None
        if _ip(host) is None and not HOST_NAME.fullmatch(host):
            raise ConfigError(f"{where}: {_shown(host)} in {_shown(entry)} is neither an IP address nor a host name")
    address = _ip(host)
    host = str(address) if address is not None else host.lower()
    return Server(host, _port(port, entry, where))


def _port(port: Optional[str], entry: str, where: str) -> int:
    if port is None:
        return DEFAULT_PORT
    if not (port.isascii() and port.isdigit() and len(port) <= 5 and 0 < int(port) < 65536):
        raise ConfigError(f"{where}: the port in {_shown(entry)} is not a number from 1 to 65535")
    return int(port)


def _ip(text: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _shown(text: str) -> str:
    return repr(one_line(text, SHOWN))
