"""Install, start and stop a real Zabbix 6.0 (PostgreSQL, server, PHP frontend, agent) on 127.0.0.1, as root."""
import argparse
import gzip
import hashlib
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Dict, Optional

REPO = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_DIR = "/tmp/zabbix-exalate-stack"
DEFAULT_USERPARAMETERS = REPO / "userparameters" / "userparameter_exalate.conf"
ADMIN_USER, ADMIN_PASSWORD = "Admin", "zabbix"
DEFAULT_HOSTNAME = "exalate-e2e"

FRONTEND_DIR = pathlib.Path("/usr/share/zabbix")
SCHEMA_DIR = pathlib.Path("/usr/share/zabbix-server-pgsql")
# The Debian frontend reads its configuration from this fixed path only.
FRONTEND_CONF = pathlib.Path("/etc/zabbix/zabbix.conf.php")
FRONTEND_CONF_BACKUP = pathlib.Path("/etc/zabbix/zabbix.conf.php.before-zabbix-stack")
CONF_MARK = "<?php\n// Written by tests/zabbix_stack.py"
POLICY_RC_D = pathlib.Path("/usr/sbin/policy-rc.d")
# php-fpm first: otherwise apt satisfies the frontend's web server dependency with Apache.
PACKAGES = ["php-fpm", "php-cli", "php-pgsql", "nginx", "postgresql",
            "zabbix-server-pgsql", "zabbix-frontend-php", "zabbix-agent", "zabbix-agent2"]
# What make_venv copies to build the package, and hashes to know when to rebuild it.
PROJECT_SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "zabbix_exalate")
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


class StackError(RuntimeError):
    """A daemon that does not come up, or an API call that fails."""


