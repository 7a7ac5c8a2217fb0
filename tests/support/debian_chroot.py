"""A throwaway Debian system for the tests: a debootstrap chroot built once and cached, and, for each use, a
fresh copy of it (an overlay) that is thrown away afterwards.

    base = DebianChroot("/tmp/zabbix-exalate-bookworm", "bookworm", ["python3", "python3-venv"])
    base.ensure()                  # debootstrap minbase + the packages, once; rebuilt when its mark is missing
    with base.fresh() as system:   # a copy of base in which anything may be installed; gone afterwards
        system.run("python3 --version")

Like zabbix_stack.py's 7.0 chroot: packages start no service (policy-rc.d exits 101), pip and apt in
the chroot trust the host's local CA certificates (an intercepting proxy's, say), and the mirror is the one
the host's apt uses (zabbix_stack._debian_mirror, ZABBIX_STACK_MIRROR overrides it).
"""
import contextlib
import fcntl
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import time
from typing import Dict, Iterator, List, Optional, Sequence

from zabbix_stack import CHROOT, POLICY_RC_D, StackError, _debian_mirror, _mountinfo, _run, _say

MARK = pathlib.Path("etc/zabbix-exalate-chroot.json")
LOCAL_CAS = pathlib.Path("/usr/local/share/ca-certificates")
# What a service gets from systemd, and what a root shell on a fresh Debian has.
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "all_proxy",
                   "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")


def proxy_environment() -> Dict[str, str]:
    """The host's proxy settings, if any: the chroot shares its network, so it needs them too."""
    return {name: os.environ[name] for name in PROXY_VARIABLES if os.environ.get(name)}


