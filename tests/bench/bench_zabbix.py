"""Benchmark: what one node's document costs Zabbix, through the server and through a proxy, on 6.0 and 7.0.

    sudo ZABBIX_STACK_DIR=/tmp/zx-bench .venv/bin/python tests/bench/bench_zabbix.py \\
        [--versions 6.0 7.0] [--connections 100 1000] [--size-only 5000] [--where server proxy] [--rounds 2] \\
        [--reference REV]

For each size, a simulated node of that many connections (the scenario of bench_collect.py: small queues, some
failures with reasons) is read once with `zabbix-exalate send` (caught by a loopback trapper). Its document is
then pushed as `send` pushes it (the same sender code), to a host of the "Exalate by Zabbix trapper" template monitored by the stack's server,
and to one monitored by its proxy (tests/support/zabbix_stack.py runs both). Once discovery has made the items and
one warm-up document has gone through, each round pushes the document and measures:

  stored    seconds from the push (Zabbix answered "processed") until the last of the document's values is in
            the server's history tables (PostgreSQL, polled every 0.1 s); through a proxy this includes the
            proxy forwarding them (DataSenderFrequency=1);
  preproc   CPU seconds of the preprocessing manager and workers of the daemon that preprocesses (the server,
            or the proxy), from /proc/<pid>/stat, threads included (7.0's workers are threads);
  daemon    CPU seconds of every process of that daemon (history syncers, LLD, trappers ...).

With --reference REV the trapper template of that git revision (its uuids and name changed so that both can be
imported side by side) runs too, on hosts of its own, rounds interleaved with the current template's; the table
then gives each figure's ratio reference / current. Figures are medians over the rounds. The machine is shared:
the ratios, measured in the same minutes, are what carries.

The document size is the agent templates' limit too: Zabbix 6.0's agent returns at most 512 KB.
"""
import argparse
import hashlib
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Dict, List, Optional, Tuple

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(ROOT / "tests" / "support")]

from bench_collect import NODE, scenario, start_simulator  # noqa: E402
from trapper import Trapper  # noqa: E402
from zabbix_stack import Stack, StackError  # noqa: E402
from zabbix_exalate.masking import Masker  # noqa: E402
from zabbix_exalate.metrics import CONNECTION_METRICS, REASON_KEY, SEND_KEY, STATUS_KEY  # noqa: E402
from zabbix_exalate.runtime import Deadline  # noqa: E402
from zabbix_exalate.zabbix.design import TRAPPER_TEMPLATE, BY_NAME, format_for  # noqa: E402
from zabbix_exalate.zabbix.export import template_xml  # noqa: E402
from zabbix_exalate.zabbix.sender import push, target  # noqa: E402

AGENT_LIMIT = 512 * 1024  # what Zabbix 6.0's agent returns at most
HISTORY = ("history", "history_uint", "history_str", "history_text", "history_log")
CURRENT = "current"
TICK = os.sysconf("SC_CLK_TCK")


def say(text: str) -> None:
    print(f"bench_zabbix: {text}", file=sys.stderr, flush=True)


# --- the documents ---------------------------------------------------------------------------------

def document(connections: int) -> str:
    """What `send` pushes for a simulated node of that many connections (caught by a loopback trapper: `collect`
    refuses a document over the agent's 512 KB, send has no such limit)."""
    with tempfile.TemporaryDirectory() as tmp, Trapper() as trapper:
        proc, config = start_simulator(tmp, scenario(connections))
        try:
            ran = subprocess.run(["zabbix-exalate", "--config", config, "--node", NODE, "--timeout", "300", "send",
                                  "--server", trapper.address, "--host", "bench"], capture_output=True, text=True,
                                 timeout=600)
        finally:
            os.killpg(proc.pid, 15)
            proc.wait()
    if ran.returncode != 0 or len(trapper.received) != 1:
        sys.exit(f"send failed ({ran.returncode}): {ran.stderr.strip()}")
    value = trapper.received[0]["value"]
    doc = json.loads(value)
    assert len(doc["connections"]) == connections and doc["ping"] == 1, value[:300]
    return value


def reasons(doc: str) -> int:
    """How many failure-reason items the document makes: one per connection, kind of failure and reason."""
    return sum(len(c.get(m.reasons_field) or {}) for c in json.loads(doc)["connections"]
               for m in CONNECTION_METRICS if m.reasons_field)


# --- the templates ---------------------------------------------------------------------------------

