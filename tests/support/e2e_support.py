"""Helpers of the end-to-end suite: a simulated node that can go down and come back, and a sender on a timer."""
import copy
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Deque, List, Optional, Tuple

import pytest

from helpers import Run, run_cli
from zabbix_exalate.simulation.simulator import Simulator, SimulatorServer


def wait_for(what: str, probe, seconds: float = 120, poke=None, detail=None, every: float = 1.0):
    """Poll probe() until it returns something truthy and return that.

    poke() runs before each probe (a "check now", say); on timeout the failure names what never happened
    and, when detail is given, what detail() says about the current state."""
    deadline = time.monotonic() + seconds
    while True:
        if poke:
            poke()
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"after {seconds:g} s: {what}" + (f"\n{detail()}" if detail else ""), pytrace=False)
        time.sleep(every)


class LiveNode:
    """A simulated Exalate node on a fixed loopback port: stop() takes it down, start() brings it back there."""

    def __init__(self, scenario: dict):
        self.simulator = Simulator(scenario)
        self.server: Optional[SimulatorServer] = SimulatorServer(self.simulator).start()
        self.port = self.server.server_address[1]
        self.url = self.server.url

    def config_text(self, section: str) -> str:
        return self.server.config_text(section)

    @property
    def scenario(self) -> dict:
        return copy.deepcopy(self.simulator.scenario)

    def stop(self) -> None:
        if self.server:
            self.server.stop()
            self.server = None

    def start(self) -> None:
        if not self.server:
            self.server = SimulatorServer(self.simulator, port=self.port).start()

    @contextmanager
    def down(self):
        self.stop()
        try:
            yield
        finally:
            self.start()

    @contextmanager
    def changed(self, **changes):
        """The scenario with some top-level fields replaced, restored afterwards."""
        before = self.scenario
        self.simulator.update(**changes)
        try:
            yield
        finally:
            self.simulator.update(**{k: before[k] for k in changes})

    @contextmanager
    def connection_changed(self, name: str, **fields):
        """One connection's fields replaced (or, with listed=False, the connection left out of the list)."""
        connections = self.scenario["connections"]
        if fields.pop("listed", True):
            connections = [{**c, **fields} if c["name"] == name else c for c in connections]
        else:
            connections = [c for c in connections if c["name"] != name]
        with self.changed(connections=connections):
            yield

    @contextmanager
    def fault(self, path: str, **fault):
        """A fault on the endpoints matching path (under /rest/issuehub/, the connection decoded)."""
        with self.changed(faults=[{"path": path, **fault}]):
            yield


class Feeder:
    """What the systemd timer of docs/collect.md does: `zabbix-exalate send` every few seconds, as a process."""

    def __init__(self, args: List[str], env: dict, every: float = 5.0):
        self.args, self.env, self.every = args, env, every
        self.runs: Deque[Tuple[float, Run]] = deque(maxlen=50)  # (when it ended, what it did)
        self.crashes: List[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="e2e-send", daemon=True)

    def start(self) -> "Feeder":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = run_cli(*self.args, env=self.env)
            except Exception as exc:  # a secret in the output, a run past its timeout: reported by since()
                self.crashes.append(repr(exc))
            else:
                self.runs.append((time.time(), ran))
            self._stop.wait(self.every)

    def since(self, moment: float) -> List[Run]:
        """The runs that ended after moment; fails the test if a run could not even be made."""
        assert not self.crashes, self.crashes
        return [ran for ended, ran in list(self.runs) if ended > moment]
