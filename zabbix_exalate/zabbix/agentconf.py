"""The Zabbix agents' configuration files on this host, read as far as this project needs them."""
import fnmatch
import os
import re
import stat
from dataclasses import dataclass
from typing import Dict, List, Optional

from ..errors import ConfigError

# Where Debian's and upstream's packages put the agents' configuration files, and the service that runs each.
AGENT_CONFIGS = ("/etc/zabbix/zabbix_agentd.conf", "/etc/zabbix/zabbix_agent2.conf")
AGENTS = tuple(zip(AGENT_CONFIGS, ("zabbix-agent", "zabbix-agent2")))
# An agent's configuration is a few KB; more than this is not one (/dev/zero, a log named by mistake).
MOST_BYTES = 1 << 20
# The agent's Timeout: whole seconds, 1 to 30 (the agent does not start with anything else).
TIMEOUT_RANGE = range(1, 31)


@dataclass
class Agent:
    """One agent's configuration file, as far as our UserParameters are concerned."""
    config: str
    service: str
    values: Dict[str, List[str]]  # every KEY=value line, in order, Include files not followed

    def first(self, key: str, default: str = "") -> str:
        return (self.values.get(key) or [default])[-1]  # the agent takes the last one

    def timeout(self) -> int:
        raw = self.first("Timeout", "3")
        if not (raw.isascii() and raw.isdigit() and int(raw) in TIMEOUT_RANGE):
            raise ConfigError(f"Timeout={raw[:20]!r} in {self.config} is not a whole number of seconds from 1 to 30: "
                              f"the agent would not start with it")
        return int(raw)

    def include_dir(self, name: str) -> str:
        """The directory of the first Include line that exists and whose pattern the file name matches: where
        our UserParameter file goes, so that the agent reads it."""
        here = os.path.dirname(os.path.abspath(self.config))
        unmatched, missing = [], []
        for pattern in self.values.get("Include", []):
            if not pattern:
                continue  # the agent refuses an empty Include; its directory would be the configuration's own
            path = os.path.join(here, pattern)
            wild = any(c in os.path.basename(path) for c in "*?[")
            directory = os.path.dirname(path) if wild else path
            if not os.path.isdir(directory):
                if wild or pattern.endswith("/"):  # else it names a file to include, not a directory
                    missing.append((pattern, os.path.normpath(directory)))
                continue
            if wild and not _matches(name, os.path.basename(path)):
                unmatched.append(pattern)
                continue
            return os.path.normpath(directory)
        if unmatched:
            raise ConfigError(f"Include={unmatched[0]} in {self.config} does not match {name}, so the agent would "
                              f"not read it: add a line Include="
                              f"{os.path.normpath(os.path.join(here, os.path.dirname(unmatched[0])))}/*.conf")
        if missing:
            raise ConfigError(f"the directory of Include={missing[0][0]} in {self.config} does not exist: create it "
                              f"(mkdir -p {missing[0][1]})")
        raise ConfigError(f"{self.config} has no Include line naming an existing directory: add one, e.g. "
                          f"Include={os.path.join(here, os.path.basename(self.config))}.d/*.conf, and create "
                          f"that directory")


def _matches(name: str, pattern: str) -> bool:
    """Whether both agents read a file of this name: zabbix_agentd knows only * (? and [ are plain characters),
    agent 2 globs as Go does (*, ?, [...]). We cannot always tell which agent a file is for, so both must."""
    only_star = re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), name, re.S)
    return bool(only_star) and fnmatch.fnmatchcase(name, pattern)


def read_agent(path: str, service: str = "") -> Agent:
    try:
        # O_NONBLOCK: a FIFO opens at once (and is refused below) instead of waiting for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"cannot read the agent configuration {path}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigError(f"the agent configuration {path} is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(MOST_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read the agent configuration {path}: {exc.strerror}") from None
    if len(data) > MOST_BYTES:
        raise ConfigError(f"the agent configuration {path} is larger than {MOST_BYTES >> 20} MB: not an agent's "
                          f"configuration")
    lines = data.decode("utf-8", "replace").splitlines()
    values: Dict[str, List[str]] = {}
    for line in lines:
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            values.setdefault(key.strip(), []).append(value.strip())
    service = service or ("zabbix-agent2" if "agent2" in os.path.basename(path) else "zabbix-agent")
    return Agent(path, service, values)


def installed_agents(explicit: Optional[str] = None) -> List[Agent]:
    if explicit:
        return [read_agent(explicit)]
    found = [read_agent(path, service) for path, service in AGENTS if os.path.exists(path)]
    if not found:
        raise ConfigError(f"no Zabbix agent configuration found ({' or '.join(p for p, _ in AGENTS)}): install "
                          f"zabbix-agent or zabbix-agent2, or name the file with --agent-config")
    return found