def reference_xml(rev: str, fmt: str) -> str:
    """The trapper template of a git revision, renamed, with uuids of its own: importable beside the current."""
    path = f"{BY_NAME[TRAPPER_TEMPLATE].path(fmt)}"
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], capture_output=True, text=True,
                          check=True).stdout

    def other(match) -> str:
        digest = hashlib.md5(f"{rev}:{match.group(1)}".encode()).digest()
        return f"<uuid>{uuid.UUID(bytes=digest, version=4).hex}</uuid>"
    text = re.sub(r"<uuid>([0-9a-f]{32})</uuid>", other, text)
    return text.replace(TRAPPER_TEMPLATE, template_name(rev))


def template_name(variant: str) -> str:
    return TRAPPER_TEMPLATE if variant == CURRENT else f"{TRAPPER_TEMPLATE} {variant}"


def import_xml(stack: Stack, source: str) -> None:
    both = {"createMissing": True, "updateExisting": True}
    full = {**both, "deleteMissing": True}
    rules = {"templates": both, "items": full, "triggers": full, "graphs": full, "discoveryRules": full,
             "valueMaps": full, "templateDashboards": full, "templateLinkage": {"createMissing": True},
             ("template_groups" if stack.version >= "7.0" else "groups"): {"createMissing": True}}
    stack.api("configuration.import", {"format": "xml", "source": source, "rules": rules})


# --- the stack's daemons ---------------------------------------------------------------------------

def daemon_pid(stack: Stack, where: str) -> int:
    pid = stack.status()[where]
    if not pid:
        sys.exit(f"the {where} of the Zabbix {stack.version} stack is not running")
    return pid


def cpu(pid: int) -> Tuple[float, float]:
    """(preprocessing, whole daemon) CPU seconds of the daemon whose main process is pid, children included."""
    preproc = whole = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = pathlib.Path(f"/proc/{entry}/stat").read_text()
            title = pathlib.Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(entry) != pid and int(fields[1]) != pid:  # fields[1]: the parent's pid
            continue
        seconds = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime: every thread of the process
        whole += seconds
        if "preprocessing" in title:
            preproc += seconds
    return preproc, whole


def stored(stack: Stack, hostid: str, since: int) -> int:
    """How many values of the host's items the server has in its history tables from the second since on."""
    union = " UNION ALL ".join(f"SELECT count(*) AS n FROM {t} h JOIN items i ON i.itemid=h.itemid "
                               f"WHERE i.hostid={int(hostid)} AND h.clock>={int(since)}" for t in HISTORY)
    ran = subprocess.run(stack._cmd([stack._pg_bin("psql"), "-At", "-h", stack.pg_dir, "-p", stack.db_port,
                                     "-U", "zabbix", "-d", "zabbix", "-c", f"SELECT sum(n) FROM ({union}) s"]),
                         capture_output=True, text=True)
    if ran.returncode != 0:
        sys.exit(f"psql failed: {ran.stderr.strip()}")
    return int(ran.stdout.strip() or 0)


# --- one host ------------------------------------------------------------------------------------

