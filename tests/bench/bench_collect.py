"""Benchmark: one poll of a node, side by side: the per-check template, one `collect` (this checkout's and a
reference checkout's), Python's own start-up, and curl.

    python3 tests/bench/bench_collect.py [--rounds N] [--connections N] [--agents N] [--timeout SECONDS]
                                         [--reference PATH] [--without-per-check]

A node with 50 connections, each with a few small queue elements (so that what is measured is the
cost of asking, not of parsing), is served by the simulator in its own process and session. Each
round then runs each way once, in an order that changes from round to round so that machine noise
hits them alike:

  per-check template   4 + 6 x connections checks, each its own process started through /bin/sh from
                       the UserParameter lines, as the agent runs them, at most --agents at a time
                       (the classic agent's StartAgents);
  collect              the one-poll template's master item: one `zabbix-exalate collect` process;
  curl                 one curl process fetching the same URLs over one kept-alive connection;
  reference collect    with --reference PATH: the same `collect` command, run on the code of another checkout
                       (PYTHONPATH=PATH; e.g. `git archive main | tar -x -C /tmp/ref`): before and after, in one
                       run;
  python start-up      `python -c "import requests"` on collect's interpreter: the floor no change to our
                       code can go below.

--without-per-check leaves the per-check template out (a minute a round, on 2 cores).

CPU is user + system seconds of the processes and their children, each read from its own wait4()
and checked against getrusage(RUSAGE_CHILDREN), so the simulator's own work is never counted.
Every value each way returns is checked against the scenario; the benchmark stops at the first
that differs. Figures are the median (and min) over the rounds; each ratio is the median of the
rounds' ratios, and the ratios are what carries from one machine to another. With a reference, the
two `collect`s must print the same document (its response_time aside). Exits 1 when a target is missed.
"""
import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
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
CPU_SECONDS = 0.3  # and at most this many CPU seconds for a node of 50 connections (issue 18)
WALL_TARGET = 3    # collect takes at most this many times curl's wall time

PER_CHECK, COLLECT, REFERENCE, CURL, PYTHON = ("per-check template", "collect", "reference collect", "curl",
                                               "python start-up")


def orders(kinds: List[str], rounds: int) -> List[List[str]]:
    """Each round's order: the quick ways rotated by one each round (each takes every place in turn, so that
    machine noise hits them alike), reversed every other lap; the per-check template first and last in turn."""
    quick = [k for k in kinds if k != PER_CHECK]
    found = []
    for n in range(rounds):
        order = quick[n % len(quick):] + quick[:n % len(quick)]
        if n // len(quick) % 2:
            order.reverse()
        if PER_CHECK in kinds:
            order = [PER_CHECK] + order if n % 2 == 0 else order + [PER_CHECK]
        found.append(order)
    return found


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


def check_collect(scene: dict, stdout: str, code: int, kind: str = COLLECT) -> None:
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
        sys.exit(f"{kind}: {problem}\nstdout: {printed[:2000]}\nstderr: {open(stdout + '.err').read().strip()}")


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
    parser.add_argument("--reference", metavar="PATH", help="a checkout whose collect is measured beside this one's")
    parser.add_argument("--without-per-check", action="store_true", help="leave the per-check template out")
    args = parser.parse_args()

    kinds = ([] if args.without_per_check else [PER_CHECK]) + [COLLECT] + ([REFERENCE] if args.reference else []) \
        + [CURL, PYTHON]
    scene = scenario(args.connections)
    load = os.getloadavg()
    # Stopped by timeout(1) or kill, still stop the simulator (its own session: no signal reaches it otherwise).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped (SIGTERM)"))
    with tempfile.TemporaryDirectory() as tmp:
        simulator, config = start_simulator(tmp, scene)
        with open(config, "a", encoding="utf-8") as handle:
            handle.write(f"timeout = {args.timeout:g}\n")
        try:
            results = measure(args, kinds, scene, tmp, config, simulator.pid)
        finally:
            simulator.terminate()
            simulator.wait(10)
    results["load"] = load
    report(args, kinds, results)


def code_of(env: dict) -> Tuple[str, str]:
    """Where the zabbix_exalate that collect's command runs in env comes from, and the Python it runs on."""
    program = agent_command(COLLECT_KEY, NODE, "")[2].split()[0]  # the UserParameter's
    script = which(program, env)
    with open(script, "rb") as handle:
        first = handle.readline().decode()
    shebang = first[2:].strip() if first.startswith("#!") else sys.executable
    # Run from the script's directory, as the script runs: never the current directory first on the path.
    found = subprocess.run([shebang, "-c", "import zabbix_exalate; print(zabbix_exalate.__file__)"], env=env,
                           cwd=os.path.dirname(script), capture_output=True, text=True)
    if found.returncode:
        sys.exit(f"{shebang} cannot import zabbix_exalate: {found.stderr.strip()}")
    return found.stdout.strip(), shebang


