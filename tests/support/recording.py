"""The simulator with what only tests look at: every request it answered, its logins, its connections and
how many requests it answered at once."""
import threading
from collections import deque
from urllib.parse import urlsplit

from zabbix_exalate.metrics import API_ROOT
from zabbix_exalate.simulation.simulator import Simulator, SimulatorServer, _Handler


class RecordingSimulator(Simulator):
    def __init__(self, scenario):
        super().__init__(scenario)
        self.requests: deque = deque(maxlen=10000)  # (method, raw path, credential kind)
        self.logins = 0
        self._count = threading.Lock()

    def handle(self, method, raw_path, headers, body):
        reply = super().handle(method, raw_path, headers, body)
        path = urlsplit(raw_path).path
        marker = path.find(API_ROOT)
        if marker >= 0:
            kind = self.credential_kind(path[marker + len(API_ROOT):], headers)
            with self._count:
                self.requests.append((method, raw_path, kind))
                self.logins += method == "POST" and reply.status == 200
        return reply


class _CountingHandler(_Handler):
    def _answer(self, method):
        server = self.server
        with server.count:
            server.in_flight += 1
            server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
        try:
            super()._answer(method)
        finally:
            with server.count:
                server.in_flight -= 1


class RecordingServer(SimulatorServer):
    """A SimulatorServer that counts the connections it accepted and the requests it answered at once."""
    handler = _CountingHandler

    def __init__(self, simulator, host="127.0.0.1", port=0):
        self.count = threading.Lock()
        self.connections = 0     # connections accepted
        self.in_flight = 0       # requests being answered now
        self.peak_in_flight = 0  # the most at once
        self.errors: list = []   # exceptions while answering
        super().__init__(simulator, host, port)

    def process_request(self, request, client_address):
        with self.count:
            self.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request, client_address):
        import sys
        self.errors.append(repr(sys.exc_info()[1]))
