"""The Zabbix agent's side of a host: installing our UserParameters, and running a key as the agent would."""
import glob
import os
import pwd
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from typing import Dict, List, Optional, Tuple

from ..errors import ConfigError, printable
from .agentconf import Agent, read_agent

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
        target = os.path.join(agent.include_dir(), USERPARAMETER_NAME)
        _write(target, userparameters, 0o644)
        done.append(f"wrote {target} (for {agent.config})")
    if os.path.exists(config_path):
        done.append(f"kept {config_path}: it exists")
    else:
        group = _zabbix_gid()
        _write(config_path, example_config(), 0o640 if group is not None else 0o600, group)
        done.append(f"wrote {config_path} (an example, mode {'0640 root:zabbix' if group is not None else '0600'}): "
                    f"edit its url and credentials")
    done += [f"now run: systemctl restart {agent.service}" for agent in agents]
    return done


def _write(path: str, text: str, mode: int, group: Optional[int] = None) -> None:
    tmp = f"{path}.zabbix-exalate-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if group is not None:
            os.chown(tmp, 0, group)
        os.chmod(tmp, mode)
        os.replace(tmp, path)  # whole or not at all: an agent restarting now never reads half a file
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise ConfigError(f"cannot write {path}: {exc.strerror} (run agent install as root)") from None


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
    """The shell command the agent would run for key, from the UserParameter files it includes."""
    name, params = parse_key(key)
    if agent.first("UnsafeUserParameters", "0") != "1":
        bad = sorted({c for p in params for c in p if c in UNSAFE})
        if bad:
            raise ConfigError(f"the agent refuses this key: a parameter holds {' '.join(map(repr, bad))}, which "
                              f"it allows only with UnsafeUserParameters=1; use the key form from discovery")
    for line in _userparameter_lines(agent):
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


def _userparameter_lines(agent: Agent) -> List[str]:
    lines = list(agent.values.get("UserParameter", []))
    for pattern in agent.values.get("Include", []):
        path = os.path.join(os.path.dirname(agent.config), pattern)
        for included in sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]:
            if os.path.isfile(included):
                lines += read_agent(included).values.get("UserParameter", [])
    return lines


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
    command = command_for(agent, key)
    user = agent.first("User", "zabbix")
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(f"the agent's user {user!r} does not exist on this host") from None
    if os.geteuid() not in (0, account.pw_uid):
        raise ConfigError(f"run agent check as root (or as {user}): it runs the key as the agent's user {user}")
    timeout = float(agent.first("Timeout", "3"))
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
    """The UserParameter file calling executable instead of the bare name."""
    if executable == "zabbix-exalate":
        return userparameters
    return re.sub(r"^(UserParameter=[^,]+,)zabbix-exalate ", lambda m: f"{m.group(1)}{executable} ",
                  userparameters, flags=re.M)
