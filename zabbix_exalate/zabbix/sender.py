"""Pushes a collection to a Zabbix trapper item over the sender protocol, through a client bounded in time and size."""
import json
import logging
import os
import re
import socket
import struct
import zlib
from dataclasses import dataclass
from typing import List, Optional, Set

from ..errors import BadResponse, CheckError, CheckTimeout, ConfigError, Unreachable, ZabbixAPIError, one_line
from ..masking import Masker
from ..runtime import Deadline, within
from .agentconf import AGENT_CONFIGS, Agent, read_agent
from .servers import Destination, Server, destinations, server

HEADER = struct.Struct("<4sBII")  # "ZBXD", flags, data length, reserved (the length before compression)
PROTOCOL, COMPRESSED, LARGE = 0x01, 0x02, 0x04
# A trapper's answer is about 100 bytes ({"response":"success","info":"processed: 1; failed: 0; ..."}): more
# than this, announced, sent or inflated from zlib, is not one, and is not read.
REPLY_MOST = 64 * 1024
REASON_WIDTH = 200  # of a refusal's text, in our one line
INFO = re.compile(r"processed:\s*(\d{1,12});\s*failed:\s*(\d{1,12})", re.I)
JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "true or false",
              type(None): "null"}


@dataclass
class Target:
    """Where the value goes and for which Zabbix host; source says where the servers were read."""
    destinations: List[Destination]
    host: str
    source: str

    @property
    def servers(self) -> Set[Server]:
        return {s for d in self.destinations for s in d}


def target(server_option: Optional[str], host: Optional[str], agent_config: Optional[str]) -> Target:
    """The servers (--server, else the agent's ServerActive) and the host (--host, else the agent's Hostname,
    else this machine's name, as the agent does), Include files followed. Raises ConfigError, also for an agent
    configuration that has the agent speak TLS: we do not, and the data would go in clear text."""
    if server_option is not None and host:
        return Target(destinations(server_option, "--server"), host, "--server")
    path = agent_config or next((p for p in AGENT_CONFIGS if os.path.exists(p)), None)
    agent = _agent(path, needed=bool(agent_config or server_option is None)) if path else None
    if server_option is not None:
        found, source = destinations(server_option, "--server"), "--server"
    elif agent is None:
        raise ConfigError(f"no Zabbix agent configuration ({' or '.join(AGENT_CONFIGS)}) to read ServerActive "
                          f"from: name the Zabbix server with --server and the host with --host")
    elif not agent.first("ServerActive"):
        raise ConfigError(f"{path} (and the files it includes) has no ServerActive: the agent sends to no "
                          f"server either; name the Zabbix server or proxy with --server")
    else:
        source = f"ServerActive in {path}"
        found = destinations(agent.first("ServerActive"), source)
    return Target(found, host or (agent.first("Hostname") if agent else "") or socket.gethostname(), source)


def _agent(path: str, needed: bool) -> Optional[Agent]:
    try:
        agent = read_agent(path).merged()
    except ConfigError:
        if needed:
            raise
        return None  # only its Hostname was wanted, and this machine's name stands in, as for the agent
    tls = agent.first("TLSConnect") or "unencrypted"
    if tls.lower() != "unencrypted":
        raise ConfigError(f"{path} (or a file it includes) has the agent connect with TLS (TLSConnect="
                          f"{one_line(tls, 20)}), which send does not speak: allow unencrypted connections for "
                          f"this host in Zabbix, or send with zabbix_sender")
    return agent


def push(value: str, key: str, where: Target, deadline: Deadline, masker: Masker) -> str:
    """Send value to key of where.host, to every destination, within the deadline; returns what Zabbix
    answered, in words. Raises CheckError."""
    exchange = _Exchange(where, deadline, masker)

    # A name lookup blocks inside C: a worker does the talking, and this thread leaves at the deadline.
    return within(deadline, lambda: exchange.send(value, key), lambda: exchange.late(exchange.doing))


