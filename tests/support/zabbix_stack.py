"""Install, start and stop a real Zabbix (PostgreSQL, server, PHP frontend, proxy, agents) on 127.0.0.1, as root.

Zabbix 6.0 runs from the host's Debian 12 packages; Zabbix 7.0 from Debian 13 packages inside a chroot
that debootstrap creates beside the state directory. Both can run at once, each on ports of its own.
"""
import argparse
import gzip
import hashlib
import json
import os
import pathlib
import pwd
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Dict, List, Optional

from helpers import free_ports

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_DIR = "/tmp/zabbix-exalate-stack"
DEFAULT_USERPARAMETERS = REPO / "userparameters" / "userparameter_exalate.conf"
ADMIN_USER, ADMIN_PASSWORD = "Admin", "zabbix"
DEFAULT_HOSTNAME = "exalate-e2e"
HOST_ROOT = pathlib.Path("/")
CHROOT = "/usr/sbin/chroot"

# Paths as the stack's own root sees them: the host's, or the chroot's.
FRONTEND_DIR = pathlib.Path("/usr/share/zabbix")
SCHEMA_DIR = pathlib.Path("/usr/share/zabbix-server-pgsql")
# The Debian frontend reads its configuration from this fixed path, a constant in CConfigFile.php: the
# stack serves a copy of the frontend with that constant pointing into its state directory.
FRONTEND_CONF = pathlib.Path("/etc/zabbix/zabbix.conf.php")
CONFIG_FILE_CLASS = pathlib.Path("include/classes/core/CConfigFile.php")
# What older versions of this script did instead: write FRONTEND_CONF, moving the host's own file here.
FRONTEND_CONF_BACKUP = pathlib.Path("/etc/zabbix/zabbix.conf.php.before-zabbix-stack")
# What every version of this script writes first: older ones lived at tests/zabbix_stack.py, and their files must
# still be recognised, so the mark keeps that path.
CONF_MARK = "<?php\n// Written by tests/zabbix_stack.py"
POLICY_RC_D = pathlib.Path("/usr/sbin/policy-rc.d")
# php-fpm first: otherwise apt satisfies the frontend's web server dependency with Apache.
PACKAGES = ["php-fpm", "php-cli", "php-pgsql", "nginx", "postgresql",
            "zabbix-server-pgsql", "zabbix-frontend-php", "zabbix-agent", "zabbix-agent2"]
# What each version runs on: the host's packages, or a chroot of that Debian suite.
VERSIONS = {
    "6.0": {"suite": None, "packages": PACKAGES,
            # 6.0 takes the session in the request body; the Authorization header came in 6.4.
            "bearer": False},
    "7.0": {"suite": "trixie", "debian": "13",
            "packages": ["php-fpm", "php-cli", "php-pgsql", "postgresql", "zabbix-server-pgsql",
                         "zabbix-frontend-php", "zabbix-agent", "zabbix-agent2", "python3", "python3-venv",
                         "ca-certificates"],
            # 7.0 deprecates the body's "auth": the session goes in an Authorization: Bearer header.
            "bearer": True},
}
DEFAULT_VERSION = "6.0"
# Written into a chroot when debootstrap has finished setting it up.
CHROOT_MARK = pathlib.Path("/etc/zabbix-exalate-stack.json")
# What make_venv copies to build the package, and hashes to know when to rebuild it.
PROJECT_SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "zabbix_exalate")
FRONTEND_LOCALE = "en_US.UTF-8"  # the frontend's default language
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# Debian's proxy package conflicts with its server package: the stack unpacks it (dpkg-deb -x) into the state
# directory rather than installing it; it needs no library that the server's package does not already bring.
PROXY_PACKAGE = "zabbix-proxy-sqlite3"
PROXY_NAME = "exalate-e2e-proxy"
# What the server and the proxy share in their configuration files.
DAEMON_SETTINGS = """\
# Room for the configuration of the benchmark's hosts (tests/bench/bench_zabbix.py: 13,000 items a host of a
# 1,000-connection node); the default 32M ran out.
CacheSize=256M
# Few processes: one agent host to poll.
StartPollers=2
StartTrappers=2
StartDiscoverers=0
# The most a poller waits: longer than any agent Timeout, so the agent's own timeout message arrives.
Timeout=30
LogSlowQueries=0
"""
ZABBIX_PORTS = (20000, 32767)  # what Zabbix takes as a ListenPort, below the kernel's ephemeral range


class StackError(RuntimeError):
    """A daemon that does not come up, or an API call that fails."""


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


def _mountinfo() -> List[str]:
    """Every mount point of this mount namespace, as a path."""
    points = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            # Field 5 is the mount point, with space, tab, newline and backslash escaped in octal.
            points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4]))
    return points


