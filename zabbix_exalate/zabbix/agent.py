"""The Zabbix agent's side of a host: installing our UserParameters, and running a key as the agent would."""
import errno
import os
import pwd
import re
import secrets
import shlex
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from typing import Dict, List, Optional, Tuple

from ..errors import ConfigError, printable
from .agentconf import Agent

USERPARAMETER_NAME = "userparameter_exalate.conf"
EXAMPLE_CONFIG = "zabbix_exalate.conf.example"
# PATH of a service started by systemd (and of the agent's commands): no /root, no venv.
AGENT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# The shell's own exit statuses: the program was found but could not be run, or was not found at all.
SHELL_CANNOT_EXECUTE = 126
SHELL_NOT_FOUND = 127
# Characters the agent refuses in a key's parameters unless UnsafeUserParameters=1.
UNSAFE = set("\\'\"`*?[]{}~$!&;()<>|#@\n")


def example_config() -> str:
    return resources.files("zabbix_exalate").joinpath("data", EXAMPLE_CONFIG).read_text(encoding="utf-8")


def install(agents: List[Agent], userparameters: str, config_path: str) -> List[str]:
    """Write our UserParameter file for each agent and an example configuration if there is none.

    Returns what was done, one line each, ending with the commands that make the agents read it."""
    done = []
    for agent in agents:
        target = os.path.join(agent.include_dir(USERPARAMETER_NAME), USERPARAMETER_NAME)
        _write(target, userparameters, 0o644)
        done.append(f"wrote {target} (for {agent.config})")
    group = _zabbix_gid()
    if _write(config_path, example_config(), 0o640 if group is not None else 0o600, group, replace=False):
        done.append(f"wrote {config_path} (an example, mode {'0640 root:zabbix' if group is not None else '0600'}): "
                    f"edit its url and credentials")
    else:
        done.append(f"kept {config_path}: it exists")
    done += [f"now run: systemctl restart {agent.service}" for agent in agents]
    return done


def _write(path: str, text: str, mode: int, group: Optional[int] = None, replace: bool = True) -> bool:
    """Write path whole (an agent restarting now never reads half a file), safely in a directory another user
    may write (an include directory owned by zabbix): every step acts on what we opened, never again by name,
    so no link or planted name can turn root's chmod or chown against another file. With replace=False an
    existing path is kept: returns whether path was written."""
    directory, name = os.path.split(os.path.abspath(path))
    tmp = f".{name}.{secrets.token_hex(8)}"  # a name no one can guess, created only if new (O_EXCL)
    dir_fd = _open_directory(directory)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                if group is not None:
                    os.fchown(fd, 0, group)
                os.fchmod(fd, mode)
            if replace:
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                return True
            try:
                os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            except FileExistsError:
                return False  # whatever is there, even a link: kept, not followed
            return True
        finally:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass  # renamed into place (or removed by whoever else can write the directory)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror} (run agent install as root)") from None
    finally:
        os.close(dir_fd)


def _open_directory(directory: str) -> int:
    """The directory, opened one component at a time without following a link: where it resolved to a moment
    ago (links of the setup are followed if only root could have made them), and refused if someone has since
    put a link in its path."""
    real = _trusted_realpath(directory)
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in filter(None, real.split("/")):
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        info = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        reason = "a link was put in its path while we wrote" if exc.errno in (errno.ELOOP, errno.ENOTDIR) \
            else exc.strerror
        raise ConfigError(f"cannot write into {directory}: {reason}") from None
    if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
        os.close(fd)
        # Anyone could replace what we write, and the agent would run their commands: as OpenSSH, refuse.
        raise ConfigError(f"refusing to write into {directory}: every user can write it (run: chmod o-w {real})")
    return fd


def _trusted_realpath(directory: str) -> str:
    """realpath(directory), refusing a link that another user made or could replace: root would write where
    they chose (a file of ours, 0644, in /etc/ld.so.conf.d or the like)."""
    pending, real, hops = [p for p in os.path.abspath(directory).split("/") if p], "/", 0
    trusted = {0, os.geteuid()}  # as OpenSSH: root, or whoever runs us
    while pending:
        part = pending.pop(0)
        path = os.path.join(real, part)
        try:
            info = os.lstat(path)
        except OSError:
            return os.path.realpath(directory)  # missing: opening it gives the reason
        if not stat.S_ISLNK(info.st_mode):
            real = path
            continue
        hops += 1
        holder = os.stat(real)
        loose = holder.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not holder.st_mode & stat.S_ISVTX
        if {info.st_uid, holder.st_uid} - trusted or loose or hops > 40:
            raise ConfigError(f"refusing to follow the link {path}: another user could have made it or "
                              f"could replace it (name the real directory in the agent's Include line instead)")
        target = os.readlink(path)
        real = "/" if target.startswith("/") else real
        pending[:0] = [p for p in target.split("/") if p]
    return os.path.normpath(real)


def _zabbix_gid() -> Optional[int]:
    import grp
    try:
        return grp.getgrnam("zabbix").gr_gid
    except KeyError:
        return None


# --- running a key as the agent would ----------------------------------------------------------

