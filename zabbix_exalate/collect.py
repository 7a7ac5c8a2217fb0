"""Reads a whole node in one run: every endpoint once, over a few kept-alive connections, within one deadline."""
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from .checks import node_reads, ping_field
from .errors import AuthError, CheckError, ConnectionNotFound
from .exalate.api import Node
from .exalate.jsonstream import Failure, Queue
from .metrics import (ACCEPTED, CONNECTION_METRICS, CONNECTIONS_FIELD as CONNECTIONS, CREDENTIALS_FIELD, NODE_METRICS,
                      REFUSED, REMOVED, UNKNOWN_CREDENTIALS, Metric)
from .runtime import Pool

# The document's fields in the order it prints them.
NODE_ORDER = ("ping", "response_time", CREDENTIALS_FIELD) + tuple(m.field_name for m in NODE_METRICS) + (CONNECTIONS,)
CONNECTION_ORDER = ("name", "key", "id", "status", "remote") + tuple(
    f for m in CONNECTION_METRICS for f in (m.field_name, m.oldest_field, m.reasons_field, m.last_field,
                                            m.newest_field) if f)


def queue_fields(metric: Metric, queue: Queue, keep: int) -> Dict[str, object]:
    """A queue's fields in a connection's object: its size, its oldest event when it has one, and for a queue
    of failures the count by reason and the newest failure (all of the keep newest when keep > 1)."""
    fields: Dict[str, object] = {metric.field_name: queue.count}
    if queue.oldest is not None:
        fields[metric.oldest_field] = queue.oldest
    if metric.reason_field:
        fields[metric.reasons_field] = queue.reasons
        if queue.newest:
            fields[metric.last_field] = _failure(queue.newest[0])
        if keep > 1:
            fields[metric.newest_field] = [_failure(f) for f in queue.newest]
    return fields


def _failure(failure: Failure) -> dict:
    return {"id": failure.id, "issue": failure.issue, "reason": failure.reason, "message": failure.message}


class _Entry:
    """One object of the document (the node, or one connection): its values and why others are missing."""

    def __init__(self, values: Optional[dict] = None):
        self.values: Dict[str, object] = values or {}
        self.failures: Dict[str, str] = {}
        self.kinds: Dict[str, type] = {}  # the class of each failure (AuthError, ConnectionNotFound...)
        self.asked = False  # a connection whose queues are read (collect's only leaves the others out)

    def as_dict(self, order) -> dict:
        values, failures = self.values, self.failures
        ordered = {k: values[k] for k in order if k in values}
        if failures:
            ordered["failures"] = {k: failures[k] for k in order if k in failures}
            ordered["failures"].update((k, v) for k, v in failures.items() if k not in ordered["failures"])
        return ordered