def unmount_under(root: pathlib.Path) -> None:
    """Unmount root and everything under it, deepest first (also what an interrupted run left)."""
    inside = [p for p in _mountinfo() if pathlib.Path(p) == root or root in pathlib.Path(p).parents]
    for point in sorted(set(inside), key=len, reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            _run(["umount", "--lazy", point], f"umount {point}")


def _mount(point: pathlib.Path, args: Sequence[str]) -> None:
    point.mkdir(parents=True, exist_ok=True)
    _run(["mount", *args, point], f"mount {point}")


class System:
    """A root directory to run commands in with chroot, as root, in a clean environment."""

    def __init__(self, root: pathlib.Path):
        self.root = root

    def path(self, inside) -> pathlib.Path:
        """Where a path of the chroot (e.g. /etc/zabbix/zabbix_agentd.conf) is on the host."""
        return self.root / pathlib.Path(inside).relative_to("/")

    def environment(self, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
        """A root login shell's environment on a fresh Debian, with the host's proxy: none of the host's pip,
        Python or CA variables leak in."""
        return {"PATH": SYSTEMD_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb",
                **proxy_environment(), **(extra or {})}

    def command(self, argv: Sequence, cwd: str = "/", user: Optional[str] = None) -> List[str]:
        """argv run inside the chroot, in cwd, as user (with that user's groups) or root."""
        cmd = [CHROOT, str(self.root), "/usr/bin/env", "-C", cwd]
        if user:
            cmd += ["/usr/bin/setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
        return cmd + [str(a) for a in argv]

    def run(self, script: str, cwd: str = "/", env: Optional[Dict[str, str]] = None, timeout: float = 900,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run a shell command line inside the chroot (sh -c, as a user types it); StackError if it fails."""
        proc = subprocess.run(self.command(["/bin/sh", "-c", script], cwd), env=self.environment(env),
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise StackError(f"in {self.root}, in {cwd}: {script!r} exited {proc.returncode}:\n"
                             f"{_tail_text(proc.stdout)}\n{_tail_text(proc.stderr)}")
        return proc

    def apt_get(self, *args: str) -> None:
        """apt-get install etc., noninteractive; updates the package lists and retries once if that fails."""
        command = "apt-get -q -y --no-install-recommends " + shlex.join(args)
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        if self.run(command, env=env, check=False).returncode != 0:
            self.run("apt-get -q update", env=env)
            self.run(command, env=env)

    def group_id(self, group: str) -> int:
        """A group's id in the chroot (its packages create their users: the host's ids need not match)."""
        for line in self.path("/etc/group").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == group:
                return int(fields[2])
        raise StackError(f"no group {group} in {self.path('/etc/group')}")


class DebianChroot(System):
    """A Debian suite debootstrapped (minbase) into root with packages, once: root/MARK says it is complete."""

    def __init__(self, root, suite: str, packages: Sequence[str]):
        super().__init__(pathlib.Path(root))
        self.suite, self.packages = suite, list(packages)
        self.debs = self.root.with_name(self.root.name + "-debs")  # apt's downloads, kept between runs
        self.pip_cache = self.root.with_name(self.root.name + "-pip")  # pip's cache, kept between runs

    @contextlib.contextmanager
    def locked(self) -> Iterator["DebianChroot"]:
        """Hold the chroot for this process: two test runs at once wait for each other, not share it."""
        self.root.parent.mkdir(parents=True, exist_ok=True)
        with open(self.root.with_name(self.root.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield self

    def ensure(self) -> bool:
        """debootstrap the chroot unless it is complete; True if it was built now."""
        mark = self.root / MARK
        if mark.exists():
            self._installed_system_files()
            return False
        unmount_under(self.root)
        if self.root.exists():  # an interrupted build
            if any(self.root in pathlib.Path(p).parents for p in _mountinfo()):
                raise StackError(f"{self.root} still has something mounted: unmount it before it is deleted")
            shutil.rmtree(self.root)
        mirror = _debian_mirror()
        _say(f"creating a Debian {self.suite} chroot in {self.root} from {mirror} (about a minute)")
        self.root.parent.mkdir(parents=True, exist_ok=True)
        _run(["debootstrap", "--variant=minbase", "--components=main", self.suite, self.root, mirror],
             f"debootstrap {self.suite}")
        # Packages start nothing: a test starts the daemons it wants, on ports of its own.
        policy = self.path(POLICY_RC_D)
        policy.write_text("#!/bin/sh\n# tests/support/debian_chroot.py: no service starts in this chroot\nexit 101\n")
        policy.chmod(0o755)
        # A throwaway system: no fsync per file, no documentation.
        (self.path("/etc/dpkg/dpkg.cfg.d") / "zabbix-exalate-tests").write_text(
            "force-unsafe-io\npath-exclude=/usr/share/man/*\npath-exclude=/usr/share/doc/*\n"
            "path-include=/usr/share/doc/*/copyright\n")
        self._installed_system_files()
        # pip and apt inside trust what the host trusts (an intercepting proxy's CA): ca-certificates adds them.
        if LOCAL_CAS.is_dir():
            shutil.copytree(LOCAL_CAS, self.path(LOCAL_CAS), dirs_exist_ok=True)
        try:
            self._mount_system(self.root)
            self.apt_get("update")
            self.apt_get("install", *self.packages)
            self.run("apt-get clean")
        finally:
            unmount_under(self.root)
        mark.write_text(json.dumps({"suite": self.suite, "mirror": mirror, "packages": self.packages,
                                    "created": time.ctime()}) + "\n")
        return True

    def _installed_system_files(self) -> None:
        """What Debian's installer writes and debootstrap does not: /etc/hosts (localhost resolves)."""
        hosts = self.path("/etc/hosts")
        if not hosts.exists():
            hostname = self.path("/etc/hostname")
            name = hostname.read_text().strip() if hostname.exists() else ""
            hosts.write_text("127.0.0.1\tlocalhost\n" + (f"127.0.1.1\t{name}\n" if name else "") +
                             "\n# The following lines are desirable for IPv6 capable hosts\n"
                             "::1     localhost ip6-localhost ip6-loopback\n"
                             "ff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n")

    @staticmethod
    def _mount_system(root: pathlib.Path) -> None:
        _mount(root / "proc", ["-t", "proc", "proc"])
        _mount(root / "dev" / "shm", ["-t", "tmpfs", "-o", "mode=1777,size=256m", "shm"])  # multiprocessing

    @contextlib.contextmanager
    def fresh(self, work=None) -> Iterator[System]:
        """A copy of the chroot (an overlay on it) with /proc and /dev/shm mounted; unmounted and deleted
        afterwards, whatever happens. apt's .deb files and pip's cache live outside, kept between runs."""
        work = pathlib.Path(work or self.root.with_name(self.root.name + "-run"))
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
        merged, upper, scratch = work / "root", work / "upper", work / "work"
        for directory in (merged, upper, scratch, self.debs / "partial", self.pip_cache):
            directory.mkdir(parents=True, exist_ok=True)
        try:
            _mount(merged, ["-t", "overlay", "overlay", "-o",
                            f"lowerdir={self.root},upperdir={upper},workdir={scratch}"])
            self._mount_system(merged)
            _mount(merged / "var/cache/apt/archives", ["--bind", str(self.debs)])
            _mount(merged / "root/.cache/pip", ["--bind", str(self.pip_cache)])
            yield System(merged)
        finally:
            unmount_under(work)
            shutil.rmtree(work, ignore_errors=True)


def _tail_text(text: str, lines: int = 40) -> str:
    return "\n".join("    " + line for line in text.splitlines()[-lines:])
