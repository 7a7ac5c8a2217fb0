"""A loopback listener that speaks the Zabbix sender protocol, as a trapper does (or a hostile one), and records values.

By default it answers as Zabbix does. answer= replaces its reply with one of the behaviours below (a function of
the connection, called once the request is read): a packet of any body, flags and announced length, raw bytes,
a trickle, silence, an endless answer, a redirection.
"""
import json
import socket
import struct
import threading
import time
import zlib
from typing import Callable, List, Optional

HEADER = struct.Struct("<4sBII")  # "ZBXD", flags, data length, reserved

Answer = Callable[[socket.socket], None]


class Trapper:
    """Accepts sender requests on host (127.0.0.1, or ::1); `accept` says whether each value is processed or
    failed; answer, when given, replaces the reply."""

    def __init__(self, accept: bool = True, answer: Optional[Answer] = None, host: str = "127.0.0.1"):
        self.accept = accept
        self.answer = answer
        self.received: List[dict] = []
        self.connections = 0
        self.stopped = threading.Event()
        self.sock = socket.create_server((host, 0), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.port = self.sock.getsockname()[1]
        self.address = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "Trapper":
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            try:
                header = _read(conn, HEADER.size)
                magic, flags, length, _ = HEADER.unpack(header)
                assert magic == b"ZBXD" and flags & 1, header
                request = json.loads(_read(conn, length))
                self.received.extend(request["data"])
                if self.answer:
                    self.answer(conn)
                    return
                n = len(request["data"])
                ok = n if self.accept else 0
                conn.sendall(packet(json.dumps({"response": "success", "info": zabbix_info(ok, n - ok)}).encode()))
            except OSError:
                pass  # the sender gave up: what a hostile trapper is for


def zabbix_info(processed: int, failed: int) -> str:
    return f"processed: {processed}; failed: {failed}; total: {processed + failed}; seconds spent: 0.000042"


def packet(body: bytes, flags: int = 1, length: Optional[int] = None, reserved: int = 0) -> bytes:
    """A sender-protocol packet of body; length (the announced one) and flags may lie."""
    return HEADER.pack(b"ZBXD", flags, len(body) if length is None else length, reserved) + body


def compressed(body: bytes) -> bytes:
    """body as Zabbix compresses it (flag 0x02, the original length in the reserved field)."""
    data = zlib.compress(body)
    return packet(data, flags=3, reserved=len(body))


def raw(data: bytes) -> Answer:
    """Answer with these bytes, then close."""
    return lambda conn: conn.sendall(data)


def reply(document) -> Answer:
    """Answer with this JSON document in a well-formed packet."""
    return raw(packet(json.dumps(document).encode()))


def trickle(data: bytes, every: float = 1.0) -> Answer:
    """Send data one byte at a time, one every `every` seconds."""
    def answer(conn: socket.socket) -> None:
        for i in range(len(data)):
            conn.sendall(data[i:i + 1])
            time.sleep(every)
    return answer


def silence(seconds: float = 60.0) -> Answer:
    """Read the request, keep the connection open, never answer."""
    return lambda conn: time.sleep(seconds)


def endless(announced: int = 300 << 20, body: bytes = b"{\"response\":\"success\",\"info\":\"") -> Answer:
    """Announce a huge answer and send it for as long as the sender reads."""
    def answer(conn: socket.socket) -> None:
        conn.sendall(HEADER.pack(b"ZBXD", 1, announced, 0) + body)
        chunk = b"x" * (1 << 16)
        for _ in range(announced // len(chunk)):
            conn.sendall(chunk)
    return answer


def redirect(address: str, revision: int = 1) -> Answer:
    """Answer as a Zabbix 7.0 proxy of a proxy group that does not monitor the host: go to address."""
    return reply({"response": "failed", "redirect": {"revision": revision, "address": address}})


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("sender closed the connection early")
        data += chunk
    return data