class _Exchange:
    """One push: the request, each destination's nodes in order, the redirections the user configured."""

    def __init__(self, where: Target, deadline: Deadline, masker: Masker):
        self.where = where
        self.deadline = deadline
        self.masker = masker
        self.doing = "Zabbix"  # what is waited for, for the message of a deadline that passes

    def send(self, value: str, key: str) -> str:
        from zabbix_utils import ItemValue
        from zabbix_utils.common import ZabbixProtocol

        log = logging.getLogger("zabbix_utils")  # it logs the request; Python would print that on stderr
        log.addHandler(logging.NullHandler())
        log.propagate = False
        request = {"request": "sender data", "data": [ItemValue(self.where.host, key, value).to_json()]}
        packet = ZabbixProtocol.create_packet(request, log)
        accepted, failures = [], []
        for destination in self.where.destinations:
            try:
                accepted.append(self.deliver(destination, packet, key))
            except CheckTimeout:
                raise  # nothing left for the other destinations
            except CheckError as exc:
                failures.append(exc)
        shown = ", ".join(map(str, accepted))
        if failures:
            first = failures[0]
            raise type(first)(first.message + (f" (accepted by {shown})" if accepted else ""))
        return f"sent to {shown} as {key} of host {self.where.host!r}: accepted"

    def deliver(self, destination: Destination, packet: bytes, key: str) -> Server:
        """To the first node of the cluster that takes the connection, and where it redirects (if configured)."""
        unreached = []
        for i, node in enumerate(destination):
            try:
                connection = self.connect(node, len(destination) - i)
            except Unreachable as exc:
                unreached.append(exc.message)
                continue
            return self.talk(node, connection, packet, key, visited=[node])
        raise Unreachable(f"cannot connect to Zabbix at {'; '.join(unreached)}: is the server or proxy running "
                          f"and listening there? ({self.where.source})")

    def connect(self, node: Server, nodes_left: int) -> socket.socket:
        self.doing = f"the name lookup of {node.host}"
        try:
            addresses = socket.getaddrinfo(node.host, node.port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise Unreachable(f"{node} (the name does not resolve: {getattr(exc, 'strerror', None) or exc})") \
                from None
        self.doing = f"Zabbix at {node}"
        reasons = []
        for family, kind, proto, _, address in addresses:
            # A node that drops the connection must leave time to try the next ones of its cluster.
            patience = self.left(node) / nodes_left
            connection = socket.socket(family, kind, proto)
            connection.settimeout(patience)
            try:
                connection.connect(address)
                return connection
            except socket.timeout:
                reasons.append(f"no answer to connecting within {patience:.2g} s")
            except OSError as exc:
                reasons.append(exc.strerror or type(exc).__name__)
            connection.close()
        self.left(node)  # a deadline that passed while connecting is a timeout, not an unreachable node
        raise Unreachable(f"{node} ({', '.join(sorted(set(reasons))) or 'no address'})")

    def talk(self, node: Server, connection: socket.socket, packet: bytes, key: str, visited: List[Server]) -> Server:
        with connection:
            reply = self.answer(node, connection, packet)
        if reply.get("response") == "success":
            info = reply.get("info")
            found = INFO.search(info) if isinstance(info, str) else None
            if not found:
                raise BadResponse(f"Zabbix at {node} said success but not how many values it took (its info is "
                                  f"{self.outside(json.dumps(info), 80)}): is it a Zabbix server or proxy?")
            processed, failed = int(found.group(1)), int(found.group(2))
            if failed or not processed:
                raise ZabbixAPIError(f"Zabbix at {node} did not accept the value of {key} for host "
                                     f"{self.where.host!r} (processed {processed}, failed {failed}): check that the "
                                     f"host exists with that name, that the \"Exalate by Zabbix trapper\" template is "
                                     f"linked to it, and that this machine may send to it (the item's allowed hosts)")
            return node
        if "redirect" in reply:
            return self.redirected(node, reply["redirect"], packet, key, visited)
        info = reply.get("info")
        reason = self.outside(info) if isinstance(info, str) and info.strip() else "(no reason given)"
        raise ZabbixAPIError(f"Zabbix at {node} refused the data: {reason}")

    def redirected(self, node: Server, redirect, packet: bytes, key: str, visited: List[Server]) -> Server:
        """A 7.0 proxy group sends the sender to the proxy that has the host: followed to a server the user
        configured, never elsewhere (the data would go to whoever answered)."""
        address = redirect.get("address") if isinstance(redirect, dict) else None
        try:
            to = server(address, "the redirection") if isinstance(address, str) else None
        except ConfigError:
            to = None
        if to is None:
            raise BadResponse(f"Zabbix at {node} redirected the data to {self.outside(json.dumps(address), 80)}, "
                              f"which is not an address: not sent")
        if to not in self.where.servers:
            raise ZabbixAPIError(f"Zabbix at {node} redirected the data to {to}, which is not among the servers "
                                 f"of {self.where.source}: not sent there; if {to} is your proxy, add it to "
                                 f"ServerActive (or --server)")
        if to in visited:
            raise BadResponse(f"Zabbix at {node} redirected the data back to {to}, which redirected it before: "
                              f"a loop (check the proxy group)")
        connection = self.connect(to, 1)
        return self.talk(to, connection, packet, key, visited + [to])

    def answer(self, node: Server, connection: socket.socket, packet: bytes) -> dict:
        """The trapper's reply to packet: at most REPLY_MOST bytes, read within the one deadline."""
        try:
            connection.settimeout(self.left(node))
            connection.sendall(packet)
            header = self.receive(node, connection, HEADER.size)
        except socket.timeout:
            raise self.late(f"Zabbix at {node}") from None
        except OSError as exc:
            raise Unreachable(f"the connection to Zabbix at {node} failed: {exc.strerror or type(exc).__name__}") \
                from None
        magic, flags, length, original = HEADER.unpack(header)
        if magic != b"ZBXD" or not flags & PROTOCOL or flags & LARGE:
            raise BadResponse(f"Zabbix at {node} answered with something that is not the sender protocol: is "
                              f"{node.port} the port of a Zabbix server or proxy (10051)?")
        if length > REPLY_MOST or (flags & COMPRESSED and original > REPLY_MOST):
            raise BadResponse(f"Zabbix at {node} announced an answer of {max(length, original)} bytes: a trapper "
                              f"answers in about 100, so it was not read")
        try:
            body = self.receive(node, connection, length)
        except socket.timeout:
            raise self.late(f"Zabbix at {node}", "did not send its whole answer") from None
        except OSError as exc:
            raise Unreachable(f"the connection to Zabbix at {node} failed while it answered: "
                              f"{exc.strerror or type(exc).__name__}") from None
        return _decoded(node, _inflated(node, body) if flags & COMPRESSED else body)

    def receive(self, node: Server, connection: socket.socket, size: int) -> bytes:
        """Exactly size bytes, however slowly they come, but never past the deadline."""
        data = bytearray()
        while len(data) < size:
            connection.settimeout(self.left(node))
            chunk = connection.recv(min(size - len(data), 1 << 16))
            if not chunk:
                raise BadResponse(f"Zabbix at {node} closed the connection " + (
                    "in the middle of its answer" if data else "without answering") + f": is {node.port} the port "
                    f"of a Zabbix server or proxy (10051)?")
            data += chunk
        return bytes(data)

    def left(self, node: Server) -> float:
        """Seconds left; CheckTimeout, saying who kept us waiting, once there are none."""
        left = self.deadline.left()
        if left <= 0:
            raise self.late(f"Zabbix at {node}")
        return left

    def late(self, who: str, what: str = "did not answer") -> CheckTimeout:
        return CheckTimeout(f"{who} {what} within the timeout of {self.deadline.seconds:g} s (the node's timeout, "
                            f"or --timeout)")

    def outside(self, text: str, width: int = REASON_WIDTH) -> str:
        """Text Zabbix (or whoever answered) chose, fit for our one line: masked first, then cut."""
        return one_line(self.masker.mask(text), width)


def _inflated(node: Server, body: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(body, REPLY_MOST + 1)  # never more: a few KB of zlib can inflate to GB
    except zlib.error:
        raise BadResponse(f"Zabbix at {node} sent a compressed answer that does not decompress") from None
    if len(data) > REPLY_MOST:
        raise BadResponse(f"Zabbix at {node} sent a compressed answer that inflates past {REPLY_MOST >> 10} KB: "
                          f"a trapper answers in about 100 bytes, so it was not read")
    if not inflater.eof:
        raise BadResponse(f"Zabbix at {node} sent a compressed answer that ends before its end")
    return data


def _decoded(node: Server, body: bytes) -> dict:
    try:
        reply = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadResponse(f"Zabbix at {node} answered with bytes that are not UTF-8 text, not a trapper's "
                          f"answer") from None
    except (ValueError, RecursionError):  # not JSON; or nested deeper than Python goes
        raise BadResponse(f"Zabbix at {node} answered with text that is not JSON, not a trapper's answer") from None
    if not isinstance(reply, dict):
        raise BadResponse(f"Zabbix at {node} answered with a JSON {JSON_TYPES.get(type(reply), 'value')}, not the object a "
                          f"trapper answers with")
    return reply

