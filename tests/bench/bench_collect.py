"""Benchmark: one poll of a node, three ways side by side: the per-check template, one `collect`, and curl.

    python3 tests/bench/bench_collect.py [--rounds N] [--connections N] [--agents N] [--timeout SECONDS]

A node with 50 connections, each with a few small queue elements (so that what is measured is the
cost of asking, not of parsing), is served by the simulator in its own process and session. Each
round then polls it three ways, in an order that changes from round to round so that machine noise
hits all three alike, collect and curl always one right after the other (their ratio is the fragile one):

  per-check template   4 + 6 x connections checks, each its own process started through /bin/sh from
                       the UserParameter lines, as the agent runs them, at most --agents at a time
                       (the classic agent's StartAgents);
  collect              the one-poll template's master item: one `zabbix-exalate collect` process;
  curl                 one curl process fetching the same URLs over one kept-alive connection.

CPU is user + system seconds of the processes and their children, each read from its own wait4()
and checked against getrusage(RUSAGE_CHILDREN), so the simulator's own work is never counted.
Every value each way returns is checked against the scenario; the benchmark stops at the first
that differs. Figures are the median (and min) over the rounds; each ratio is the median of the
rounds' ratios, and the ratios are what carries from one machine to another. Exits 1 when a target
is missed.
"""
import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

from zabbix_exalate.metrics import CONNECTION_METRICS, CONNECTIONS_PATH, COLLECT_KEY, NODE_METRICS, PING_KEY
from zabbix_exalate.exalate.names import key_form
from zabbix_exalate.metrics import API_ROOT
from zabbix_exalate.zabbix.userparameters import userparameters

USER, PASSWORD = "bench", "bench-password"
SECRET = "bench-shared-secret-of-32-bytes!!"
NODE = "default"
CPU_TARGET = 50    # collect uses at least this many times less CPU than the per-check poll
WALL_TARGET = 5    # collect takes at most this many times curl's wall time

KINDS = ("per-check template", "collect", "curl")
ORDERS = (KINDS, ("curl", "collect", "per-check template"), ("collect", "curl", "per-check template"),
          ("per-check template", "curl", "collect"))


def scenario(connections: int) -> dict:
    """A node like a busy production one, but with queues of a few small elements each."""
    return {
        "credentials": {"jwt_secret": SECRET, "user": USER, "password": PASSWORD},
        "errors": 3, "outgoing": 12, "incoming": 5,
        "connections": [
            {"name": f"Jira Prod <> ADO {i:02d}", "id": 100 + i,
             "status": "DEACTIVATED" if i % 10 == 9 else "ACTIVE", "remote": f"https://remote{i}.example",
             "payload_bytes": 64,
             "queues": {m.command: (i * 7 + j * 3) % 5 for j, m in enumerate(CONNECTION_METRICS)}}
            for i in range(connections)],
    }


# --- processes: started without a Python in between, each reaped on its own ----------------------

