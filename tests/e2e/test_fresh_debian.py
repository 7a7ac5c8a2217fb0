"""A new user on a fresh Debian 12 whose only Python is Debian's: the README's two commands and the production
install of docs/install.md work as written (issue 8's "Done when").

A debootstrap chroot (minbase, then only python3, python3-venv and ca-certificates) is built once and cached
in /tmp/zabbix-exalate-bookworm (ZABBIX_EXALATE_BOOKWORM overrides it); each run works in a fresh overlay of
it, thrown away afterwards. The project goes in as a user's clone would (the files git knows of, uncommitted
changes included; no .venv), and the commands are read from README.md and docs/install.md of that copy, so a
change to the docs that no longer works on Debian 12 fails here. In order:

1. the README's demo command;
2. the README's fast test command, `SKIP_E2E=1 bash tests/run` (nginx absent and CI unset in the chroot, so
   the nginx tests skip);
3. docs/install.md: build the wheel, apt's zabbix-agent and zabbix-agent2, the venv under /opt with Debian's
   python3, the link in /usr/local/bin, `zabbix-exalate agent install`; then a configuration for a simulator
   on the host's loopback (the chroot shares the network), both agents started as their Debian services start
   them (user zabbix, systemd's PATH, Debian's configuration with only the ports, pid and log files changed),
   and zabbix_get and `zabbix-exalate agent check` must show the simulator's numbers.
"""
import contextlib
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import subprocess
import time
from typing import Dict, List, Optional

import pytest

from debian_chroot import SYSTEMD_PATH, DebianChroot, System
from helpers import free_ports, require_binary
from zabbix_exalate.metrics import CONNECTION_METRICS, NODE_METRICS
from zabbix_exalate.simulation.simulator import Simulator, SimulatorServer, sample_scenario_path
from zabbix_stack import ZABBIX_PORTS, StackError, _kill, _tail

pytestmark = pytest.mark.e2e

REPO = pathlib.Path(__file__).resolve().parents[2]
BASE = os.environ.get("ZABBIX_EXALATE_BOOKWORM") or "/tmp/zabbix-exalate-bookworm"  # and BASE-logs: the output
# A fresh Debian 12 with Debian's Python and nothing else of ours: what issue 8 calls a new user's machine.
BASE_PACKAGES = ["python3", "python3-venv", "ca-certificates"]
CLONE = "/root/zabbix-exalate"      # the user's clone, in root's home (CI runs as root)
AGENT_HOST = "/root/agent-host"     # where the wheel is copied to, as onto another machine
AGENT_RUN = "/run/zabbix-exalate-test"  # the agents' pid and log files
AGENTS = (  # program, Debian's configuration, how Debian's service starts it (as user zabbix)
    ("zabbix_agentd", "/etc/zabbix/zabbix_agentd.conf", ["/usr/sbin/zabbix_agentd", "--foreground"]),
    ("zabbix_agent2", "/etc/zabbix/zabbix_agent2.conf",
     ["/usr/sbin/zabbix_agent2", "-foreground", "-c", "/etc/zabbix/zabbix_agent2.conf"]),
)
NODE = "default"
SCENARIO = {  # numbers of our own, so that no default or demo value can pass for them
    "credentials": {"jwt_secret": "fresh-debian-12-shared-jwt-secret-0123456789", "user": "zabbix-monitor",
                    "password": "fresh-debian-12-password", "token_ttl": 600},
    "errors": 3, "outgoing": 41, "incoming": 17,
    "connections": [
        {"name": "AllContent", "id": 154, "status": "ACTIVE",
         "queues": dict(zip((m.command for m in CONNECTION_METRICS), (5, 8, 13, 21, 34, 55)))},
        {"name": "ADO <> Jira Prod", "id": 155, "status": "DEACTIVATED",
         "queues": dict(zip((m.command for m in CONNECTION_METRICS), (2, 0, 9, 0, 1, 0)))},
        {"name": "Gone", "id": 170, "status": "ACTIVE", "removed": True},
    ],
}
FAILED = "failed"  # a value the document names under "failures" instead of giving it