def parse_key(key: str) -> Tuple[str, List[str]]:
    """name[p1,"p 2",...] -> ("name", ["p1", "p 2", ...]), quoted or not, as the agent reads a key."""
    match = re.fullmatch(r"([\w.-]+)(?:\[(.*)\])?", key, re.S)
    if not match:
        raise ConfigError(f"{printable(key)!r} is not an item key (name[parameters])")
    name, inside = match.group(1), match.group(2)
    if inside is None:
        return name, []
    params, i = [], 0
    while True:
        while i < len(inside) and inside[i] == " ":
            i += 1  # the agent ignores spaces before a parameter
        if i < len(inside) and inside[i] == '"':
            end = i + 1
            while end < len(inside) and inside[end] != '"':
                end += 2 if inside[end] == "\\" else 1
            params.append(inside[i + 1:end].replace('\\"', '"'))
            i = inside.find(",", end)
        else:
            comma = inside.find(",", i)
            params.append(inside[i:] if comma < 0 else inside[i:comma])
            i = comma
        if i < 0:
            return name, params
        i += 1


def command_for(agent: Agent, key: str) -> str:
    """The shell command the agent would run for key, from agent (merged: the files it includes read in)."""
    name, params = parse_key(key)
    if agent.first("UnsafeUserParameters", "0") != "1":
        bad = sorted({c for p in params for c in p if c in UNSAFE})
        if bad:
            raise ConfigError(f"the agent refuses this key: a parameter holds {' '.join(map(repr, bad))}, which "
                              f"it allows only with UnsafeUserParameters=1; use the key form from discovery")
    for line in agent.values.get("UserParameter", []):
        defined, _, command = line.partition(",")
        flexible = defined.endswith("[*]")
        if (defined[:-3] if flexible else defined) != name or (params and not flexible):
            continue
        if not flexible:
            return command
        return re.sub(r"\$(\$|\d)", lambda m: "$" if m.group(1) == "$" else
                      (params[int(m.group(1)) - 1] if 0 < int(m.group(1)) <= len(params) else
                       (command if m.group(1) == "0" else "")), command)
    raise ConfigError(f"no UserParameter for {name} in the files {agent.config} includes: run "
                      f"'zabbix-exalate agent install' and restart the agent")


@dataclass
class Seen:
    user: str
    command: str
    output: str      # what the agent stores: stdout and stderr together, trailing whitespace removed
    status: Optional[int]  # None: the agent's Timeout killed it
    seconds: float
    timeout: float

    @property
    def timed_out(self) -> bool:
        return self.status is None


def run_as_agent(agent: Agent, key: str, env: Dict[str, str]) -> Seen:
    """Run the key's command through /bin/sh as the agent's user, with the agent's PATH and Timeout."""
    agent = agent.merged()  # User, Timeout and UserParameter lines may all stand in included files
    command = command_for(agent, key)
    user = agent.first("User", "zabbix")
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(f"the agent's user {user!r} does not exist on this host") from None
    if os.geteuid() not in (0, account.pw_uid):
        raise ConfigError(f"run agent check as root (or as {user}): it runs the key as the agent's user {user}")
    timeout = agent.timeout()
    environment = {"PATH": AGENT_PATH, "HOME": account.pw_dir, "LANG": "C.UTF-8", **env}
    started = time.monotonic()
    as_user = {} if os.geteuid() == account.pw_uid else {"user": account.pw_uid, "group": account.pw_gid,
                                                          "extra_groups": []}
    try:
        proc = subprocess.run(["/bin/sh", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=environment, cwd="/", timeout=timeout, **as_user)
        output, status = proc.stdout.decode("utf-8", "replace").rstrip(), proc.returncode
    except subprocess.TimeoutExpired:
        output, status = "", None
    return Seen(user, command, output, status, time.monotonic() - started, timeout)


def executable_for_agent(argv0: str) -> str:
    """How the UserParameters should name this program: plainly when the agent's PATH finds this very
    program, else by its full path (a venv under /opt with no link on the PATH)."""
    here = argv0 if os.sep in argv0 else shutil.which(argv0)
    on_agent_path = shutil.which("zabbix-exalate", path=AGENT_PATH)
    if not here or not os.path.isfile(here) or (
            on_agent_path and os.path.realpath(here) == os.path.realpath(on_agent_path)):
        return "zabbix-exalate"
    return os.path.abspath(here)


def with_executable(userparameters: str, executable: str) -> str:
    """The UserParameter file calling executable instead of the bare name, quoted for /bin/sh."""
    if executable == "zabbix-exalate":
        return userparameters
    if "$" in executable or not executable.isprintable():
        # The agent replaces $1..$9 in a command before the shell sees it: no quoting protects a $.
        raise ConfigError(f"the agent cannot run {executable!r} from a UserParameter (a $ or a control character "
                          f"in its path): install zabbix-exalate under a plain path")
    quoted = shlex.quote(executable)
    return re.sub(r"^(UserParameter=[^,]+,)zabbix-exalate ", lambda m: f"{m.group(1)}{quoted} ",
                  userparameters, flags=re.M)