class Collection:
    """What one run found. Workers record into it until the deadline closes it; then it is final."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.node = _Entry()
        self.connections: Optional[List[_Entry]] = None  # None: the list itself could not be read
        self.lock = threading.Lock()
        self.closed = False

    def record(self, entry: _Entry, field: str, read: Callable[[], object],
               fields: Optional[Callable[[object], dict]] = None):
        """Run read() and keep its value (as the fields fields(value) gives, when given), or the reason it has
        none under field; returns the value (None on failure)."""
        kind: type = Exception
        try:
            value = read()
        except CheckError as exc:
            reason, kind = exc.message, type(exc)
        except Exception as exc:  # a bug of ours: this value is lost, not the run
            reason = f"internal error, please report it: {type(exc).__name__}: {exc}"
        else:
            with self.lock:
                if not self.closed and field != CONNECTIONS:
                    entry.values.update(fields(value) if fields else {field: value})
            return value
        with self.lock:
            if not self.closed:
                entry.failures[field] = reason
                entry.kinds[field] = kind
        return None

    def document(self) -> dict:
        """The JSON document `collect` prints and `send` pushes (see docs/collect.md)."""
        with self.lock:
            doc = self.node.as_dict(NODE_ORDER)
            if self.connections is not None:
                doc[CONNECTIONS] = [c.as_dict(CONNECTION_ORDER) for c in self.connections]
            if "failures" in doc:
                doc["failures"] = doc.pop("failures")  # last, after the values: easier to read
            return doc


def collect(node: Node, max_connections: int, clock: Callable[[], float] = time.monotonic,
            only: Optional[str] = None, keep: int = 1) -> Collection:
    """Read every value of the node: the ping request first, alone (it authenticates, and its time is the
    node's own), then the node's totals, its connection list and each connection's queues, max_connections
    requests at a time. Returns when all are read or the node's deadline has passed, whichever is first.

    only: the exact name of the one connection whose queues are read (the others are left out); keep: how
    many of the newest failures of each queue of failures to keep."""
    found = Collection(node.deadline.seconds)
    workers = Pool(max_connections)
    reads = node_reads(node)
    ping = ping_field(node)

    def submit(task: Callable[[], None]) -> None:
        workers.submit(lambda: found.closed or task())  # once the run is closed, nothing more is asked

    def read_node(field: str) -> Callable[[], None]:
        def run() -> None:
            started = clock()
            value = found.record(found.node, field, reads[field])
            if field == ping:
                with found.lock:
                    if not found.closed:
                        found.node.values["ping"] = 0 if value is None else 1
                        if value is not None:
                            found.node.values["response_time"] = round(clock() - started, 3)
            if field == CONNECTIONS and value is not None:
                asked = [entry for entry in found_connections(value) if only is None or entry.values["name"] == only]
                for entry in asked:
                    entry.asked = True
                queues = _Reads(asked)
                for _ in range(min(max_connections, len(queues))):
                    submit(lambda: read_queues(queues))
        return run

    def found_connections(listed: List[dict]) -> List[_Entry]:
        entries = [_Entry(dict(c)) for c in listed]
        with found.lock:
            if found.closed:
                return []
            found.connections = entries
        return entries

    def read_queues(queues: "_Reads") -> None:
        # One worker's share of the connections' queues, taken one at a time in the list's order: 10,000
        # connections are 60,000 reads, which queued up front as tasks took memory and, once the run was
        # closed, time to throw away.
        for entry, metric in iter(queues.next, None):
            if found.closed:
                return
            name = entry.values["name"]
            found.record(entry, metric.field_name, lambda: node.queue(metric, name, keep),
                         lambda queue: queue_fields(metric, queue, keep))

    submit(read_node(ping))
    if workers.wait(node.deadline):
        for field in reads:
            if field != ping:
                submit(read_node(field))
        workers.wait(_Sooner(node.deadline, found))
    _close(found, list(reads), ping)
    return found


# What presenting the collection takes after the reads stop (the document built, masked, compacted, printed), per
# connection: measured 25 µs, kept 40 so that 10,000 connections end within the timeout + 0.5 s on a busy machine.
PRESENTING_PER_CONNECTION = 40e-6


class _Sooner:
    """The run's deadline less the time presenting what was read will take, which grows with the connections."""

    def __init__(self, deadline, found: Collection):
        self.deadline, self.found = deadline, found

    def left(self) -> float:
        return self.deadline.left() - PRESENTING_PER_CONNECTION * len(self.found.connections or ())


class _Reads:
    """Each asked connection's queues in turn, handed out one at a time to whichever worker asks."""

    def __init__(self, entries: List[_Entry]):
        self.entries = entries
        self.taken = 0
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.entries) * len(CONNECTION_METRICS)

    def next(self) -> Optional[Tuple[_Entry, Metric]]:
        with self.lock:
            if self.taken >= len(self):
                return None
            i, self.taken = self.taken, self.taken + 1
        return self.entries[i // len(CONNECTION_METRICS)], CONNECTION_METRICS[i % len(CONNECTION_METRICS)]


def _close(found: Collection, fields: List[str], ping: str) -> None:
    """Make the result final: whatever is still missing ran out of time, and ping says why it is 0."""
    late = f"no complete answer within the timeout of {found.seconds:g} s"
    with found.lock:
        found.closed = True
        node = found.node
        for field in fields:
            if field not in node.values and field not in node.failures \
                    and not (field == CONNECTIONS and found.connections is not None):
                node.failures[field] = late
        if node.values.get("ping") != 1:
            node.values["ping"] = 0
            node.failures["ping"] = node.failures["response_time"] = node.failures.get(ping, late)
        # Refused credentials are not a node that is down: the templates tell the two apart by this field.
        node.values[CREDENTIALS_FIELD] = (ACCEPTED if node.values["ping"] == 1 else
                                          REFUSED if issubclass(node.kinds.get(ping, Exception), AuthError) else
                                          UNKNOWN_CREDENTIALS)
        queues = [m.field_name for m in CONNECTION_METRICS]
        for entry in found.connections or ():
            for queue in queues if entry.asked else ():
                if queue not in entry.values and queue not in entry.failures:
                    entry.failures[queue] = late
            if any(issubclass(kind, ConnectionNotFound) for kind in entry.kinds.values()):
                # The node's own answer that the other side removed it: whatever state the list still gives.
                entry.values["status"] = REMOVED