class Fresh:
    """The fresh Debian 12 of this module's tests, and how long each step took."""

    def __init__(self, system: System, logs: pathlib.Path):
        self.system, self.logs = system, logs
        self.timings: Dict[str, float] = {}
        self.commands = 0

    def sh(self, line: str, cwd: str = CLONE, timeout: float = 900) -> subprocess.CompletedProcess:
        """A command line of the docs, run verbatim by sh in the chroot as root; its whole output is kept in
        a log file of its own, named in the failure (args)."""
        ran = self.system.run(line, cwd=cwd, timeout=timeout, check=False)
        self.commands += 1
        log = self.logs / f"{self.commands:02d}-{re.sub(r'[^A-Za-z0-9]+', '-', line)[:60]}.log"
        log.write_text(f"$ cd {cwd} && {line}\nexit {ran.returncode}\n--- stdout\n{ran.stdout}\n--- stderr\n"
                       f"{ran.stderr}")
        ran.args = str(log)
        return ran

    @contextlib.contextmanager
    def timed(self, name: str):
        began = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = time.monotonic() - began


def _unavailable(reason: str):
    """Skip where this machine cannot build the chroot; in CI that is a failure."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must be able to run this test")
    pytest.skip(reason)


def _report(request, line: str) -> None:
    """A line in pytest's output even when output is captured: the timings CI's budget needs."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter and capture:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"test_fresh_debian: {line}")


@pytest.fixture(scope="module")
def debian12(request):
    began = time.monotonic()
    if os.geteuid() != 0:
        _unavailable("needs root: debootstrap, chroot and mount")
    if not shutil.which("debootstrap"):
        _install_debootstrap()
    base = DebianChroot(BASE, "bookworm", BASE_PACKAGES)
    timings: Dict[str, float] = {}
    with base.locked(), contextlib.ExitStack() as mounted:
        step = time.monotonic()
        try:
            built = base.ensure()
        except StackError as exc:
            _unavailable(f"cannot debootstrap Debian 12 in {BASE}: {exc}")
        timings[f"debootstrap bookworm minbase, apt-get install {' '.join(BASE_PACKAGES)}" if built else
                f"the cached chroot {BASE}"] = time.monotonic() - step
        try:
            system = mounted.enter_context(base.fresh())
        except StackError as exc:
            _unavailable(f"cannot mount a fresh copy of {BASE}: {exc}")
        # Beside the chroot, not in pytest's temporary directories: pytest keeps only its last three runs'.
        logs = pathlib.Path(f"{BASE}-logs")
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir()
        fresh = Fresh(system, logs)
        fresh.timings.update(timings)
        with fresh.timed("overlay mounted, clone copied"):
            copied = _copy_clone(system.path(CLONE))
        yield fresh
    fresh.timings["the whole module, setup to teardown"] = time.monotonic() - began
    _report(request, f"{copied} files of {REPO} in {CLONE}; each command's output in {fresh.logs}")
    for name, seconds in fresh.timings.items():
        _report(request, f"{seconds:7.1f} s  {name}")


def _install_debootstrap() -> None:
    """As zabbix_stack.py does for its 7.0 chroot: the end-to-end suite may install what it needs."""
    if not shutil.which("apt-get"):
        _unavailable("debootstrap is not installed, and there is no apt-get to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "debootstrap"]
    ran = subprocess.run(install, env=env, capture_output=True, text=True)
    if ran.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        ran = subprocess.run(install, env=env, capture_output=True, text=True)
    if ran.returncode != 0 or not shutil.which("debootstrap"):
        _unavailable(f"debootstrap is not installed, and apt-get could not install it: {ran.stderr.strip()}")


def _git_files(*options: str) -> List[str]:
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", *options], capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.fail(f"git ls-files in {REPO}: {listed.stderr.strip()} (the test copies what a clone holds)")
    return [name for name in listed.stdout.split("\0") if name]


def _copy_clone(target: pathlib.Path) -> int:
    """The project as a user's clone holds it: every file git tracks, as the working tree has it, and the
    files not committed yet (neither ignored nor in a dot directory such as .hypothesis); no .venv, no build."""
    new = [name for name in _git_files("--others", "--exclude-standard") if not name.startswith(".")]
    copied = 0
    for name in sorted(set(_git_files("--cached") + new)):
        source = REPO / name
        if not source.is_file():  # deleted in the working tree
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name, follow_symlinks=False)
        copied += 1
    return copied


# --- the docs, as the user reads them ------------------------------------------------------------------

