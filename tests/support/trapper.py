"""A loopback listener that speaks the Zabbix sender protocol, as a server's trapper does, and records values."""
import json
import socket
import struct
import threading
from typing import List, Optional

HEADER = struct.Struct("<4sBII")  # "ZBXD", flags, data length, reserved


class Trapper:
    """Accepts sender requests on 127.0.0.1; `accept` says whether each value is processed or failed."""

    def __init__(self, accept: bool = True):
        self.accept = accept
        self.received: List[dict] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._thread: Optional[threading.Thread] = None

    def __enter__(self) -> "Trapper":
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                header = _read(conn, HEADER.size)
                magic, flags, length, _ = HEADER.unpack(header)
                assert magic == b"ZBXD" and flags & 1, header
                request = json.loads(_read(conn, length))
                self.received.extend(request["data"])
                n = len(request["data"])
                ok = n if self.accept else 0
                info = f"processed: {ok}; failed: {n - ok}; total: {n}; seconds spent: 0.000042"
                body = json.dumps({"response": "success", "info": info}).encode()
                conn.sendall(HEADER.pack(b"ZBXD", 1, len(body), 0) + body)


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("sender closed the connection early")
        data += chunk
    return data