class Host:
    """A host of one template variant, monitored by the server or the proxy, fed one document."""

    def __init__(self, stack: Stack, where: str, connections: int, variant: str, group_id: str):
        self.stack, self.where, self.connections, self.variant = stack, where, connections, variant
        self.name = f"bench-{where}-{connections}-{variant}".replace(".", "-")
        (template,) = stack.api("template.get", {"filter": {"host": template_name(variant)}, "output": ["templateid"]})
        old = stack.api("host.get", {"filter": {"host": self.name}, "output": ["hostid"]})
        if old:
            stack.api("host.delete", [h["hostid"] for h in old])
        monitored = {}
        if where == "proxy":
            v7 = stack.version >= "7.0"
            (proxy,) = stack.api("proxy.get", {"filter": {"name" if v7 else "host": stack.proxy_name},
                                               "output": ["proxyid"]})
            monitored = {"monitored_by": 1, "proxyid": proxy["proxyid"]} if v7 else {"proxy_hostid": proxy["proxyid"]}
        self.hostid = stack.api("host.create", {
            "host": self.name, "groups": [{"groupid": group_id}], "templates": [{"templateid": template["templateid"]}],
            "macros": [{"macro": "{$EXALATE.NODE}", "value": NODE}], **monitored})["hostids"][0]
        port = stack.proxy_port if where == "proxy" else stack.server_port
        self.target = target(f"127.0.0.1:{port}", self.name, None)
        self.expected = 0  # values a document stores, once discovery is done (learned from the warm-up)

    def push(self, doc: str) -> float:
        try:
            answer = push(doc, SEND_KEY, self.target, Deadline(120), Masker())
        except Exception as exc:
            sys.exit(f"{self.name}: {exc}")
        if "processed: 1" not in answer and "accepted" not in answer:
            sys.exit(f"{self.name}: Zabbix did not take the document: {answer}")
        return time.time()

    def items(self) -> int:
        return int(self.stack.api("item.get", {"hostids": self.hostid, "countOutput": True}))

    def discover(self, doc: str, seconds: float = 1800) -> None:
        """Push until discovery begins (a proxy refuses a host it does not know yet), then wait until it has made
        the items: a count that holds still. Few documents: more would queue up behind a slow preprocessing."""
        began, last, still = time.monotonic(), -1, 0
        template_items = self.items()
        while self.items() == template_items:  # a proxy may take the value before it has the discovery rule
            if time.monotonic() - began > 300:
                rules = self.stack.api("discoveryrule.get", {"hostids": self.hostid, "output": ["name", "error"]})
                errors = "; ".join(f"{r['name']}: {r['error']}" for r in rules if r["error"]) or "no rule has an error"
                sys.exit(f"{self.name}: nothing discovered after 300 s ({errors})")
            try:
                self.push(doc)
            except SystemExit as exc:
                say(f"{self.name}: {exc}")
            time.sleep(15)
        while time.monotonic() - began < seconds:
            time.sleep(10)
            count = self.items()
            # Both rules' items, whichever comes first (through a 6.0 proxy, the connections' came minutes after the
            # failure reasons'; on 6.0's server, the reasons' after the connections').
            found = {key: int(self.stack.api("item.get", {"hostids": self.hostid, "countOutput": True,
                                                          "search": {"key_": key + "["}}))
                     for key in (STATUS_KEY, REASON_KEY)}
            done = found == {STATUS_KEY: self.connections, REASON_KEY: reasons(doc)}
            still = still + 1 if count == last and done else 0
            last = count
            if still >= 2:
                say(f"{self.name}: {count} items after {time.monotonic() - began:.0f} s")
                return
        sys.exit(f"{self.name}: discovery did not settle within {seconds:g} s ({last} items)")

    def round(self, doc: str, timeout: float) -> Optional[Dict[str, float]]:
        """One document: seconds to the last value stored, values stored, CPU seconds. None if it never settled."""
        daemon = daemon_pid(self.stack, self.where)
        time.sleep(max(0.0, 1.2 - (time.time() % 1)))  # a second of its own: no earlier value counts
        since = int(time.time())
        before = cpu(daemon)
        began = time.time()
        self.push(doc)
        arrived = time.time()
        count, last_change, last_count = 0, arrived, -1
        while time.time() - arrived < timeout:
            count = stored(self.stack, self.hostid, since)
            if count != last_count:
                last_count, last_change = count, time.time()
            if self.expected and count >= self.expected:
                break
            if not self.expected and count and time.time() - last_change > 15:
                break  # the warm-up: no new value for 15 s
            time.sleep(0.1)
        after = cpu(daemon)
        if self.expected and count < self.expected:
            say(f"{self.name}: {count} of {self.expected} values after {timeout:g} s")
            return None
        if not self.expected:
            self.expected = count
        return {"stored": last_change - began, "values": count, "preproc": after[0] - before[0],
                "daemon": after[1] - before[1]}