def _section(markdown: str, heading: str) -> str:
    """The text of the section whose "## " heading starts with heading, up to the next one."""
    match = re.search(rf"^## {re.escape(heading)}.*?$(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"no section '## {heading}...'"
    return match.group(1)


def _blocks(text: str) -> List[str]:
    """The shell code blocks of a piece of markdown."""
    return [block.strip("\n") for block in re.findall(r"^```(?:sh|bash|console)?\n(.*?)^```", text, re.M | re.S)]


def _doc(fresh: Fresh, name: str) -> str:
    return fresh.system.path(CLONE).joinpath(name).read_text()


def _shown(proc: subprocess.CompletedProcess) -> str:
    """Why a command failed: its status, the end of its output, and the log file that holds all of it."""
    return (f"exit {proc.returncode}, whole output in {proc.args}\n--- stdout (end)\n{proc.stdout[-6000:]}\n"
            f"--- stderr (end)\n{proc.stderr[-6000:]}")


# --- 1. the demo ---------------------------------------------------------------------------------------

def test_readme_demo_command_works_on_debian_12(debian12):
    blocks = _blocks(_section(_doc(debian12, "README.md"), "Try it"))
    assert len(blocks) == 1, blocks
    command = blocks[0]
    with debian12.timed(f"1. README demo: {command}"):
        ran = debian12.sh(command, timeout=600)
    assert ran.returncode == 0, _shown(ran)
    # The demo's node is the bundled sample scenario: its numbers are what the demo must show.
    sample = json.loads(pathlib.Path(sample_scenario_path()).read_text())
    out = ran.stdout
    assert re.search(r"^\s+ping\s.*\s1$", out, re.M), out
    for metric in NODE_METRICS:
        assert re.search(rf"^\s+{metric.command}\s.*\s{sample[metric.command]}$", out, re.M), (metric.command, out)
    for connection in sample["connections"]:
        if connection.get("removed"):
            continue
        values = [str(connection["queues"].get(m.command, 0)) for m in CONNECTION_METRICS]
        row = rf"^\s+{re.escape(connection['name'])}\s+{connection['status']}\s+" + r"\s+".join(values) + r"\s*$"
        assert re.search(row, out, re.M), (connection["name"], out)


# --- 2. the fast suite ---------------------------------------------------------------------------------

def test_readme_fast_test_command_works_on_debian_12(debian12):
    section = _section(_doc(debian12, "README.md"), "Run the tests")
    blocks = _blocks(section)
    assert len(blocks) == 1, blocks
    fast = re.findall(r"`(SKIP_E2E=1 [^`]*)`", section)
    assert fast and fast[0] == f"SKIP_E2E=1 {blocks[0]}", (fast, blocks)
    with debian12.timed(f"2. README fast suite: {fast[0]}"):
        ran = debian12.sh(fast[0], timeout=2400)
    assert ran.returncode == 0, _shown(ran)
    assert re.search(r"\d+ passed", ran.stdout), _shown(ran)
    assert "SKIP_E2E=1: end-to-end suite not run" in ran.stdout, _shown(ran)


# --- 3. the production install --------------------------------------------------------------------------

def expected_numbers(scenario: dict) -> dict:
    """The numbers a collect document of this simulated node must hold."""
    numbers = {"ping": 1, **{m.field_name: scenario[m.command] for m in NODE_METRICS}}
    for connection in scenario["connections"]:
        numbers[connection["name"]] = {  # a connection the node says it does not know is removed, whatever it lists
            "status": "REMOVED" if connection.get("removed") else connection["status"],
            **{m.field_name: FAILED if connection.get("removed") else connection["queues"].get(m.command, 0)
               for m in CONNECTION_METRICS}}
    return numbers


def numbers_of(document: dict) -> dict:
    """The numbers of a collect document, a value it could not read shown as FAILED."""
    def value(where: dict, field: str):
        return FAILED if field in where.get("failures", {}) and field not in where else where.get(field)
    numbers = {"ping": document.get("ping"), **{m.field_name: value(document, m.field_name) for m in NODE_METRICS}}
    for connection in document.get("connections", []):
        numbers[connection["name"]] = {"status": connection.get("status"),
                                       **{m.field_name: value(connection, m.field_name) for m in CONNECTION_METRICS}}
    return numbers


def _collected(text: str) -> dict:
    try:
        return json.loads(text)
    except ValueError:
        pass
    pytest.fail(f"not a JSON document: {text!r}")


def _configure_agent(system: System, config: str, overrides: Dict[str, Optional[str]]) -> None:
    """Debian's agent configuration with these keys replaced (None: removed), the rest as it was."""
    path = system.path(config)
    lines = []
    for line in path.read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        lines.append(f"# {line}" if "=" in line and not line.lstrip().startswith("#") and key in overrides else line)
    lines.append("# tests/e2e/test_fresh_debian.py: this agent's own ports, pid and log files")
    lines += [f"{key}={value}" for key, value in overrides.items() if value is not None]
    path.write_text("\n".join(lines) + "\n")


class RunningAgent:
    def __init__(self, program: str, port: int, proc: subprocess.Popen, pidfile: pathlib.Path,
                 log: pathlib.Path, out: pathlib.Path):
        self.program, self.port, self.proc, self.pidfile, self.log, self.out = program, port, proc, pidfile, log, out

    def stop(self) -> None:
        """SIGTERM its session by its pid, SIGKILL if it lingers; keep its log beside the others."""
        _kill(self.pidfile, self.program, whole_group=True)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        if self.log.exists():
            shutil.copyfile(self.log, self.out.with_suffix(".log"))

    def logs(self) -> str:
        return f"{self.log}:\n{_tail(self.log)}\n{self.out}:\n{_tail(self.out)}"


def zabbix_get(port: int, key: str) -> str:
    proc = subprocess.run(["zabbix_get", "-s", "127.0.0.1", "-p", str(port), "-k", key], capture_output=True,
                          text=True, timeout=60)
    return (proc.stdout + proc.stderr).rstrip("\n")


def _start_agents(system: System, scratch: pathlib.Path) -> List[RunningAgent]:
    """Both agents as Debian's services start them: as zabbix, in /, with systemd's environment."""
    entry = next(line.split(":") for line in system.path("/etc/passwd").read_text().splitlines()
                 if line.split(":")[0] == "zabbix")
    run_dir = system.path(AGENT_RUN)
    run_dir.mkdir(parents=True, exist_ok=True)
    os.chown(run_dir, int(entry[2]), int(entry[3]))
    # What systemd gives a service with User=zabbix: its PATH, and the user's home, name and shell.
    env = {"PATH": SYSTEMD_PATH, "HOME": entry[5], "USER": "zabbix", "LOGNAME": "zabbix", "SHELL": entry[6]}
    ports = dict(zip([program for program, _, _ in AGENTS], free_ports(len(AGENTS), ZABBIX_PORTS)))
    started = []
    try:
        for program, config, argv in AGENTS:
            port = ports[program]
            _configure_agent(system, config, {
                "Server": "127.0.0.1", "ServerActive": None, "ListenIP": "127.0.0.1", "ListenPort": str(port),
                "PidFile": f"{AGENT_RUN}/{program}.pid", "LogFile": f"{AGENT_RUN}/{program}.log",
                "LogType": "file"})
            out = scratch / f"{program}.out"
            with open(out, "wb") as output:
                proc = subprocess.Popen(system.command(argv, "/", user="zabbix"), env=env, stdin=subprocess.DEVNULL,
                                        stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
            pidfile = scratch / f"{program}.pid"
            pidfile.write_text(f"{proc.pid}\n")
            agent = RunningAgent(program, port, proc, pidfile, system.path(f"{AGENT_RUN}/{program}.log"), out)
            started.append(agent)
            deadline = time.monotonic() + 30
            while zabbix_get(port, "agent.ping") != "1":
                if proc.poll() is not None:
                    pytest.fail(f"{program} exited {proc.returncode}; {agent.logs()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"{program} did not answer agent.ping within 30 s; {agent.logs()}")
                time.sleep(0.2)
    except BaseException:
        for agent in started:
            agent.stop()
        raise
    return started


def test_production_install_of_docs_install_md_works_on_debian_12(debian12):
    require_binary("zabbix_get")
    system = debian12.system
    install_md = _doc(debian12, "docs/install.md")
    one = _blocks(_section(install_md, "1. Install the command"))
    two = _blocks(_section(install_md, "2. Set up the agent"))
    assert len(one) == 2 and len(two) == 3, (one, two)
    build, agent_host = one

    # The wheel, built from the clone as the doc says.
    with debian12.timed(f"3a. build the wheel: {build}"):
        ran = debian12.sh(build, timeout=600)
    assert ran.returncode == 0, _shown(ran)
    wheels = sorted(system.path(CLONE).joinpath("dist").glob("zabbix_exalate-*-py3-none-any.whl"))
    assert len(wheels) == 1, (wheels, _shown(ran))
    system.path(AGENT_HOST).mkdir(parents=True)
    shutil.copy2(wheels[0], system.path(AGENT_HOST) / wheels[0].name)

    # On the agent host, as root, line by line. apt: both agents, without asking (the doc's apt asks).
    with debian12.timed("3b. apt install the agents, venv under /opt, pip install the wheel, link"):
        for line in agent_host.splitlines():
            words = shlex.split(line, comments=True)
            if words[:2] == ["apt", "install"]:
                assert {"python3-venv", "zabbix-agent"} <= set(words[2:]) and "# or zabbix-agent2" in line, line
                system.apt_get("install", *words[2:], "zabbix-agent2")
                continue
            ran = debian12.sh(line, cwd=AGENT_HOST, timeout=600)
            assert ran.returncode == 0, (line, _shown(ran))
    venvs = [words[-1] for words in map(shlex.split, agent_host.splitlines()) if words[:3] == ["python3", "-m", "venv"]]
    links = [words[-2:] for words in map(shlex.split, agent_host.splitlines()) if words[:2] == ["ln", "-s"]]
    assert len(venvs) == 1 and len(links) == 1, agent_host
    cfg = system.path(venvs[0]).joinpath("pyvenv.cfg").read_text()
    assert re.search(r"^home = /usr/bin$", cfg, re.M), cfg  # Debian's python3
    target, link = links[0]
    assert link == "/usr/local/bin/zabbix-exalate", link  # on the agent's PATH (systemd's)
    assert os.readlink(system.path(link)) == target == f"{venvs[0]}/bin/zabbix-exalate"

    # zabbix-exalate agent install, verbatim.
    assert two[0] == "zabbix-exalate agent install", two[0]
    with debian12.timed(f"3c. {two[0]}"):
        ran = debian12.sh(two[0], cwd="/root")
    assert ran.returncode == 0, _shown(ran)
    for include in ("/etc/zabbix/zabbix_agentd.conf.d", "/etc/zabbix/zabbix_agent2.d"):
        written = system.path(include) / "userparameter_exalate.conf"
        assert f"wrote {include}/userparameter_exalate.conf" in ran.stdout, _shown(ran)
        assert re.search(r"^UserParameter=exalate\.collect\[\*\],zabbix-exalate ", written.read_text(), re.M)
    for service in ("zabbix-agent", "zabbix-agent2"):
        assert f"systemctl restart {service}" in ran.stdout, _shown(ran)
    conf = system.path("/etc/zabbix/zabbix_exalate.conf")
    zabbix_group = system.group_id("zabbix")
    assert (conf.stat().st_uid, conf.stat().st_gid, conf.stat().st_mode & 0o777) == (0, zabbix_group, 0o640)

    with SimulatorServer(Simulator(SCENARIO)) as sim:
        # The operator's edit: the node's URL and credentials, root:zabbix 0640 as the doc says.
        conf.write_text(sim.config_text(NODE))
        os.chown(conf, 0, zabbix_group)
        conf.chmod(0o640)
        expected = expected_numbers(SCENARIO)

        with debian12.timed("3d. start the classic agent and agent 2 (as their services do)"):
            agents = _start_agents(system, debian12.logs)
        try:
            with debian12.timed("3e. zabbix_get collect and ping from both agents"):
                get = shlex.split(two[2], comments=True)
                assert get[0] == "zabbix_get" and "-k" in get, two[2]
                collect_key = get[get.index("-k") + 1]
                assert collect_key == f"exalate.collect[{NODE},]", two[2]
                for agent in agents:
                    document = _collected(zabbix_get(agent.port, collect_key))
                    assert numbers_of(document) == expected, (agent.program, document, agent.logs())
                    assert zabbix_get(agent.port, f"exalate.ping[{NODE}]") == "1", (agent.program, agent.logs())
            with debian12.timed("3f. zabbix-exalate agent check (collect and ping)"):
                checks = [line for line in two[1].splitlines() if line.strip()]
                assert len(checks) == 2, checks
                collect_check, ping_check = (debian12.sh(line, cwd="/root") for line in checks)
            assert collect_check.returncode == 0, _shown(collect_check)
            assert numbers_of(_collected(collect_check.stdout.splitlines()[-1])) == expected, _shown(collect_check)
            assert "as user zabbix" in collect_check.stdout, _shown(collect_check)
            assert ping_check.returncode == 0, _shown(ping_check)
            assert ping_check.stdout.splitlines()[-1] == "1", _shown(ping_check)
        finally:
            for agent in agents:
                agent.stop()