def _debian_mirror() -> str:
    """The Debian mirror apt already uses: the first source that serves the host's own suite."""
    if os.environ.get("ZABBIX_STACK_MIRROR"):
        return os.environ["ZABBIX_STACK_MIRROR"]
    codename = ""
    try:
        for line in pathlib.Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                codename = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    sources = []  # (uri, suites)
    apt = pathlib.Path("/etc/apt")
    for path in [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()  # drop "[signed-by=...]"
            if len(words) >= 3 and words[0] == "deb":
                sources.append((words[1], [words[2]]))
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        try:
            stanzas = re.split(r"\n\s*\n", path.read_text())
        except OSError:
            continue
        for stanza in stanzas:
            fields = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ", "\t")):
                    name, value = line.split(":", 1)
                    fields[name.strip().lower()] = value.split()
            if "deb" in fields.get("types", []) and fields.get("enabled", ["yes"]) != ["no"]:
                sources.extend((uri, fields.get("suites", [])) for uri in fields.get("uris", []))
    for uri, suites in sources:
        if codename and codename in suites:
            return uri.rstrip("/")
    for uri, _ in sources:
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    raise StackError("found no Debian mirror in /etc/apt/sources.list(.d): set ZABBIX_STACK_MIRROR")


def make_venv(project_dir, state_dir, version: Optional[str] = None) -> str:
    """A venv in state_dir with the project installed, built with the Python of that stack's root.

    version defaults to the one the stack in state_dir was installed or started with. Returns its bin dir.
    """
    return Stack(state_dir, version).make_venv(project_dir)


class Stack:
    """One Zabbix stack whose database, configuration, logs and pid files live in state_dir.

    version "6.0" runs the host's Debian 12 packages. version "7.0" runs Debian 13's inside a chroot, self.root,
    beside state_dir; state_dir is bind-mounted into the chroot at its own path, so every path under it means
    the same file inside and outside: put there what the agents' commands must read (their configuration).
    """

    def __init__(self, state_dir=None, version: Optional[str] = None):
        if version is not None and version not in VERSIONS:
            raise StackError(f"Zabbix {version} is not one of {', '.join(VERSIONS)}")
        if state_dir is None:
            base = os.environ.get("ZABBIX_STACK_DIR") or DEFAULT_DIR
            state_dir = base if (version or DEFAULT_VERSION) == DEFAULT_VERSION else f"{base}-{version}"
        self.state_dir = pathlib.Path(state_dir).resolve()
        self.state_file = self.state_dir / "stack.json"
        state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        recorded = state.get("version", DEFAULT_VERSION if state else None)
        if version and recorded and version != recorded:
            raise StackError(f"{self.state_dir} holds a Zabbix {recorded} stack, not {version}: choose another "
                             f"directory")
        self.version: str = version or recorded or DEFAULT_VERSION
        self.suite: Optional[str] = VERSIONS[self.version]["suite"]
        # The root the stack's programs run in: "/" or a Debian chroot beside the state directory.
        self.root = self.state_dir.with_name(f"{self.state_dir.name}-{self.suite}") if self.suite else HOST_ROOT
        self.pg_dir = self.state_dir / "postgres"        # owned by postgres: cluster, socket, log
        self.pg_data = self.pg_dir / "data"
        self.zabbix_dir = self.state_dir / "zabbix"      # owned by zabbix: configs, pid files, logs, sockets
        self.frontend_dir = self.state_dir / "frontend"  # a copy of the frontend that reads frontend_conf
        self.frontend_conf = self.state_dir / "zabbix.conf.php"
        self.frontend_log = self.state_dir / "frontend.log"  # php -S: requests
        self.php_log = self.state_dir / "php.log"            # the frontend's PHP errors and deprecation notices
        self.frontend_pid = self.state_dir / "frontend.pid"
        self.ports: Dict[str, int] = state.get("ports", {})
        self._auth: Optional[str] = None
        self._zabbix_version: Optional[str] = None

    # Where things are.

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

    @property
    def proxy_port(self) -> int:
        """Where the proxy's trapper listens: send's --server, an agent's ServerActive."""
        return self._port("proxy")

    @property
    def proxy_name(self) -> str:
        """The proxy's name in Zabbix (its Hostname): add-host's --proxy."""
        return PROXY_NAME

    @property
    def proxy_package(self) -> pathlib.Path:
        """Where the proxy's package is unpacked: a path under the state directory, the same in a chroot."""
        return self.state_dir / "proxy-package"

    @property
    def chrooted(self) -> bool:
        return self.root != HOST_ROOT

    @property
    def zabbix_version(self) -> str:
        """The exact version the running frontend reports (apiinfo.version), e.g. "7.0.22"."""
        if self._zabbix_version is None:
            self._zabbix_version = self.api("apiinfo.version")
        return self._zabbix_version

    def host_path(self, path) -> pathlib.Path:
        """Where a path of the stack's root (e.g. /etc/zabbix/zabbix_agentd.conf) is on the host.

        Paths under state_dir are the same on both sides.
        """
        path = pathlib.Path(path)
        if not self.chrooted or path == self.state_dir or self.state_dir in path.parents:
            return path
        return self.root / path.relative_to("/")

    def _ids(self, user: str):
        """(uid, gid) of a user of the stack's root: a chroot's users need not have the host's ids."""
        for line in self.host_path("/etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == user:
                return int(fields[2]), int(fields[3])
        raise StackError(f"no user {user} in {self.host_path('/etc/passwd')}: run install first")

    def chown(self, path, user: str = "zabbix") -> None:
        """Give a file to a user of the stack's root (e.g. the agents' configuration file to zabbix)."""
        uid, gid = self._ids(user)
        os.chown(path, uid, gid)

    def _cmd(self, cmd, user: Optional[str] = None, cwd=None) -> List[str]:
        """cmd run inside the stack's root, in cwd, as user (with only that user's group)."""
        prefix = [CHROOT, str(self.root)] if self.chrooted else []
        if cwd is not None:
            prefix += ["/usr/bin/env", "-C", str(cwd)]  # chroot starts its command in /
        if user is not None:
            prefix += ["/usr/bin/setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"]
        return prefix + [str(c) for c in cmd]

    def _exists(self, path) -> bool:
        return self.host_path(path).exists()

    def _pg_bin(self, name: str) -> Optional[str]:
        """The newest PostgreSQL's own binaries: PATH may hold another version's wrappers."""
        found = sorted(self.host_path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
        return f"/usr/lib/postgresql/{found[-1].parts[-3]}/bin/{name}" if found else None

    def _launch(self, cmd, program: str, pidfile: pathlib.Path, out: pathlib.Path, env: Dict[str, str],
                user: Optional[str] = None, cwd=None) -> None:
        """Start a daemon that stays in the foreground, in a session of its own, and write its pid."""
        with open(out, "wb") as output:
            proc = subprocess.Popen(self._cmd(cmd, user, cwd), stdin=subprocess.DEVNULL, stdout=output,
                                    stderr=output, env=env, start_new_session=True)
        # chroot, env and setpriv each exec the next: the pid is the daemon's once it has become the program.
        _wait(lambda: proc.poll() is not None or _alive(proc.pid, program), 10)
        pidfile.write_text(f"{proc.pid}\n")

    # The chroot (7.0).

    def _mounts(self):
        """(mount point, mount arguments) of what the chroot needs, in mounting order."""
        if not self.chrooted:
            return []
        return [(self.root / "proc", ["-t", "proc", "proc"]),
                (self.root / "dev" / "shm", ["-t", "tmpfs", "-o", "mode=1777,size=512m", "shm"]),  # PostgreSQL
                (self.host_path(self.state_dir.parent) / self.state_dir.name, ["--bind", str(self.state_dir)])]

    def _mount(self) -> None:
        mounted = _mountinfo()
        for point, args in self._mounts():
            if str(point) not in mounted:
                point.mkdir(parents=True, exist_ok=True)
                _run(["mount", *args, point], f"mount {point}")

    def _unmount(self) -> None:
        """Unmount everything under the chroot, deepest first (also what an interrupted run left)."""
        if not self.chrooted:
            return
        inside = [p for p in _mountinfo() if pathlib.Path(p) == self.root or self.root in pathlib.Path(p).parents]
        for point in sorted(set(inside), key=len, reverse=True):
            if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                _run(["umount", "--lazy", point], f"umount {point}")

    def _make_root(self) -> None:
        """debootstrap the chroot once (about a minute), from the mirror the host's apt uses."""
        mark = self.host_path(CHROOT_MARK)
        if mark.exists():
            return
        self._unmount()
        if self.root.exists():  # an interrupted debootstrap
            if any(self.root in pathlib.Path(p).parents for p in _mountinfo()):
                raise StackError(f"{self.root} still has something mounted: unmount it before it is deleted")
            shutil.rmtree(self.root)
        mirror = _debian_mirror()
        if not shutil.which("debootstrap"):
            self._apt_get(HOST_ROOT, ["install", "-y", "-q", "--no-install-recommends", "debootstrap"])
        _say(f"creating a Debian {VERSIONS[self.version]['debian']} ({self.suite}) chroot in {self.root} "
             f"from {mirror} (about a minute)")
        self.root.parent.mkdir(parents=True, exist_ok=True)
        _run(["debootstrap", "--variant=minbase", "--components=main", self.suite, self.root, mirror],
             f"debootstrap {self.suite}")
        # Packages start nothing: the stack starts its daemons itself, on ports of its own.
        policy = self.host_path(POLICY_RC_D)
        policy.write_text("#!/bin/sh\n# tests/support/zabbix_stack.py: no service starts in this chroot\n"
                          "exit 101\n")
        policy.chmod(0o755)
        # A throwaway system: no fsync per file, no documentation, no cached .debs, no recommends.
        (self.host_path("/etc/dpkg/dpkg.cfg.d") / "zabbix-exalate-stack").write_text(
            "force-unsafe-io\npath-exclude=/usr/share/man/*\npath-exclude=/usr/share/doc/*\n"
            "path-include=/usr/share/doc/*/copyright\n")
        (self.host_path("/etc/apt/apt.conf.d") / "90zabbix-exalate-stack").write_text(
            'APT::Install-Recommends "false";\nAPT::Keep-Downloaded-Packages "false";\n')
        # No "main" PostgreSQL cluster: the stack creates its own.
        createcluster = self.host_path("/etc/postgresql-common/createcluster.d")
        createcluster.mkdir(parents=True, exist_ok=True)
        (createcluster / "zabbix-exalate-stack.conf").write_text("create_main_cluster = false\n")
        # pip inside the chroot trusts what the host trusts (an intercepting proxy's CA, say).
        local_cas = pathlib.Path("/usr/local/share/ca-certificates")
        if local_cas.is_dir():
            shutil.copytree(local_cas, self.host_path(local_cas), dirs_exist_ok=True)
        # The host's zabbix and postgres ids where they are free: a file the host gives to zabbix is then
        # zabbix's in the chroot too (chown() works either way).
        for user in ("postgres", "zabbix"):
            try:
                entry = pwd.getpwnam(user)
            except KeyError:
                continue
            self._add_user(entry)
        mark.write_text(json.dumps({"suite": self.suite, "mirror": mirror, "created": time.ctime()}) + "\n")

    def _add_user(self, entry: pwd.struct_passwd) -> None:
        passwd, group = (self.host_path(f"/etc/{name}").read_text().splitlines() for name in ("passwd", "group"))
        if any(line.split(":")[0] == entry.pw_name or line.split(":")[2] == str(entry.pw_uid) for line in passwd):
            return
        gids = {line.split(":")[2] for line in group}
        if any(line.split(":")[0] == entry.pw_name for line in group) or str(entry.pw_gid) in gids:
            return
        _run(self._cmd(["groupadd", "--system", "--gid", entry.pw_gid, entry.pw_name]), "groupadd")
        _run(self._cmd(["useradd", "--system", "--uid", entry.pw_uid, "--gid", entry.pw_gid, "--no-create-home",
                        "--home-dir", entry.pw_dir, "--shell", entry.pw_shell, "--comment", entry.pw_gecos,
                        entry.pw_name]), "useradd")

    # Packages.

    def _missing_packages(self) -> List[str]:
        """The packages of the stack that are not installed; what is installed is left as it is (never upgraded)."""
        wanted = list(VERSIONS[self.version]["packages"])
        if not self._has_locale():
            wanted.append("locales")  # the definitions localedef builds the frontend's locale from
        if not self._exists("/usr/bin/python3") or subprocess.run(
                self._cmd(["/usr/bin/python3", "-c", "import ensurepip, venv"]), capture_output=True).returncode:
            wanted += ["python3", "python3-venv"]
        listed = subprocess.run(self._cmd(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\\n",
                                           *wanted]), capture_output=True, text=True).stdout
        installed = {line.split()[0] for line in listed.splitlines() if line.endswith(" installed")}
        return list(dict.fromkeys(p for p in wanted if p not in installed))

    def _has_locale(self) -> bool:
        listed = subprocess.run(self._cmd(["locale", "-a"]), capture_output=True, text=True).stdout.split()
        return FRONTEND_LOCALE.lower().replace("-", "") in {name.lower().replace("-", "") for name in listed}

    def _make_locale(self) -> None:
        """The frontend's pages and graphs need en_US.UTF-8 (else "Locale for language en_US is not found"), which
        a stock host may lack: build it, as locale-gen would, without changing the host's default locale."""
        if not self._has_locale():
            _say(f"making the {FRONTEND_LOCALE} locale" + (f" in {self.root}" if self.chrooted else ""))
            _run(self._cmd(["localedef", "-i", "en_US", "-c", "-f", "UTF-8", "-A", "/usr/share/locale/locale.alias",
                            FRONTEND_LOCALE]), "localedef")

    def _apt_get(self, root: pathlib.Path, args: List[str]) -> None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        cmd = ([CHROOT, str(root)] if root != HOST_ROOT else []) + ["apt-get", *args]
        if subprocess.run(cmd, env=env).returncode != 0:
            raise StackError(f"apt-get {' '.join(args)} failed")

    def install(self) -> None:
        """apt-get install what is missing, with services kept from starting on their default ports.

        For 7.0, first create the chroot (debootstrap) and mount what it needs.
        """
        if self.chrooted:
            _require_root()
            self._make_root()
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._save()  # so that make_venv(project, state_dir) knows the version
            self._mount()
        missing = self._missing_packages()
        if not missing:
            self._make_locale()
            self._unpack_proxy()
            return
        _say("installing " + " ".join(missing) + (f" in {self.root}" if self.chrooted else ""))
        policy = self.host_path(POLICY_RC_D)
        saved = None
        ours = not (policy.exists() and subprocess.run(self._cmd([POLICY_RC_D])).returncode == 101)
        if ours:
            if policy.exists():
                saved = policy.with_name("policy-rc.d.before-zabbix-stack")
                policy.rename(saved)
            policy.write_text("#!/bin/sh\n# tests/support/zabbix_stack.py: no service starts during apt-get\n"
                              "exit 101\n")
            policy.chmod(0o755)
        install = ["install", "-y", "-q", "--no-install-recommends", "--no-upgrade", *missing]
        try:
            if not list(self.host_path("/var/lib/apt/lists").glob("*_Packages*")):
                self._apt_get(self.root, ["update", "-q"])
            try:
                self._apt_get(self.root, install)
            except StackError:
                self._apt_get(self.root, ["update", "-q"])
                self._apt_get(self.root, install)
        finally:
            if ours:
                policy.unlink()
            if saved:
                saved.rename(policy)
        self._make_locale()
        self._unpack_proxy()

    def _unpack_proxy(self) -> None:
        """apt-get download the root's zabbix-proxy-sqlite3 and unpack it, once (see PROXY_PACKAGE)."""
        if (self.proxy_package / "usr" / "sbin" / "zabbix_proxy").exists():
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.chrooted:
            self._mount()  # the chroot's apt-get writes into the state directory
        with tempfile.TemporaryDirectory(dir=self.state_dir) as tmp:
            os.chmod(tmp, 0o777)  # apt downloads as its _apt user where it may
            _say(f"unpacking {PROXY_PACKAGE} into {self.proxy_package}")
            _run(self._cmd(["apt-get", "download", "-q", PROXY_PACKAGE], cwd=tmp), f"apt-get download {PROXY_PACKAGE}")
            debs = list(pathlib.Path(tmp).glob("*.deb"))
            if len(debs) != 1:
                raise StackError(f"apt-get download {PROXY_PACKAGE} left {len(debs)} .deb files")
            unpacked = pathlib.Path(tmp) / "root"
            _run(["dpkg-deb", "-x", debs[0], unpacked], f"dpkg-deb -x {debs[0].name}")
            shutil.rmtree(self.proxy_package, ignore_errors=True)
            unpacked.rename(self.proxy_package)
        _open_up(self.proxy_package)

    def make_venv(self, project_dir) -> str:
        """A venv in state_dir with the project installed (not editable), rebuilt only when its sources change.

        It is built with the root's /usr/bin/python3 (the chroot's for 7.0; never a Python under /root, which
        the zabbix user cannot run), from a copy of the sources. Returns its bin dir, the same path inside the
        root as outside.
        """
        project, venv = pathlib.Path(project_dir).resolve(), self.state_dir / "venv"
        _check_reachable(venv)
        files = sorted(p for name in PROJECT_SOURCES for p in ([project / name] + list((project / name).rglob("*")))
                       if p.is_file() and "__pycache__" not in p.parts)
        digest = hashlib.sha256(f"{self.version} {self.root}\0".encode())
        for path in files:
            digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes() + b"\0")
        stamp = venv / "project-sources.sha256"
        if stamp.exists() and stamp.read_text() == digest.hexdigest() and (venv / "bin" / "zabbix-exalate").exists():
            return str(venv / "bin")
        _say(f"building {venv} from {project}" + (f" with the Python of {self.root}" if self.chrooted else ""))
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        self._mount()  # the chroot's Python writes into the state directory
        _run(self._cmd(["/usr/bin/python3", "-m", "venv", venv]), "python3 -m venv")
        # Build from a copy: an in-tree build leaves build/ and *.egg-info in the checkout.
        with tempfile.TemporaryDirectory(dir=venv.parent) as tmp:
            for path in files:
                target = pathlib.Path(tmp) / path.relative_to(project)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            _run(self._cmd([venv / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", tmp]),
                 "pip install")
        stamp.write_text(digest.hexdigest())
        _open_up(venv)
        return str(venv / "bin")

    # Start and stop.

    def _save(self) -> None:
        self.state_file.write_text(json.dumps({"version": self.version, "ports": self.ports}, indent=2) + "\n")

    def start(self, userparameter_file=None, agent_env: Optional[Dict[str, str]] = None,
              agent_hostname: str = DEFAULT_HOSTNAME, venv_bin=None, agent_timeout: int = 10,
              server_options: Optional[Dict[str, str]] = None) -> "Stack":
        """Start (restart) everything; return once the API, the server and the agents answer.

        The agents include (a copy of) userparameter_file and run its commands with venv_bin first on PATH and
        agent_env (e.g. ZABBIX_EXALATE_CONFIG) in their environment: in a chroot, paths under state_dir.
        server_options are extra zabbix_server.conf lines (e.g. {"MaxConcurrentChecksPerPoller": "2"}).
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
            self.chown(directory, owner)
            directory.chmod(0o755)
        self._mount()
        names = ["postgres", "server", "frontend", "agent", "agent2", "proxy"]
        # The ones of the last start while they are free; below 32768, for Zabbix refuses a ListenPort above it.
        try:
            self.ports = dict(zip(names, free_ports(len(names), ZABBIX_PORTS, [self.ports.get(n, 0) for n in names])))
        except OSError as exc:
            raise StackError(str(exc)) from None
        self._save()
        try:
            self._start_postgres()
            self._start_server(server_options or {})
            self._start_frontend()
            self._start_proxy()
            self._start_agents(userparameter_file, agent_env or {}, agent_hostname, venv_bin, agent_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every daemon of this stack by its pid file, then unmount the chroot's mounts; idempotent."""
        _kill(self.zabbix_dir / "agentd.pid", "zabbix_agentd")
        _kill(self.zabbix_dir / "agent2.pid", "zabbix_agent2")
        _kill(self.frontend_pid, "php", whole_group=True)  # php -S leaves its workers running
        _kill(self.zabbix_dir / "proxy.pid", "zabbix_proxy")
        self._restore_frontend_conf()
        _kill(self.zabbix_dir / "server.pid", "zabbix_server")
        if (self.pg_data / "postmaster.pid").exists() and self._pg_bin("pg_ctl"):
            subprocess.run(self._cmd([self._pg_bin("pg_ctl"), "-D", self.pg_data, "-m", "fast", "-w", "stop"],
                                     "postgres", self.pg_dir), capture_output=True)
        self._unmount()
        self._auth = None
        self._zabbix_version = None

    def reset(self) -> None:
        """Stop and delete the database, configuration and logs (not the venv, the chroot, nor the ports)."""
        self.stop()
        shutil.rmtree(self.pg_dir, ignore_errors=True)
        shutil.rmtree(self.zabbix_dir, ignore_errors=True)
        for log in (self.frontend_log, self.php_log):
            log.unlink(missing_ok=True)

    def status(self) -> Dict[str, Optional[int]]:
        """The pid of each running daemon, None for those not running."""
        daemons = {"postgres": (self.pg_data / "postmaster.pid", "postgres"),
                   "server": (self.zabbix_dir / "server.pid", "zabbix_server"),
                   "frontend": (self.frontend_pid, "php"),
                   "proxy": (self.zabbix_dir / "proxy.pid", "zabbix_proxy"),
                   "agent": (self.zabbix_dir / "agentd.pid", "zabbix_agentd"),
                   "agent2": (self.zabbix_dir / "agent2.pid", "zabbix_agent2")}
        running = {}
        for name, (pidfile, program) in daemons.items():
            pid = _read_pid(pidfile)
            running[name] = pid if _alive(pid, program) else None
        return running

    # The API.

    def api(self, method: str, params=None):
        """Call the Zabbix API as Admin (logging in once) and return the result; StackError on an API error."""
        if method == "apiinfo.version":
            return self._call(method, params)  # 6.0 refuses this call with a token
        if self._auth is None:
            self._auth = self._call("user.login", {"username": ADMIN_USER, "password": ADMIN_PASSWORD})
        return self._call(method, params, self._auth)

    def _call(self, method: str, params, auth: Optional[str] = None):
        body = {"jsonrpc": "2.0", "method": method, "params": params if params is not None else {}, "id": 1}
        headers = {"Content-Type": "application/json-rpc"}
        if auth and VERSIONS[self.version]["bearer"]:
            headers["Authorization"] = f"Bearer {auth}"
        elif auth:
            body["auth"] = auth
        request = urllib.request.Request(self.api_url, json.dumps(body).encode(), headers)
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

    # The daemons.

    def _start_postgres(self) -> None:
        ready = self.pg_dir / "zabbix-database-loaded"
        if not ready.exists():  # never initialised, or a load that was interrupted
            shutil.rmtree(self.pg_data, ignore_errors=True)
            _say("creating the database (about 25 s)")
            _run(self._cmd([self._pg_bin("initdb"), "-D", self.pg_data, "--auth=trust", "--encoding=UTF8",
                            "--no-locale"], "postgres", self.pg_dir), "initdb")
        log = self.pg_dir / "postgres.log"
        # A throwaway database: durability is not worth the time it costs to load the schema.
        options = (f"-p {self.db_port} -k {self.pg_dir} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off -c synchronous_commit=off "
                   # Statistics soon after an import: a plan made on the empty tables' took minutes to link a
                   # template to a host (host.create, 6.0.14).
                   "-c autovacuum_naptime=5s")
        proc = subprocess.run(self._cmd([self._pg_bin("pg_ctl"), "-D", self.pg_data, "-o", options, "-l", log,
                                         "-w", "-t", "60", "start"], "postgres", self.pg_dir),
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise _failed("postgres", f"did not start ({proc.stdout.strip()} {proc.stderr.strip()})", log)
        if not ready.exists():
            self._psql("postgres", "postgres", "CREATE ROLE zabbix LOGIN PASSWORD 'zabbix'; "
                                               "CREATE DATABASE zabbix OWNER zabbix;")
            for name in ("schema", "images", "data"):
                with gzip.open(self.host_path(SCHEMA_DIR / f"{name}.sql.gz")) as dump:
                    self._psql("zabbix", "zabbix", dump.read().decode())
            # data.sql ships this host enabled, pointing at 127.0.0.1:10050: it would poll our agent.
            self._psql("zabbix", "zabbix", "UPDATE hosts SET status=1 WHERE host='Zabbix server';")
            ready.touch()

    def _psql(self, user: str, database: str, sql: str) -> None:
        _run(self._cmd([self._pg_bin("psql"), "-q", "-v", "ON_ERROR_STOP=1", "-h", self.pg_dir, "-p", self.db_port,
                        "-U", user, "-d", database]), f"psql as {user}", input=sql)

    def _start_server(self, options: Dict[str, str]) -> None:
        conf, log, pidfile = (self.zabbix_dir / name for name in ("server.conf", "server.log", "server.pid"))
        extra = "".join(f"{name}={value}\n" for name, value in options.items())
        conf.write_text(f"""# Written by tests/support/zabbix_stack.py
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
# A trend slot for each numeric item: the default 4M ran out at four hosts of 1,000 connections (58,000 items).
TrendCacheSize=32M
{DAEMON_SETTINGS}{extra}""")
        log.unlink(missing_ok=True)  # each start begins a new log, so that an error quotes this start's lines
        _run(self._cmd(["/usr/sbin/zabbix_server", "-c", conf], cwd=self.zabbix_dir), "zabbix_server")
        _await("zabbix_server", "zabbix_server", pidfile, log, lambda: _listening(self.server_port), 60)

    def _start_frontend(self) -> None:
        self._copy_frontend()
        self.php_log.write_text("")  # each start begins a new log, which a test may read before PHP writes it
        self._launch(["/usr/bin/php", "-S", f"127.0.0.1:{self._port('frontend')}", "-t", self.frontend_dir,
                      "-d", "date.timezone=UTC", "-d", "memory_limit=256M", "-d", "post_max_size=16M",
                      "-d", "max_execution_time=300",
                      # PHP's messages, the API's E_USER_DEPRECATED notices among them, in a file of their own.
                      "-d", "log_errors=1", "-d", "display_errors=0", "-d", f"error_log={self.php_log}"],
                     "php", self.frontend_pid, self.frontend_log, cwd=self.frontend_dir,
                     env={**os.environ, "PHP_CLI_SERVER_WORKERS": "4"})  # the browser loads pages in parallel

        def answers() -> bool:
            try:
                self._zabbix_version = self.api("apiinfo.version")
                return self._zabbix_version.startswith(self.version + ".")
            except OSError:
                return False
        _await("the frontend (php -S)", "php", self.frontend_pid, self.frontend_log, answers, 60)
        if not self._zabbix_version.startswith(self.version + "."):
            raise StackError(f"the frontend is Zabbix {self._zabbix_version}, not {self.version}")
        self.api("host.get", {"countOutput": True})  # logs in: proves that the frontend reaches the database

    def _start_proxy(self) -> None:
        """An active proxy: registered through the API, it asks the server for its configuration and sends
        what it collects; it polls its hosts' agents and takes `send`'s documents on its own trapper port."""
        v7 = self.version >= "7.0"
        found = self.api("proxy.get", {"filter": {"name" if v7 else "host": PROXY_NAME}, "output": ["proxyid"]})
        if not found:
            # 6.0: status 5 is an active proxy; 7.0: operating_mode 0.
            self.api("proxy.create", {"name": PROXY_NAME, "operating_mode": 0} if v7 else
                     {"host": PROXY_NAME, "status": 5})
        conf, log, pidfile, db = (self.zabbix_dir / name for name in ("proxy.conf", "proxy.log", "proxy.pid",
                                                                      "proxy.db"))
        sockets = self.zabbix_dir / "proxy-sockets"  # its own: the server's socket names may be the same
        sockets.mkdir(exist_ok=True)
        self.chown(sockets, "zabbix")
        if not db.exists():
            schema = self.proxy_package / "usr" / "share" / PROXY_PACKAGE / "schema.sql.gz"
            with gzip.open(schema) as dump, sqlite3.connect(db) as connection:
                connection.executescript(dump.read().decode())
            self.chown(db, "zabbix")
        conf.write_text(f"""# Written by tests/support/zabbix_stack.py
ProxyMode=0
Server=127.0.0.1:{self.server_port}
Hostname={PROXY_NAME}
ListenIP=127.0.0.1
ListenPort={self.proxy_port}
DBName={db}
PidFile={pidfile}
LogFile={log}
SocketDir={sockets}
# New hosts and items reach the proxy within seconds rather than an hour (6.0) or 10 s (7.0).
{'ProxyConfigFrequency' if v7 else 'ConfigFrequency'}=2
DataSenderFrequency=1
{DAEMON_SETTINGS}""")
        log.unlink(missing_ok=True)
        program = self.proxy_package / "usr" / "sbin" / "zabbix_proxy"
        _run(self._cmd([program, "-c", conf], cwd=self.zabbix_dir), "zabbix_proxy")
        _await("zabbix_proxy", "zabbix_proxy", pidfile, log, lambda: _listening(self.proxy_port), 60)

    def _copy_frontend(self) -> None:
        """A copy of the root's frontend that reads frontend_conf, not the root's /etc/zabbix/zabbix.conf.php.

        Recopied when the package changes. Relative symlinks (fonts) are made absolute so that they still
        point into the package.
        """
        source = self.host_path(FRONTEND_DIR)
        defines = (source / "include" / "defines.inc.php").stat()
        stamp_file = self.state_dir / "frontend.stamp"
        stamp = f"{defines.st_size} {defines.st_mtime_ns} {self.frontend_conf}\n"
        if not (stamp_file.exists() and stamp_file.read_text() == stamp and self.frontend_dir.is_dir()):
            shutil.rmtree(self.frontend_dir, ignore_errors=True)
            shutil.copytree(source, self.frontend_dir, symlinks=True)
            for link in [p for p in self.frontend_dir.rglob("*") if p.is_symlink()]:
                target = os.readlink(link)
                if not os.path.isabs(target):
                    inside = FRONTEND_DIR / link.parent.relative_to(self.frontend_dir)
                    link.unlink()
                    link.symlink_to(os.path.normpath(inside / target))
            config_class = self.frontend_dir / CONFIG_FILE_CLASS
            text, found = re.subn(r"const CONFIG_FILE_PATH = '[^']*';",
                                  f"const CONFIG_FILE_PATH = '{self.frontend_conf}';", config_class.read_text())
            if found != 1:
                raise StackError(f"found no CONFIG_FILE_PATH constant in {source / CONFIG_FILE_CLASS}")
            config_class.write_text(text)
            stamp_file.write_text(stamp)
        self.frontend_conf.write_text(f"""{CONF_MARK} for {self.state_dir}
$DB['TYPE'] = 'POSTGRESQL';
$DB['SERVER'] = '127.0.0.1';
$DB['PORT'] = '{self.db_port}';
$DB['DATABASE'] = 'zabbix';
$DB['USER'] = 'zabbix';
$DB['PASSWORD'] = 'zabbix';
$ZBX_SERVER = '127.0.0.1';
$ZBX_SERVER_PORT = '{self.server_port}';
$ZBX_SERVER_NAME = 'zabbix-exalate stack {self.version}';
$IMAGE_FORMAT_DEFAULT = IMAGE_FORMAT_PNG;
""")

    def _restore_frontend_conf(self) -> None:
        """Undo what an older version of this script did: write /etc/zabbix/zabbix.conf.php for this stack."""
        conf, backup = self.host_path(FRONTEND_CONF), self.host_path(FRONTEND_CONF_BACKUP)
        try:
            ours = conf.read_text().startswith(f"{CONF_MARK} for {self.state_dir}\n")
        except OSError:
            return
        if ours:
            conf.unlink()
            if backup.exists():
                backup.rename(conf)

    def _start_agents(self, userparameter_file, agent_env, hostname, venv_bin, timeout) -> None:
        """The classic agent and agent 2, with the same UserParameters: both must serve them alike."""
        include = ""
        if userparameter_file:
            # A copy in the state directory: the agents in a chroot cannot see the checkout.
            copy = self.zabbix_dir / "userparameters.conf"
            shutil.copyfile(userparameter_file, copy)
            copy.chmod(0o644)
            include = f"Include={copy}\n"
        # The agents' commands inherit their environment: that is how they find zabbix-exalate and its config.
        env = {"PATH": f"{venv_bin}:{SYSTEM_PATH}" if venv_bin else SYSTEM_PATH, **agent_env}
        for name, program, port, extra in (
                ("agentd", "zabbix_agentd", self.agent_port, f"PidFile={self.zabbix_dir / 'agentd.pid'}\n"),
                ("agent2", "zabbix_agent2", self.agent2_port,
                 f"PidFile={self.zabbix_dir / 'agent2-self.pid'}\nLogType=file\n"
                 f"ControlSocket={self.zabbix_dir / 'agent2.sock'}\n")):
            conf, log, pidfile = (self.zabbix_dir / f"{name}.{ext}" for ext in ("conf", "log", "pid"))
            # No ServerActive: the template's items are passive, polled by the server.
            conf.write_text(f"# Written by tests/support/zabbix_stack.py\nServer=127.0.0.1\nListenIP=127.0.0.1\n"
                            f"ListenPort={port}\nHostname={hostname}\nLogFile={log}\nTimeout={timeout}\n"
                            f"{extra}{include}")
            log.unlink(missing_ok=True)
            if program == "zabbix_agentd":
                _run(self._cmd([f"/usr/sbin/{program}", "-c", conf], cwd=self.zabbix_dir), program, env=env)
            else:
                # Agent 2 neither forks nor drops privileges: run it in the background as zabbix, as its
                # service does, and write its pid at once rather than wait for its own pid file.
                self._launch([f"/usr/sbin/{program}", "-c", conf], program, pidfile,
                             self.zabbix_dir / f"{name}.out", env, user="zabbix", cwd=self.zabbix_dir)
            _await(program, program, pidfile, log, lambda port=port: self.get(port, "agent.ping") == "1", 30)

    def get(self, port: int, key: str) -> str:
        """What the agent on port answers for key, as the server would get it (the root's zabbix_get)."""
        return subprocess.run(self._cmd(["/usr/bin/zabbix_get", "-s", "127.0.0.1", "-p", port, "-k", key]),
                              capture_output=True, text=True, timeout=60).stdout.rstrip("\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["install", "start", "stop", "status"])
    parser.add_argument("--version", choices=sorted(VERSIONS),
                        help=f"Zabbix version: 6.0 from the host's Debian 12 packages, 7.0 from Debian 13's in a "
                             f"chroot [default: the one --dir was used with, else {DEFAULT_VERSION}]")
    parser.add_argument("--dir", help=f"state directory [default: $ZABBIX_STACK_DIR or {DEFAULT_DIR}, "
                                      f"with -7.0 appended for 7.0]")
    parser.add_argument("--fresh", action="store_true", help="start: delete the database first")
    parser.add_argument("--userparameters", metavar="FILE",
                        help="UserParameter file for the agent [default: userparameters/userparameter_exalate.conf]")
    parser.add_argument("--exalate-config", metavar="FILE",
                        help="ZABBIX_EXALATE_CONFIG for the agent's commands [default: unset]; for 7.0 it is "
                             "copied into the state directory, which the chroot sees")
    args = parser.parse_args(argv)
    try:
        stack = Stack(args.dir, args.version)
        if args.command == "install":
            began = time.monotonic()
            stack.install()
            print(f"Zabbix {stack.version} packages ready in {stack.root} after {time.monotonic() - began:.1f} s")
        elif args.command == "stop":
            stack.stop()
            print(f"stopped the Zabbix {stack.version} stack in {stack.state_dir}")
        elif args.command == "status":
            print(f"Zabbix {stack.version} stack in {stack.state_dir}, root {stack.root}")
            for name, pid in stack.status().items():
                print(f"{name:9} {f'running, pid {pid}' if pid else 'stopped'}")
            if stack.ports:
                print(f"frontend  {stack.url}\nAPI       {stack.api_url}\nagent     127.0.0.1:{stack.agent_port}\n"
                      f"agent 2   127.0.0.1:{stack.agent2_port}\nproxy     127.0.0.1:{stack.proxy_port}, "
                      f"named {stack.proxy_name}")
        else:
            began = time.monotonic()
            _require_root()
            if args.fresh:
                stack.reset()
            userparameters = args.userparameters
            if userparameters is None and DEFAULT_USERPARAMETERS.exists():
                userparameters = DEFAULT_USERPARAMETERS
            stack.install()
            venv_bin = stack.make_venv(REPO) if userparameters else None
            env = {}
            if args.exalate_config:
                config = pathlib.Path(args.exalate_config).resolve()
                if stack.chrooted and stack.state_dir not in config.parents:
                    copy = stack.state_dir / "zabbix_exalate.conf"
                    shutil.copyfile(config, copy)
                    copy.chmod(0o600)
                    stack.chown(copy, "zabbix")
                    config = copy
                env["ZABBIX_EXALATE_CONFIG"] = str(config)
            stack.start(userparameters, env, venv_bin=venv_bin)
            dir_option = f" --dir {args.dir}" if args.dir else (f" --version {stack.version}"
                                                                  if stack.version != DEFAULT_VERSION else "")
            print(f"Zabbix {stack.zabbix_version} is up after {time.monotonic() - began:.1f} s "
                  f"(state in {stack.state_dir}" + (f", chroot {stack.root}" if stack.chrooted else "") + "):\n"
                  f"  frontend  {stack.url}  login {ADMIN_USER} / {ADMIN_PASSWORD}\n"
                  f"  API       {stack.api_url}\n"
                  f"  server    127.0.0.1:{stack.server_port}\n"
                  f"  proxy     127.0.0.1:{stack.proxy_port}, active, named {stack.proxy_name} "
                  f"(add-host --proxy {stack.proxy_name})\n"
                  f"  agent     127.0.0.1:{stack.agent_port}, host name {DEFAULT_HOSTNAME}, "
                  f"{f'UserParameters from {userparameters}' if userparameters else 'no UserParameters'}\n"
                  f"  agent 2   127.0.0.1:{stack.agent2_port}, the same\n"
                  f"  PHP log   {stack.php_log}\n"
                  f"Stop it with: python3 {os.path.relpath(__file__)} stop{dir_option}")
    except StackError as exc:
        print(f"zabbix_stack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