def which(program: str, env: dict) -> str:
    found = shutil.which(program, path=env.get("PATH"))
    if not found:
        sys.exit(f"{program} is not on PATH: install this checkout (pip install -e .) in the Python that runs it")
    return found


def measure(args, kinds: List[str], scene: dict, tmp: str, config: str, simulator_pid: int) -> Dict[str, dict]:
    cache = os.path.join(tmp, "cache")
    os.mkdir(cache, 0o700)
    # The agent's environment: the configuration found through the variable, the token cache its own.
    env = {**os.environ, "ZABBIX_EXALATE_CONFIG": config, "XDG_CACHE_HOME": cache}
    env.pop("PYTHONPATH", None)
    # As installed by pip, the code has its bytecode: the warm-up runs below write it for an editable checkout.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    runs = Runs(simulator_pid)
    out = os.path.join(tmp, "out")
    os.mkdir(out)
    checks, expected = per_check_jobs(scene, env, out)
    collect_command = agent_command(COLLECT_KEY, NODE, "")
    jobs = {COLLECT: (collect_command, env, os.path.join(tmp, "collect.out"), os.devnull)}
    here, python = code_of(env)
    code = {COLLECT: os.path.dirname(os.path.dirname(here))}
    if args.reference:
        ref_env = {**env, "PYTHONPATH": os.path.abspath(args.reference)}
        there, _ = code_of(ref_env)
        if not there.startswith(os.path.abspath(args.reference) + os.sep):
            sys.exit(f"with PYTHONPATH={args.reference}, zabbix_exalate still comes from {there}")
        jobs[REFERENCE] = (collect_command, ref_env, os.path.join(tmp, "reference.out"), os.devnull)
        code[REFERENCE] = os.path.dirname(os.path.dirname(there))
    jobs[PYTHON] = ([python, "-c", "import requests"], env, os.path.join(tmp, "python.out"), os.devnull)
    curl_out, curl_in = os.path.join(tmp, "curl.out"), os.path.join(tmp, "curl.conf")
    count = curl_config(*curl_urls(node_url(config), scene), curl_in)
    jobs[CURL] = (["curl", "-K", "-"], env, curl_out, curl_in)

    def one(kind: str) -> Tuple[float, float]:
        if kind == PER_CHECK:
            wall, cpu, codes = runs.run(checks, args.agents)
            check_per_check(expected, codes)
            return wall, cpu
        wall, cpu, codes = runs.run([jobs[kind]], 1)
        stdout = jobs[kind][2]
        if kind == CURL:
            check_curl(stdout, codes[stdout], count)
        elif kind == PYTHON:
            if codes[stdout]:
                sys.exit(f"{python} -c 'import requests': exit {codes[stdout]}: {open(stdout + '.err').read()}")
        else:
            check_collect(scene, stdout, codes[stdout], kind)
        return wall, cpu

    # Not counted: the first token is minted and cached, as it is once on a running agent.
    runs.run([checks[-1]], 1)
    for kind in kinds:
        if kind != PER_CHECK:
            one(kind)
    if REFERENCE in kinds:
        same_document(jobs[COLLECT][2], jobs[REFERENCE][2])
    results: Dict[str, dict] = {kind: {"wall": [], "cpu": []} for kind in kinds}
    for n, order in enumerate(orders(kinds, args.rounds)):
        for kind in order:
            wall, cpu = one(kind)
            results[kind]["wall"].append(wall)
            results[kind]["cpu"].append(cpu)
        if REFERENCE in kinds:
            same_document(jobs[COLLECT][2], jobs[REFERENCE][2])
        print(f"round {n + 1}/{args.rounds}: " + ", ".join(
            f"{kind} {results[kind]['cpu'][-1]:.3f} CPU-s {results[kind]['wall'][-1]:.3f} s" for kind in order),
            file=sys.stderr, flush=True)
    results["processes"] = len(checks)
    results["urls"] = count
    results["code"] = code
    results["python"] = python
    return results


def same_document(new: str, reference: str) -> None:
    """Both collects printed the same bytes, but for the one figure that is never the same twice."""
    texts = [re.sub(r'"response_time":[0-9.e-]+,', "", open(path).read(), count=1) for path in (new, reference)]
    if texts[0] != texts[1]:
        at = len(os.path.commonprefix(texts))
        sys.exit(f"collect prints another document than the reference's, from character {at}:\n"
                 f"  this:      {texts[0][max(0, at - 80):at + 80]!r}\n  reference: {texts[1][max(0, at - 80):at + 80]!r}")