# --- the run -------------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", nargs="+", default=["6.0", "7.0"])
    parser.add_argument("--connections", nargs="+", type=int, default=[100, 1000])
    parser.add_argument("--where", nargs="+", default=["server", "proxy"], choices=["server", "proxy"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size-only", nargs="*", type=int, default=[5000], metavar="CONNECTIONS",
                        help="sizes whose document is only made and measured, not fed")
    parser.add_argument("--reference", metavar="REV", help="a git revision whose trapper template runs beside")
    parser.add_argument("--documents", metavar="DIR", help="keep the documents there, and reuse them")
    parser.add_argument("--timeout", type=float, default=300, help="seconds a document may take to be stored")
    args = parser.parse_args(argv)
    os.environ["PATH"] = f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"  # the venv's zabbix-exalate
    variants = [CURRENT] + ([args.reference] if args.reference else [])

    docs = {}
    for n in sorted(set(args.connections) | set(args.size_only)):
        began = time.monotonic()
        cached = pathlib.Path(args.documents, f"{n}.json") if args.documents else None
        docs[n] = cached.read_text() if cached and cached.exists() else document(n)
        if cached:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(docs[n])
        say(f"{n} connections: a document of {len(docs[n]) / 1024:.0f} KB, collected in "
            f"{time.monotonic() - began:.1f} s")

    rows = []
    for version in args.versions:
        stack = Stack(version=version)
        if not all(stack.status().values()):
            say(f"starting the Zabbix {version} stack in {stack.state_dir}")
            stack.start()
        fmt = format_for(stack.zabbix_version)
        import_xml(stack, template_xml(TRAPPER_TEMPLATE, fmt))
        if args.reference:
            import_xml(stack, reference_xml(args.reference, fmt))
        found = stack.api("hostgroup.get", {"filter": {"name": "Exalate bench"}, "output": ["groupid"]})
        group_id = found[0]["groupid"] if found else stack.api("hostgroup.create", {"name": "Exalate bench"})["groupids"][0]
        left = stack.api("host.get", {"groupids": group_id, "output": ["hostid"]})  # an interrupted run's
        if left:
            stack.api("host.delete", [h["hostid"] for h in left])
        for n in args.connections:
            for where in args.where:
                hosts = [Host(stack, where, n, variant, group_id) for variant in variants]
                try:
                    for host in hosts:
                        host.discover(docs[n])
                    # The warm-up: the first document after discovery also stores the first value of the items that
                    # keep only changes. The second tells how many values a document stores: the same count for
                    # every variant (the same items, the same values).
                    for host in hosts:
                        host.round(docs[n], args.timeout)
                    hosts[0].expected = 0
                    hosts[0].round(docs[n], args.timeout)
                    for host in hosts[1:]:
                        host.expected = hosts[0].expected
                    results: Dict[str, List[dict]] = {v: [] for v in variants}
                    for r in range(args.rounds):
                        for host in (hosts if r % 2 == 0 else hosts[::-1]):  # interleaved
                            got = host.round(docs[n], args.timeout)
                            say(f"Zabbix {stack.zabbix_version} {where} {n} connections {host.variant}: {got}")
                            if got:
                                results[host.variant].append(got)
                    for host in hosts:
                        rows.append((stack.zabbix_version, where, n, host.variant, len(docs[n]), host.expected,
                                     results[host.variant]))
                finally:
                    stack.api("host.delete", [h.hostid for h in hosts])
    report(rows, variants, args)
    for n in sorted(set(args.size_only) - set(args.connections)):
        print(f"{n} connections: a document of {len(docs[n]) / 1024:.0f} KB (not fed), "
              f"{'within' if len(docs[n]) <= AGENT_LIMIT else 'over'} the agent's 512 KB")
    return 0


def median(results: List[dict], field: str) -> Optional[float]:
    return statistics.median(r[field] for r in results) if results else None


def report(rows, variants, args) -> None:
    print(f"\nOne node's document pushed as `send` does; medians of {args.rounds} rounds "
          f"(nproc {os.cpu_count()}, load {os.getloadavg()[0]:.1f}).")
    print(f"{'Zabbix':8} {'via':6} {'conns':>5} {'template':10} {'document':>9} {'<512KB':>6} {'values':>6} "
          f"{'stored s':>8} {'preproc CPU-s':>13} {'daemon CPU-s':>12}")
    by_key = {}
    for version, where, n, variant, size, values, results in rows:
        by_key[(version, where, n, variant)] = results
        cells = [median(results, f) for f in ("stored", "preproc", "daemon")]
        shown = [f"{c:.2f}" if c is not None else f">{args.timeout:g}" for c in cells]
        print(f"{version:8} {where:6} {n:>5} {variant[:10]:10} {size / 1024:>6.0f} KB {'yes' if size <= AGENT_LIMIT else 'no':>6} "
              f"{values:>6} {shown[0]:>8} {shown[1]:>13} {shown[2]:>12}")
    if len(variants) > 1:
        print(f"\nRatios {variants[1]} / {CURRENT} (same rounds, interleaved):")
        for (version, where, n, variant), results in by_key.items():
            if variant != CURRENT:
                continue
            ref = by_key.get((version, where, n, variants[1]))
            ratios = []
            for field in ("stored", "preproc", "daemon"):
                a, b = median(ref or [], field), median(results, field)
                ratios.append(f"{a / b:.1f}x" if a and b else "n/a")
            print(f"{version:8} {where:6} {n:>5}  stored {ratios[0]:>7}  preproc {ratios[1]:>7}  daemon {ratios[2]:>7}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StackError as exc:
        sys.exit(f"bench_zabbix: {exc}")