def spawn(argv: List[str], env: dict, stdout: str, stdin: str = os.devnull) -> int:
    actions = [(os.POSIX_SPAWN_OPEN, 0, stdin, os.O_RDONLY, 0),
               (os.POSIX_SPAWN_OPEN, 1, stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
               (os.POSIX_SPAWN_OPEN, 2, stdout + ".err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)]
    return os.posix_spawnp(argv[0], argv, env, file_actions=actions)


class Runs:
    """Runs commands at most `width` at a time; wall seconds, CPU seconds and each one's exit status."""

    def __init__(self, simulator_pid: int):
        self.simulator_pid = simulator_pid

    def run(self, jobs: List[Tuple[List[str], dict, str, str]], width: int) -> Tuple[float, float, Dict[str, int]]:
        before = _children_cpu()
        cpu, codes, running = 0.0, {}, {}
        pending = list(reversed(jobs))
        started = time.perf_counter()
        while pending or running:
            while pending and len(running) < width:
                argv, env, stdout, stdin = pending.pop()
                running[spawn(argv, env, stdout, stdin)] = stdout
            pid, status, usage = os.wait4(-1, 0)
            if pid == self.simulator_pid:
                sys.exit(f"the simulator stopped (exit status {os.waitstatus_to_exitcode(status)})")
            cpu += usage.ru_utime + usage.ru_stime
            codes[running.pop(pid)] = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        counted = _children_cpu() - before
        if abs(counted - cpu) > 0.01:
            sys.exit(f"CPU does not add up: the runs used {cpu:.3f} s, RUSAGE_CHILDREN grew by {counted:.3f} s")
        return wall, counted, codes


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def start_simulator(tmp: str, scene: dict) -> Tuple[subprocess.Popen, str]:
    """`zabbix-exalate simulate` in a session of its own; returns it and its configuration file."""
    path, config, log = (os.path.join(tmp, name) for name in ("scenario.json", "node.conf", "simulator.log"))
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(scene, handle)
    with open(log, "w") as err:
        proc = subprocess.Popen(["zabbix-exalate", "simulate", "--port", "0", "--scenario", path,
                                 "--write-config", config, "--node", NODE],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
    deadline = time.monotonic() + 30
    while "listening on" not in open(log).read():
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"the simulator did not start: {open(log).read().strip()}")
        time.sleep(0.05)
    return proc, config


def node_url(config: str) -> str:
    import configparser
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(config)
    return parser[NODE]["url"]


# --- the three ways to poll, and what each must return ----------------------------------------------

def agent_command(key: str, *params: str) -> List[str]:
    """The command the agent runs for key[params]: its UserParameter line, $1..$9 filled in, through sh."""
    line = dict(userparameters())[key]
    return ["/bin/sh", "-c", re.sub(r"\$([1-9])", lambda m: (params + ("",) * 9)[int(m.group(1)) - 1], line)]


def per_check_jobs(scene: dict, env: dict, out: str) -> Tuple[list, Dict[str, str]]:
    """The per-check template's poll: (jobs, the value each must print)."""
    jobs, expected = [], {}

    def add(tag: str, value, key: str, *params: str) -> None:
        stdout = os.path.join(out, f"{len(jobs):04d}.out")
        jobs.append((agent_command(key, *params), env, stdout, os.devnull))
        expected[stdout] = (tag, str(value))

    add("ping", 1, PING_KEY, NODE)
    for m in NODE_METRICS:
        add(m.command, scene[m.command], m.key, NODE)
    for c in scene["connections"]:
        for m in CONNECTION_METRICS:
            add(f"{m.command} {c['name']}", c["queues"][m.command], m.key, NODE, key_form(c["name"]))
    return jobs, expected


def check_per_check(expected: Dict[str, Tuple[str, str]], codes: Dict[str, int]) -> None:
    for stdout, (tag, value) in expected.items():
        printed = open(stdout).read()
        if codes[stdout] or printed != value + "\n":
            sys.exit(f"per-check template: {tag}: exit {codes[stdout]}, printed {printed!r}, expected {value}; "
                     f"stderr: {open(stdout + '.err').read().strip()}")


def check_collect(scene: dict, stdout: str, code: int) -> None:
    printed = open(stdout).read()
    problem = "" if code == 0 else f"exit status {code}"
    try:
        doc = json.loads(printed)
    except ValueError as exc:
        doc, problem = {}, problem or f"not JSON ({exc})"
    if not problem and printed.count("\n") != 1:
        problem = "not one line"
    if not problem:
        want = {"ping": 1, **{m.command: scene[m.command] for m in NODE_METRICS},
                "connections": [{"name": c["name"], "key": key_form(c["name"]), "id": c["id"], "status": c["status"],
                                 **{m.field_name: c["queues"][m.command] for m in CONNECTION_METRICS}}
                                for c in scene["connections"]]}
        got = {k: doc.get(k) for k in want}
        got["connections"] = [{k: c.get(k) for k in want["connections"][0]} for c in doc.get("connections") or []]
        failures = [doc.get("failures")] + [c.get("failures") for c in doc.get("connections") or []]
        if any(failures):
            problem = f"failures: {[f for f in failures if f]}"
        elif not isinstance(doc.get("response_time"), (int, float)):
            problem = f"response_time is {doc.get('response_time')!r}"
        elif got != want:
            wrong = [k for k in want if got[k] != want[k]]
            problem = f"values differ from the scenario's in {wrong}"
    if problem:
        sys.exit(f"collect: {problem}\nstdout: {printed[:2000]}\nstderr: {open(stdout + '.err').read().strip()}")


def curl_urls(url: str, scene: dict) -> Tuple[List[str], List[str]]:
    """What collect reads: the node's figures and its connection list (4.0), each connection's queues (2.4)."""
    root = url + API_ROOT
    node = [root + m.path for m in NODE_METRICS] + [root + CONNECTIONS_PATH]
    queues = [root + m.path.replace("{connection}", key_form(c["name"]))
              for c in scene["connections"] for m in CONNECTION_METRICS]
    return node, queues


def curl_config(node: List[str], queues: List[str], path: str) -> int:
    """curl's configuration, read on stdin: the secrets stay off the command line. Returns the URL count."""
    import jwt  # minted as zabbix_exalate/auth.py does
    token = jwt.encode({"iss": "EXALATE", "user": "", "exp": int(time.time()) + 86400}, SECRET, algorithm="HS256")
    each = 'silent\nshow-error\nfail\nwrite-out = "%{http_code} %{num_connects}\\n"\n'
    lines = [each, f'user = "{USER}:{PASSWORD}"\n']
    lines += [f'url = "{u}"\noutput = "/dev/null"\n' for u in node]
    lines += ["next\n", each, f'header = "X-exalate-jwt: {token}"\n']  # "next": these options for the rest
    lines += [f'url = "{u}"\noutput = "/dev/null"\n' for u in queues]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(lines))
    return len(node) + len(queues)


def check_curl(stdout: str, code: int, count: int) -> None:
    lines = open(stdout).read().split()
    statuses, connects = lines[0::2], sum(int(n) for n in lines[1::2])
    if code or statuses != ["200"] * count or connects != 1:
        sys.exit(f"curl: exit {code}, {statuses.count('200')} of {count} answers were 200, {connects} connections "
                 f"made (one wanted); stderr: {open(stdout + '.err').read().strip()}")


# --- the benchmark ------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--agents", type=int, default=3, help="checks at a time, as the agent's StartAgents")
    parser.add_argument("--timeout", type=float, default=30,
                        help="the node's timeout: a busy machine should slow the figures down, not stop the run")
    args = parser.parse_args()

    scene = scenario(args.connections)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        simulator, config = start_simulator(tmp, scene)
        with open(config, "a", encoding="utf-8") as handle:
            handle.write(f"timeout = {args.timeout:g}\n")
        try:
            results = measure(args, scene, tmp, config, simulator.pid)
        finally:
            simulator.terminate()
            simulator.wait(10)
    results["load"] = load
    report(args, results)


def measure(args, scene: dict, tmp: str, config: str, simulator_pid: int) -> Dict[str, Dict[str, list]]:
    cache = os.path.join(tmp, "cache")
    os.mkdir(cache, 0o700)
    # The agent's environment: the configuration found through the variable, the token cache its own.
    env = {**os.environ, "ZABBIX_EXALATE_CONFIG": config, "XDG_CACHE_HOME": cache}
    runs = Runs(simulator_pid)
    out = os.path.join(tmp, "out")
    os.mkdir(out)
    checks, expected = per_check_jobs(scene, env, out)
    collect_out = os.path.join(tmp, "collect.out")
    collect_job = (agent_command(COLLECT_KEY, NODE, ""), env, collect_out, os.devnull)
    curl_out, curl_in = os.path.join(tmp, "curl.out"), os.path.join(tmp, "curl.conf")
    count = curl_config(*curl_urls(node_url(config), scene), curl_in)
    curl_job = (["curl", "-K", "-"], env, curl_out, curl_in)

    def per_check():
        wall, cpu, codes = runs.run(checks, args.agents)
        check_per_check(expected, codes)
        return wall, cpu

    def collect():
        wall, cpu, codes = runs.run([collect_job], 1)
        check_collect(scene, collect_out, codes[collect_out])
        return wall, cpu

    def curl():
        wall, cpu, codes = runs.run([curl_job], 1)
        check_curl(curl_out, codes[curl_out], count)
        return wall, cpu

    ways = dict(zip(KINDS, (per_check, collect, curl)))
    # Not counted: the first token is minted and cached, as it is once on a running agent.
    runs.run([checks[-1]], 1)
    collect()
    curl()
    results = {kind: {"wall": [], "cpu": []} for kind in KINDS}
    for n in range(args.rounds):
        order = ORDERS[n % len(ORDERS)]
        for kind in order:
            wall, cpu = ways[kind]()
            results[kind]["wall"].append(wall)
            results[kind]["cpu"].append(cpu)
        print(f"round {n + 1}/{args.rounds}: " + ", ".join(
            f"{kind} {results[kind]['cpu'][-1]:.3f} CPU-s {results[kind]['wall'][-1]:.3f} s" for kind in order),
            file=sys.stderr, flush=True)
    results["per-check template"]["processes"] = len(checks)
    results["curl"]["urls"] = count
    return results


def report(args, results) -> None:
    med = {k: {m: statistics.median(results[k][m]) for m in ("wall", "cpu")} for k in KINDS}
    low = {k: {m: min(results[k][m]) for m in ("wall", "cpu")} for k in KINDS}
    processes, urls = results["per-check template"]["processes"], results["curl"]["urls"]
    labels = {"per-check template": f"per-check template ({processes} processes, {args.agents} at a time)",
              "collect": "zabbix-exalate collect (1 process)",
              "curl": f"curl, {urls} URLs over 1 kept-alive connection"}
    print(f"One poll of a node with {args.connections} connections, median (min) of {args.rounds} round(s)")
    print(f"  machine: {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, "
          f"Python {platform.python_version()}, load average {results['load'][0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after")
    print(f"  {'':<50}{'CPU seconds':^22}{'wall seconds':^22}".rstrip())
    for kind in KINDS:
        print((f"  {labels[kind]:<50}" + "".join(f"{med[kind][m]:>11.3f} {f'({low[kind][m]:.3f})':<10}"
                                                 for m in ("cpu", "wall"))).rstrip())
    print(f"  per check: {med['per-check template']['cpu'] / processes:.3f} CPU-s; "
          f"per request of curl: {med['curl']['wall'] / urls * 1000:.2f} ms wall")
    def ratio(kind: str, measure: str, other: str) -> float:
        return statistics.median(a / b for a, b in zip(results[kind][measure], results[other][measure]))

    cpu_ratio, wall_ratio = ratio("per-check template", "cpu", "collect"), ratio("collect", "wall", "curl")
    cpu_ok, wall_ok = cpu_ratio >= CPU_TARGET, wall_ratio <= WALL_TARGET
    print()
    print(f"  CPU  per-check template / collect = {cpu_ratio:7.1f}x   target >= {CPU_TARGET}x   "
          f"{'PASS' if cpu_ok else 'FAIL'}")
    print(f"  wall collect / curl               = {wall_ratio:7.1f}x   target <= {WALL_TARGET}x    "
          f"{'PASS' if wall_ok else 'FAIL'}")
    print()
    print(f"Summary: polling a node with {args.connections} connections, the per-check template runs {processes} "
          f"processes using {med['per-check template']['cpu']:.1f} CPU-s ({med['per-check template']['wall']:.1f} s "
          f"with {args.agents} agent processes); one `collect` uses {med['collect']['cpu']:.2f} CPU-s "
          f"({cpu_ratio:.0f}x less) in {med['collect']['wall']:.2f} s ({wall_ratio:.1f}x curl's "
          f"{med['curl']['wall']:.2f} s over one kept-alive connection) [median of {args.rounds} round(s), "
          f"{os.cpu_count()} CPUs].")
    sys.exit(0 if cpu_ok and wall_ok else 1)


if __name__ == "__main__":
    main()