def report(args, kinds: List[str], results) -> None:
    med = {k: {m: statistics.median(results[k][m]) for m in ("wall", "cpu")} for k in kinds}
    low = {k: {m: min(results[k][m]) for m in ("wall", "cpu")} for k in kinds}
    processes, urls = results["processes"], results["urls"]
    labels = {PER_CHECK: f"per-check template ({processes} processes, {args.agents} at a time)",
              COLLECT: f"zabbix-exalate collect ({results['code'][COLLECT]})",
              REFERENCE: f"reference collect ({results['code'].get(REFERENCE)})",
              CURL: f"curl, {urls} URLs over 1 kept-alive connection",
              PYTHON: "python -c 'import requests' (start-up floor)"}
    width = max(50, max(len(labels[k]) + 2 for k in kinds))
    print(f"One poll of a node with {args.connections} connections, median (min) of {args.rounds} round(s)")
    print(f"  machine: {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}, "
          f"Python {platform.python_version()} ({results['python']}), load average {results['load'][0]:.1f} "
          f"before, {os.getloadavg()[0]:.1f} after")
    print(f"  {'':<{width}}{'CPU seconds':^22}{'wall seconds':^22}{'wall / curl':>12}".rstrip())
    for kind in kinds:
        print((f"  {labels[kind]:<{width}}" + "".join(f"{med[kind][m]:>11.3f} {f'({low[kind][m]:.3f})':<10}"
                                                      for m in ("cpu", "wall"))
               + f"{ratio(results, kind, 'wall', CURL):>11.1f}x").rstrip())
    print(f"  per request of curl: {med[CURL]['wall'] / urls * 1000:.2f} ms wall" + (
        f"; per check: {med[PER_CHECK]['cpu'] / processes:.3f} CPU-s" if PER_CHECK in kinds else ""))
    print()
    checks = []
    if PER_CHECK in kinds:
        checks.append((f"CPU  per-check template / collect = {ratio(results, PER_CHECK, 'cpu', COLLECT):7.1f}x",
                       f">= {CPU_TARGET}x", ratio(results, PER_CHECK, "cpu", COLLECT) >= CPU_TARGET))
    checks.append((f"CPU  collect                      = {med[COLLECT]['cpu']:7.3f} s",
                   f"<= {CPU_SECONDS} s" + ("" if args.connections == 50 else " (for 50 connections)"),
                   med[COLLECT]["cpu"] <= CPU_SECONDS * args.connections / 50))
    checks.append((f"wall collect / curl               = {ratio(results, COLLECT, 'wall', CURL):7.1f}x",
                   f"<= {WALL_TARGET}x", ratio(results, COLLECT, "wall", CURL) <= WALL_TARGET))
    for text, target, ok in checks:
        print(f"  {text}   target {target:<10} {'PASS' if ok else 'FAIL'}")
    floor = med[PYTHON]["cpu"]
    print(f"  of collect's CPU, Python's start-up with requests imported is {floor:.3f} s "
          f"({100 * floor / med[COLLECT]['cpu']:.0f}%)")
    if REFERENCE in kinds:
        print()
        print(f"  against the reference (reference / this, median of the rounds' ratios): "
              f"CPU {ratio(results, REFERENCE, 'cpu', COLLECT):.2f}x, wall {ratio(results, REFERENCE, 'wall', COLLECT):.2f}x; "
              f"the reference's wall / curl {ratio(results, REFERENCE, 'wall', CURL):.1f}x; same document: yes")
    print()
    summary = (f"Summary: polling a node with {args.connections} connections, one `collect` uses "
               f"{med[COLLECT]['cpu']:.2f} CPU-s in {med[COLLECT]['wall']:.2f} s "
               f"({ratio(results, COLLECT, 'wall', CURL):.1f}x curl's {med[CURL]['wall']:.2f} s over one kept-alive "
               f"connection)")
    if PER_CHECK in kinds:
        summary += (f"; the per-check template runs {processes} processes using {med[PER_CHECK]['cpu']:.1f} CPU-s "
                    f"({med[PER_CHECK]['wall']:.1f} s with {args.agents} agent processes)")
    print(summary + f" [median of {args.rounds} round(s), {os.cpu_count()} CPUs].")
    sys.exit(0 if all(ok for _, _, ok in checks) else 1)


def ratio(results, kind: str, measure: str, other: str) -> float:
    return statistics.median(a / b for a, b in zip(results[kind][measure], results[other][measure]))


if __name__ == "__main__":
    main()