def _pg_bin(name: str) -> Optional[str]:
    """The newest PostgreSQL's own binaries: PATH may hold another version's wrappers."""
    found = sorted(pathlib.Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    return str(found[-1]) if found else None


def _missing_packages():
    """The packages to install, judged by the programs the stack runs."""
    php_pgsql = os.path.exists("/usr/bin/php") and subprocess.run(
        ["/usr/bin/php", "-r", "exit(extension_loaded('pgsql') ? 0 : 1);"], capture_output=True).returncode == 0
    stack_ready = all([os.path.exists("/usr/sbin/zabbix_server"), os.path.exists("/usr/sbin/zabbix_agentd"),
                       os.path.exists("/usr/sbin/zabbix_agent2"),
                       os.path.exists("/usr/bin/zabbix_get"), (FRONTEND_DIR / "api_jsonrpc.php").exists(),
                       php_pgsql, _pg_bin("initdb")])
    missing = [] if stack_ready else list(PACKAGES)
    venv_ready = os.path.exists("/usr/bin/python3") and subprocess.run(
        ["/usr/bin/python3", "-c", "import ensurepip, venv"], capture_output=True).returncode == 0
    return missing + ([] if venv_ready else ["python3", "python3-venv"])


def _say(message: str) -> None:
    print(f"zabbix_stack: {message}", file=sys.stderr, flush=True)


def _tail(path: pathlib.Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return f"    ({path} does not exist)"
    return "\n".join("    " + line for line in text) or f"    ({path} is empty)"


def _failed(daemon: str, why: str, log: pathlib.Path) -> StackError:
    return StackError(f"{daemon} {why}; last lines of {log}:\n{_tail(log)}")


def _run(cmd, what: str, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise StackError(f"{what} failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()}")
    return proc


def _as_user(user: str) -> dict:
    """subprocess arguments that run a command as that user with only its own group."""
    return {"user": user, "group": user, "extra_groups": []}


def _open_up(root: pathlib.Path) -> None:
    """Let other users (the daemons, once they drop root) read everything and run the executables."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        wanted = mode | 0o044 | (0o011 if path.is_dir() or mode & 0o100 else 0)
        if wanted != mode:
            path.chmod(wanted)


def _require_root() -> None:
    if os.geteuid() != 0:
        raise StackError("run as root: the daemons start as root and drop to the zabbix and postgres users")


def _check_reachable(path: pathlib.Path) -> None:
    """The daemons run as zabbix and postgres: every parent directory must let them through."""
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.stat().st_mode & 0o001:
            raise StackError(f"{parent} is mode {parent.stat().st_mode & 0o777:o}, so the zabbix and postgres "
                             f"users cannot reach {path}: choose a directory under /tmp")


def _free_ports(names, preferred: Dict[str, int]) -> Dict[str, int]:
    """A free loopback port for each name, the one used last time when it is still free.

    Zabbix refuses a ListenPort above 32767, so they come from below the kernel's ephemeral range.
    """
    held, ports = [], {}
    try:
        for name in names:
            last = [preferred[name]] if 20000 <= preferred.get(name, 0) < 32768 else []
            for port in last + [random.randrange(20000, 32768) for _ in range(100)]:
                sock = socket.socket()
                # Like the daemons themselves, ignore the last run's connections in TIME_WAIT.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    sock.close()
                    continue
                held.append(sock)  # kept bound so that the next name cannot get the same port
                ports[name] = port
                break
            else:
                raise StackError("found no free port between 20000 and 32767")
    finally:
        for sock in held:
            sock.close()
    return ports


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _read_pid(pidfile: pathlib.Path) -> Optional[int]:
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: Optional[int], program: str) -> bool:
    """Whether pid is a live process of that program (not a zombie, not a recycled pid)."""
    if not pid:
        return False
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith(program)
    except OSError:
        return False


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def _kill(pidfile: pathlib.Path, program: str, whole_group: bool = False) -> None:
    """SIGTERM the daemon named in pidfile (with its process group if whole_group); SIGKILL all if it lingers."""
    pid = _read_pid(pidfile)
    if _alive(pid, program):
        pgid = os.getpgid(pid)
        # Our daemons each run in a session of their own, whose one process group also holds their workers.
        group = pgid if os.getsid(pid) == pgid else None

        def send(sig: int, everyone: bool) -> None:
            try:
                os.killpg(group, sig) if everyone and group else os.kill(pid, sig)
            except ProcessLookupError:
                pass

        send(signal.SIGTERM, whole_group)
        # zabbix_server flushes its history cache before it exits.
        if not _wait(lambda: not _alive(pid, program), 15):
            send(signal.SIGKILL, True)
            _wait(lambda: not _alive(pid, program), 5)
    pidfile.unlink(missing_ok=True)


def _await(daemon: str, program: str, pidfile: pathlib.Path, log: pathlib.Path, ready, seconds: float) -> None:
    """Wait until ready() is true; raise naming the daemon and quoting its log if it exits or takes too long."""
    def check() -> bool:
        pid = _read_pid(pidfile)
        # A daemon that fails early may exit before its pid file is written, or remove it: its log says so.
        stopped = log.exists() and "stopped. Zabbix" in log.read_text(errors="replace")
        if stopped or (pid and not _alive(pid, program)):
            raise _failed(daemon, "exited", log)
        return ready()
    if not _wait(check, seconds):
        raise _failed(daemon, f"was not ready within {seconds:g} s", log)


def make_venv(project_dir, state_dir) -> str:
    """A venv in state_dir with the project installed (not editable), rebuilt only when its sources change.

    It uses /usr/bin/python3 because the zabbix user cannot run a Python under /root (pyenv). Returns its bin dir.
    """
    project, venv = pathlib.Path(project_dir).resolve(), pathlib.Path(state_dir).resolve() / "venv"
    _check_reachable(venv)
    files = sorted(p for name in PROJECT_SOURCES for p in ([project / name] + list((project / name).rglob("*")))
                   if p.is_file() and "__pycache__" not in p.parts)
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes() + b"\0")
    stamp = venv / "project-sources.sha256"
    if stamp.exists() and stamp.read_text() == digest.hexdigest() and (venv / "bin" / "zabbix-exalate").exists():
        return str(venv / "bin")
    _say(f"building {venv} from {project}")
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    _run(["/usr/bin/python3", "-m", "venv", venv], "python3 -m venv")
    # Build from a copy: an in-tree build leaves build/ and *.egg-info in the checkout.
    with tempfile.TemporaryDirectory(dir=venv.parent) as tmp:
        for path in files:
            target = pathlib.Path(tmp) / path.relative_to(project)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        _run([venv / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", tmp], "pip install")
    stamp.write_text(digest.hexdigest())
    _open_up(venv)
    return str(venv / "bin")


class Stack:
    """One Zabbix 6.0 stack whose database, configuration, logs and pid files live in state_dir."""

    def __init__(self, state_dir=None):
        self.state_dir = pathlib.Path(state_dir or os.environ.get("ZABBIX_STACK_DIR") or DEFAULT_DIR).resolve()
        self.pg_dir = self.state_dir / "postgres"        # owned by postgres: cluster, socket, log
        self.pg_data = self.pg_dir / "data"
        self.zabbix_dir = self.state_dir / "zabbix"      # owned by zabbix: configs, pid files, logs, sockets
        self.frontend_log = self.state_dir / "frontend.log"
        self.frontend_pid = self.state_dir / "frontend.pid"
        self.state_file = self.state_dir / "stack.json"
        self.ports: Dict[str, int] = {}
        self._auth: Optional[str] = None
        if self.state_file.exists():
            self.ports = json.loads(self.state_file.read_text())["ports"]

    def _port(self, name: str) -> int:
        if name not in self.ports:
            raise StackError(f"no stack has been started in {self.state_dir}")
        return self.ports[name]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port('frontend')}/"

    @property
    def api_url(self) -> str:
        return self.url + "api_jsonrpc.php"

    @property
    def agent_port(self) -> int:
        return self._port("agent")

    @property
    def agent2_port(self) -> int:
        return self._port("agent2")

    @property
    def server_port(self) -> int:
        return self._port("server")

    @property
    def db_port(self) -> int:
        return self._port("postgres")

    def install(self) -> None:
        """apt-get install what is missing, with services kept from starting on their default ports."""
        missing = _missing_packages()
        if not missing:
            return
        _say("installing " + " ".join(missing))
        saved = None
        ours = not (POLICY_RC_D.exists() and subprocess.run([str(POLICY_RC_D)]).returncode == 101)
        if ours:
            if POLICY_RC_D.exists():
                saved = POLICY_RC_D.with_name("policy-rc.d.before-zabbix-stack")
                POLICY_RC_D.rename(saved)
            POLICY_RC_D.write_text("#!/bin/sh\n# tests/zabbix_stack.py: no service starts during apt-get\nexit 101\n")
            POLICY_RC_D.chmod(0o755)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
        try:
            if not list(pathlib.Path("/var/lib/apt/lists").glob("*_Packages*")):
                _run(["apt-get", "update", "-q"], "apt-get update", env=env)
            if subprocess.run(install, env=env).returncode != 0:
                _run(["apt-get", "update", "-q"], "apt-get update", env=env)
                _run(install, "apt-get install", env=env)
        finally:
            if ours:
                POLICY_RC_D.unlink()
            if saved:
                saved.rename(POLICY_RC_D)

    def start(self, userparameter_file=None, agent_env: Optional[Dict[str, str]] = None,
              agent_hostname: str = DEFAULT_HOSTNAME, venv_bin=None, agent_timeout: int = 10) -> "Stack":
        """Start (restart) everything; return once the API, the server and the agent answer.

        The agent includes userparameter_file and runs its commands with venv_bin first on PATH and agent_env
        (e.g. ZABBIX_EXALATE_CONFIG) in their environment.
        """
        _require_root()
        _check_reachable(self.state_dir)
        self.install()
        self.stop()
        self._auth = None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o755)
        for directory, owner in ((self.pg_dir, "postgres"), (self.zabbix_dir, "zabbix")):
            directory.mkdir(exist_ok=True)
            shutil.chown(directory, owner, owner)
            directory.chmod(0o755)
        self.ports = _free_ports(["postgres", "server", "frontend", "agent", "agent2"], self.ports)
        self.state_file.write_text(json.dumps({"ports": self.ports}, indent=2) + "\n")
        try:
            self._start_postgres()
            self._start_server()
            self._start_frontend()
            self._start_agents(userparameter_file, agent_env or {}, agent_hostname, venv_bin, agent_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every daemon of this stack by its pid file; stopping a stopped stack does nothing."""
        _kill(self.zabbix_dir / "agentd.pid", "zabbix_agentd")
        _kill(self.zabbix_dir / "agent2.pid", "zabbix_agent2")
        _kill(self.frontend_pid, "php", whole_group=True)  # php -S leaves its workers running
        self._restore_frontend_conf()
        _kill(self.zabbix_dir / "server.pid", "zabbix_server")
        if (self.pg_data / "postmaster.pid").exists():
            subprocess.run([_pg_bin("pg_ctl"), "-D", str(self.pg_data), "-m", "fast", "-w", "stop"],
                           capture_output=True, cwd=self.pg_dir, **_as_user("postgres"))
        self._auth = None

    def reset(self) -> None:
        """Stop and delete the database, configuration and logs (not the venv, nor the ports, so the URLs stay)."""
        self.stop()
        shutil.rmtree(self.pg_dir, ignore_errors=True)
        shutil.rmtree(self.zabbix_dir, ignore_errors=True)
        self.frontend_log.unlink(missing_ok=True)

    def status(self) -> Dict[str, Optional[int]]:
        """The pid of each running daemon, None for those not running."""
        daemons = {"postgres": (self.pg_data / "postmaster.pid", "postgres"),
                   "server": (self.zabbix_dir / "server.pid", "zabbix_server"),
                   "frontend": (self.frontend_pid, "php"),
                   "agent": (self.zabbix_dir / "agentd.pid", "zabbix_agentd"),
                   "agent2": (self.zabbix_dir / "agent2.pid", "zabbix_agent2")}
        running = {}
        for name, (pidfile, program) in daemons.items():
            pid = _read_pid(pidfile)
            running[name] = pid if _alive(pid, program) else None
        return running

    def api(self, method: str, params=None):
        """Call the Zabbix API as Admin (logging in once) and return the result; StackError on an API error."""
        if method == "apiinfo.version":
            return self._call(method, params)  # 6.0 refuses this call with a token
        if self._auth is None:
            self._auth = self._call("user.login", {"username": ADMIN_USER, "password": ADMIN_PASSWORD})
        return self._call(method, params, self._auth)

    def _call(self, method: str, params, auth: Optional[str] = None):
        body = {"jsonrpc": "2.0", "method": method, "params": params if params is not None else {}, "id": 1}
        if auth:
            body["auth"] = auth  # 6.0 takes the token in the body, not in a header
        request = urllib.request.Request(self.api_url, json.dumps(body).encode(),
                                         {"Content-Type": "application/json-rpc"})
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read().decode(errors="replace")
        try:
            answer = json.loads(text)
        except ValueError:
            raise StackError(f"{method}: the frontend answered with no JSON: {text[:300]}") from None
        if "error" in answer:
            error = answer["error"]
            raise StackError(f"{method}: {error.get('message')} {error.get('data', '')}".strip())
        return answer["result"]

    def _start_postgres(self) -> None:
        ready = self.pg_dir / "zabbix-database-loaded"
        if not ready.exists():  # never initialised, or a load that was interrupted
            shutil.rmtree(self.pg_data, ignore_errors=True)
            _say("creating the database (about 25 s)")
            _run([_pg_bin("initdb"), "-D", self.pg_data, "--auth=trust", "--encoding=UTF8", "--no-locale"],
                 "initdb", cwd=self.pg_dir, **_as_user("postgres"))
        log = self.pg_dir / "postgres.log"
        # A throwaway database: durability is not worth the time it costs to load the schema.
        options = (f"-p {self.db_port} -k {self.pg_dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off -c synchronous_commit=off")
        proc = subprocess.run([_pg_bin("pg_ctl"), "-D", str(self.pg_data), "-o", options, "-l", str(log),
                               "-w", "-t", "60", "start"], capture_output=True, text=True, cwd=self.pg_dir,
                              **_as_user("postgres"))
        if proc.returncode != 0:
            raise _failed("postgres", f"did not start ({proc.stdout.strip()} {proc.stderr.strip()})", log)
        if not ready.exists():
            self._psql("postgres", "postgres", "CREATE ROLE zabbix LOGIN PASSWORD 'zabbix'; "
                                               "CREATE DATABASE zabbix OWNER zabbix;")
            for name in ("schema", "images", "data"):
                with gzip.open(SCHEMA_DIR / f"{name}.sql.gz") as dump:
                    self._psql("zabbix", "zabbix", dump.read().decode())
            # data.sql ships this host enabled, pointing at 127.0.0.1:10050: it would poll our agent.
            self._psql("zabbix", "zabbix", "UPDATE hosts SET status=1 WHERE host='Zabbix server';")
            ready.touch()

    def _psql(self, user: str, database: str, sql: str) -> None:
        _run([_pg_bin("psql"), "-q", "-v", "ON_ERROR_STOP=1", "-h", self.pg_dir, "-p", self.db_port,
              "-U", user, "-d", database], f"psql as {user}", input=sql)

    def _start_server(self) -> None:
        conf, log, pidfile = (self.zabbix_dir / name for name in ("server.conf", "server.log", "server.pid"))
        conf.write_text(f"""# Written by tests/zabbix_stack.py
DBHost=127.0.0.1
DBPort={self.db_port}
DBName=zabbix
DBUser=zabbix
DBPassword=zabbix
ListenIP=127.0.0.1
ListenPort={self.server_port}
PidFile={pidfile}
LogFile={log}
SocketDir={self.zabbix_dir}
# New hosts and items reach the server's cache within a second rather than a minute.
CacheUpdateFrequency=1
# Few processes: one agent host to poll.
StartPollers=2
StartTrappers=2
StartDiscoverers=0
# The most a poller waits: longer than any agent Timeout, so the agent's own timeout message arrives.
Timeout=30
LogSlowQueries=0
""")
        log.unlink(missing_ok=True)  # each start begins a new log, so that an error quotes this start's lines
        _run(["/usr/sbin/zabbix_server", "-c", conf], "zabbix_server", cwd=self.zabbix_dir)
        _await("zabbix_server", "zabbix_server", pidfile, log, lambda: _listening(self.server_port), 60)

    def _start_frontend(self) -> None:
        self._write_frontend_conf()
        with open(self.frontend_log, "wb") as log:
            proc = subprocess.Popen(
                ["/usr/bin/php", "-S", f"127.0.0.1:{self._port('frontend')}", "-t", str(FRONTEND_DIR),
                 "-d", "date.timezone=UTC", "-d", "memory_limit=256M", "-d", "post_max_size=16M",
                 "-d", "max_execution_time=300"],
                cwd=FRONTEND_DIR, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                env={**os.environ, "PHP_CLI_SERVER_WORKERS": "4"})  # the browser loads pages in parallel
        self.frontend_pid.write_text(f"{proc.pid}\n")

        def answers() -> bool:
            try:
                return self.api("apiinfo.version").startswith("6.0.")
            except OSError:
                return False
        _await("the frontend (php -S)", "php", self.frontend_pid, self.frontend_log, answers, 60)
        self.api("host.get", {"countOutput": True})  # logs in: proves that the frontend reaches the database

    def _write_frontend_conf(self) -> None:
        someone_elses = FRONTEND_CONF.exists() and not FRONTEND_CONF.read_text().startswith(CONF_MARK)
        if someone_elses and not FRONTEND_CONF_BACKUP.exists():
            _say(f"moving {FRONTEND_CONF} aside to {FRONTEND_CONF_BACKUP} until stop")
            FRONTEND_CONF.rename(FRONTEND_CONF_BACKUP)
        FRONTEND_CONF.parent.mkdir(parents=True, exist_ok=True)
        FRONTEND_CONF.write_text(f"""{CONF_MARK} for {self.state_dir}
$DB['TYPE'] = 'POSTGRESQL';
$DB['SERVER'] = '127.0.0.1';
$DB['PORT'] = '{self.db_port}';
$DB['DATABASE'] = 'zabbix';
$DB['USER'] = 'zabbix';
$DB['PASSWORD'] = 'zabbix';
$ZBX_SERVER = '127.0.0.1';
$ZBX_SERVER_PORT = '{self.server_port}';
$ZBX_SERVER_NAME = 'zabbix-exalate stack';
$IMAGE_FORMAT_DEFAULT = IMAGE_FORMAT_PNG;
""")

    def _restore_frontend_conf(self) -> None:
        """Put back what /etc/zabbix/zabbix.conf.php was before this stack started."""
        try:
            ours = FRONTEND_CONF.read_text().startswith(f"{CONF_MARK} for {self.state_dir}\n")
        except OSError:
            return
        if ours:
            FRONTEND_CONF.unlink()
            if FRONTEND_CONF_BACKUP.exists():
                FRONTEND_CONF_BACKUP.rename(FRONTEND_CONF)

    def _start_agents(self, userparameter_file, agent_env, hostname, venv_bin, timeout) -> None:
        """The classic agent and agent 2, with the same UserParameters: both must serve them alike."""
        include = f"Include={pathlib.Path(userparameter_file).resolve()}\n" if userparameter_file else ""
        # The agents' commands inherit their environment: that is how they find zabbix-exalate and its config.
        env = {"PATH": f"{venv_bin}:{SYSTEM_PATH}" if venv_bin else SYSTEM_PATH, **agent_env}
        for name, program, port, extra in (
                ("agentd", "zabbix_agentd", self.agent_port, f"PidFile={self.zabbix_dir / 'agentd.pid'}\n"),
                ("agent2", "zabbix_agent2", self.agent2_port,
                 f"PidFile={self.zabbix_dir / 'agent2-self.pid'}\nLogType=file\n"
                 f"ControlSocket={self.zabbix_dir / 'agent2.sock'}\n")):
            conf, log, pidfile = (self.zabbix_dir / f"{name}.{ext}" for ext in ("conf", "log", "pid"))
            # No ServerActive: the template's items are passive, polled by the server.
            conf.write_text(f"# Written by tests/zabbix_stack.py\nServer=127.0.0.1\nListenIP=127.0.0.1\n"
                            f"ListenPort={port}\nHostname={hostname}\nLogFile={log}\nTimeout={timeout}\n"
                            f"{extra}{include}")
            log.unlink(missing_ok=True)
            if program == "zabbix_agentd":
                _run([f"/usr/sbin/{program}", "-c", conf], program, cwd=self.zabbix_dir, env=env)
            else:
                # Agent 2 neither forks nor drops privileges: run it in the background as zabbix, as its
                # service does, and write its pid at once rather than wait for its own pid file.
                with open(self.zabbix_dir / f"{name}.out", "wb") as out:
                    proc = subprocess.Popen([f"/usr/sbin/{program}", "-c", str(conf)], cwd=self.zabbix_dir,
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                            start_new_session=True, **_as_user("zabbix"))
                pidfile.write_text(f"{proc.pid}\n")
            _await(program, program, pidfile, log, lambda port=port: self.get(port, "agent.ping") == "1", 30)

    def get(self, port: int, key: str) -> str:
        """What the agent on port answers for key, as the server would get it (zabbix_get)."""
        return subprocess.run(["/usr/bin/zabbix_get", "-s", "127.0.0.1", "-p", str(port), "-k", key],
                              capture_output=True, text=True, timeout=60).stdout.rstrip("\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["install", "start", "stop", "status"])
    parser.add_argument("--dir", help=f"state directory [default: $ZABBIX_STACK_DIR or {DEFAULT_DIR}]")
    parser.add_argument("--fresh", action="store_true", help="start: delete the database first")
    parser.add_argument("--userparameters", metavar="FILE",
                        help="UserParameter file for the agent [default: userparameters/userparameter_exalate.conf]")
    parser.add_argument("--exalate-config", metavar="FILE",
                        help="ZABBIX_EXALATE_CONFIG for the agent's commands [default: unset]")
    args = parser.parse_args(argv)
    stack = Stack(args.dir)
    try:
        if args.command == "install":
            stack.install()
        elif args.command == "stop":
            stack.stop()
            print(f"stopped the stack in {stack.state_dir}")
        elif args.command == "status":
            for name, pid in stack.status().items():
                print(f"{name:9} {f'running, pid {pid}' if pid else 'stopped'}")
            if stack.ports:
                print(f"frontend  {stack.url}\nAPI       {stack.api_url}\nagent     127.0.0.1:{stack.agent_port}\n"
                      f"agent 2   127.0.0.1:{stack.agent2_port}")
        else:
            began = time.monotonic()
            _require_root()
            if args.fresh:
                stack.reset()
            userparameters = args.userparameters
            if userparameters is None and DEFAULT_USERPARAMETERS.exists():
                userparameters = DEFAULT_USERPARAMETERS
            venv_bin = make_venv(REPO, stack.state_dir) if userparameters else None
            env = {}
            if args.exalate_config:
                env["ZABBIX_EXALATE_CONFIG"] = str(pathlib.Path(args.exalate_config).resolve())
            stack.start(userparameters, env, venv_bin=venv_bin)
            print(f"Zabbix {stack.api('apiinfo.version')} is up after {time.monotonic() - began:.1f} s "
                  f"(state in {stack.state_dir}):\n"
                  f"  frontend  {stack.url}  login {ADMIN_USER} / {ADMIN_PASSWORD}\n"
                  f"  API       {stack.api_url}\n"
                  f"  server    127.0.0.1:{stack.server_port}\n"
                  f"  agent     127.0.0.1:{stack.agent_port}, host name {DEFAULT_HOSTNAME}, "
                  f"{f'UserParameters from {userparameters}' if userparameters else 'no UserParameters'}\n"
                  f"  agent 2   127.0.0.1:{stack.agent2_port}, the same\n"
                  f"Stop it with: python3 {os.path.relpath(__file__)} stop"
                  + (f" --dir {args.dir}" if args.dir else ""))
    except StackError as exc:
        print(f"zabbix_stack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
