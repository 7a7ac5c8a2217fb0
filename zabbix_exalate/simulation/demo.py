"""The demo: the bundled sample node, simulated on loopback, seen through every check."""
import os
import tempfile
import time
from typing import List, Optional, Tuple

from ..checks import discovery, measure, ping
from ..collect import collect
from ..config import load_node
from ..errors import CheckError
from ..exalate.api import Node
from ..exalate.transport import pooled_session
from ..metrics import CONNECTION_METRICS, NODE_METRICS
from ..runtime import Deadline
from ..status import inert, padded, queue_label, shown_width, status_text
from .simulator import Simulator, SimulatorServer, sample_scenario_path

STUCK_GAP = 2.5  # seconds between the demo's two polls: the busy connection's heads move in that time

# What the demo shows going wrong, once the healthy picture is printed.
FAULTS = (
    ("the node's database is down", {"path": "4.0/cmonitor", "status": 503}, "errors", None),
    ("a proxy answers with its login page", {"path": "4.0/syncevents", "html": True}, "outgoing", None),
    ("the node is too slow", {"path": "4.0/syncrequests", "delay": 1.5}, "incoming", None),
    ("a body cut off mid-way", {"path": "2.4/relations/AllContent/syncevents/syncrequests", "truncate": True},
     "sync-requests", "AllContent"),
)


def run_demo(scenario: Optional[str] = None) -> str:
    """What the demo prints, for the bundled sample node (or the scenario file given). Every word the node
    chose is shown inert (status.inert), as `status` shows it."""
    simulator = Simulator(scenario or sample_scenario_path())
    with SimulatorServer(simulator) as server, tempfile.TemporaryDirectory(prefix="zabbix-exalate-demo-") as tmp:
        path = os.path.join(tmp, "zabbix_exalate.conf")
        server.write_config(path, "demo")
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"token_cache = {tmp}\ntimeout = 1\n")
        cfg = load_node(path, "demo")

        def node() -> Node:
            return Node(cfg, Deadline(cfg.timeout))

        about = inert(simulator.scenario.get("description", "sample scenario"))
        out = [f"Exalate node simulated at {server.url} ({about})",
               "Configuration: section [demo] of a temporary file (mode 0600), as in /etc/zabbix/zabbix_exalate.conf",
               "", "Node checks"]
        value, why = ping(node())
        rows = [("ping", "Node reachable", str(value))]
        rows += [(m.command, m.name, _try(lambda m=m: measure(node(), m.command))) for m in NODE_METRICS]
        out += _table([("command", "what", "value")], rows)

        connections = discovery(node())
        out += ["", f"Connections found by discover: {len(connections)}"]
        # The queues' columns headed as `status` heads them: two words of each queue's name.
        header = [("", "") + tuple(m.heading[0] for m in CONNECTION_METRICS),
                  ("connection", "status") + tuple(m.heading[1] for m in CONNECTION_METRICS)]
        table, failures = [], []
        for row in connections:
            cells = []
            for metric in CONNECTION_METRICS:
                try:
                    cells.append(str(measure(node(), metric.command, row["{#CONNECTION.KEY}"])))
                except CheckError as exc:
                    cells.append(f"exit {exc.exit_code}")
                    failures.append((f"{metric.command} '{inert(row['{#CONNECTION}'])}'", exc.message))
            table.append((inert(row["{#CONNECTION}"]), inert(row["{#CONNECTION.STATUS}"]), *cells))
        out += _table(header, table)
        reason = "NO_ISSUE_TO_CONNECT_TO"
        out += ["", f"Failed syncs of 'ADO <> Jira Prod' with errorReason {reason}: "
                    f"{_try(lambda: measure(node(), 'error-responses', 'ADO <> Jira Prod', reason))}"]
        seen = set()
        out += ["", "Checks that could not tell print no number; this is what Zabbix shows as the reason:"]
        for what, message in failures:
            if message not in seen:
                seen.add(message)
                out.append(f"  {what}: {message}")

        out += ["", "When things go wrong (faults injected into the simulator):"]
        for title, fault, command, connection in FAULTS:
            simulator.update(faults=[fault])
            out.append(f"  {title}: {command} -> {_try(lambda: measure(node(), command, connection))}")
        simulator.update(faults=[])
        out += ["", "The whole node in one run (`collect`, as the \"Exalate by Zabbix agent\" template reads it; "
                    "`status` shows it so):", ""]
        session = pooled_session(cfg.max_connections)

        def poll() -> dict:
            return collect(Node(cfg, Deadline(cfg.timeout), session=session), cfg.max_connections).document()

        first = poll()
        out += ["  " + line for line in status_text(first, "demo").splitlines()]
        time.sleep(STUCK_GAP)
        out += ["", f"Is each queue moving? The oldest event of each queue, {STUCK_GAP:g} s later (the templates call "
                    "a queue stuck when its oldest event has not moved for {$EXALATE.STUCK.PERIOD}, 30m by default):"]
        out += ["  " + line for line in _moving(first, poll())]
        out += ["", "Try it by hand:",
                "  zabbix-exalate simulate --port 8080 --write-config ./demo.conf      # in one terminal",
                "  zabbix-exalate --config ./demo.conf discover                        # in another",
                "  zabbix-exalate --config ./demo.conf sync-requests 'ADO <> Jira Prod'",
                "  zabbix-exalate --config ./demo.conf status",
                "  zabbix-exalate --config ./demo.conf status --connection 'ADO <> Jira Prod'"]
    return "\n".join(out)


def _moving(before: dict, after: dict) -> List[str]:
    """Per connection, which of its queues of work in flight moved between two polls and which did not."""
    lines = []
    now = {c["name"]: c for c in after.get("connections") or ()}
    for c in before.get("connections") or ():
        later = now.get(c["name"], {})
        if c.get("status") == "DEACTIVATED":
            lines.append(f"{inert(c['name'])}: deactivated, its queues wait by design")
            continue
        seen = []
        for m in CONNECTION_METRICS:
            if m.in_flight and c.get(m.oldest_field) is not None:
                old, new = c[m.oldest_field], later.get(m.oldest_field)
                what = queue_label(m)
                seen.append(f"{what} moved {inert(old)} -> {inert(new)}" if new != old
                            else f"{what} STUCK at {inert(old)}")
        if seen:
            lines.append(f"{inert(c['name'])}: " + ", ".join(seen))
    return lines


def _try(run) -> str:
    try:
        return str(run())
    except CheckError as exc:
        return f"no value (exit {exc.exit_code}): {exc.message}"


def _table(headers: List[Tuple[str, ...]], rows: List[Tuple[str, ...]]) -> List[str]:
    """Columns of inert text (see run_demo) under one or more header lines, measured as a terminal shows them."""
    widths = [max(shown_width(str(r[i])) for r in (*headers, *rows)) for i in range(len(headers[0]))]
    line = lambda r: "  " + "  ".join(padded(str(c), w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return [line(h) for h in headers] + [line(r) for r in rows]
