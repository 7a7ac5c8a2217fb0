"""The run's deadline, the process's age, and the bounded worker pool of a single check and of `collect`."""
import os
import queue
import threading
import time
from typing import Callable, List

from .errors import CheckError, CheckTimeout


def process_age() -> float:
    """Seconds since this process started, Python's own start-up included (0 where Linux cannot say)."""
    try:
        with open("/proc/self/stat", "rb") as handle:
            # Field 22, after the command name in parentheses (which may hold spaces): start time in ticks.
            started = int(handle.read().rsplit(b")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


class Deadline:
    """The whole run's time budget, shared by connecting, logging in and reading.

    It counts from when the process started: the agent's Timeout does too."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic, spent: float = 0.0):
        self.seconds = seconds
        self.clock = clock
        self.end = clock() + seconds - spent

    def left(self) -> float:
        """Seconds left, negative once the deadline has passed."""
        return self.end - self.clock()

    def remaining(self) -> float:
        """Seconds left; raises CheckTimeout once there are none."""
        left = self.left()
        if left <= 0:
            raise CheckTimeout(f"no complete answer within the timeout of {self.seconds:g} s")
        return left


class Pool:
    """At most size daemon worker threads. Whoever waits stops at the deadline, and the process need not wait for
    a worker still blocked inside C (a slow DNS answer, a stalled TLS handshake): at exit, daemon threads end."""

    def __init__(self, size: int):
        self.size = max(1, size)
        self.tasks: "queue.Queue[Callable[[], None]]" = queue.Queue()
        self.pending = 0
        self.changed = threading.Condition(threading.Lock())
        self.threads: List[threading.Thread] = []

    def submit(self, task: Callable[[], None]) -> None:
        """Run task in a worker; task must not raise (it records its own failures)."""
        worker = None
        with self.changed:
            self.pending += 1
            if len(self.threads) < min(self.size, self.pending):
                worker = threading.Thread(target=self._work, name="zabbix-exalate", daemon=True)
                self.threads.append(worker)
        self.tasks.put(task)
        if worker:
            worker.start()

    def _work(self) -> None:
        while True:
            task = self.tasks.get()
            try:
                task()
            finally:
                with self.changed:
                    self.pending -= 1
                    self.changed.notify_all()

    def wait(self, deadline: Deadline) -> bool:
        """Wait until every submitted task has ended; False when the deadline came first."""
        with self.changed:
            while self.pending:
                left = deadline.left()
                if left <= 0:
                    return False
                self.changed.wait(left)
            return True


def within(deadline: Deadline, work: Callable[[], object], late: Callable[[], CheckError]) -> object:
    """work() in one worker, waited for no longer than the deadline: late() is raised when it ran out."""
    outcome: dict = {}

    def task() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the waiting thread, which reports it
            outcome["error"] = exc

    pool = Pool(1)
    pool.submit(task)
    if not pool.wait(deadline):
        raise late()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
