"""The Zabbix agents' configuration files on this host, read as far as this project needs them."""
import fnmatch
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..errors import ConfigError

# Where Debian's and upstream's packages put the agents' configuration files, and the service that runs each.
AGENT_CONFIGS = ("/etc/zabbix/zabbix_agentd.conf", "/etc/zabbix/zabbix_agent2.conf")
AGENTS = tuple(zip(AGENT_CONFIGS, ("zabbix-agent", "zabbix-agent2")))
# An agent's configuration is a few KB; more than this is not one (/dev/zero, a log named by mistake).
MOST_BYTES = 1 << 20
# The agent's Timeout: whole seconds, 1 to 30 (the agent does not start with anything else).
TIMEOUT_RANGE = range(1, 31)
# Include files within Include files: zabbix_agentd gives up at this depth (ZBX_MAX_INCLUDE_LEVEL). And all the
# files together: beyond these, it is no agent's configuration either (a directory of logs named by mistake).
INCLUDE_DEPTH = 10
MOST_FILES = 1000
MOST_BYTES_IN_ALL = 8 * MOST_BYTES


@dataclass
class Agent:
    """One agent's configuration file, as far as our UserParameters are concerned."""
    config: str
    service: str
    values: Dict[str, List[str]]  # every KEY=value line, in order; Include files followed only by merged()
    lines: List[Tuple[str, str]] = field(default_factory=list, repr=False)  # the same, in the file's order
    size: int = 0  # bytes read

    def first(self, key: str, default: str = "") -> str:
        return (self.values.get(key) or [default])[-1]  # the agent takes the last one

    def merged(self) -> "Agent":
        """The configuration as the agent reads it: each Include line replaced, where it stands, by the lines of
        the files it names (a file, a directory's regular files, or a pattern in the file name), recursively; so
        first() is the value the agent uses. Raises ConfigError where the agent would not start (an Include that
        names nothing, a loop, too deep) or where the files are not an agent's configuration (too many, too big)."""
        merged = _Merge(self.service, self.size)
        merged.add(self, [os.path.realpath(self.config)])
        values: Dict[str, List[str]] = {}
        for key, value in merged.lines:
            values.setdefault(key, []).append(value)
        return Agent(self.config, self.service, values, merged.lines, merged.size)

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
    return _matches_agentd(name, pattern) and fnmatch.fnmatchcase(name, pattern)


def _matches_agentd(name: str, pattern: str) -> bool:
    return bool(re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), name, re.S))


class _Merge:
    """The lines of a configuration and of every file it includes, in the agent's order, within bounds."""

    def __init__(self, service: str, size: int):
        self.service = service
        self.lines: List[Tuple[str, str]] = []
        self.files = 0
        self.size = size

    def add(self, agent: Agent, chain: List[str]) -> None:
        for key, value in agent.lines:
            if key != "Include":
                self.lines.append((key, value))
                continue
            for path in self.included(value, agent.config):
                real = os.path.realpath(path)
                if real in chain:
                    raise ConfigError(f"Include={value[:200]} in {agent.config} includes {path} again, which "
                                      f"includes it: a loop the agent would refuse")
                if len(chain) > INCLUDE_DEPTH:
                    raise ConfigError(f"Include={value[:200]} in {agent.config} nests files more than "
                                      f"{INCLUDE_DEPTH} deep, which the agent refuses")
                self.files += 1
                included = read_agent(path, self.service)
                self.size += included.size
                if self.files > MOST_FILES or self.size > MOST_BYTES_IN_ALL:
                    raise ConfigError(f"the files {chain[0]} includes are more than {MOST_FILES} or larger than "
                                      f"{MOST_BYTES_IN_ALL >> 20} MB together: not an agent's configuration")
                self.add(included, chain + [real])

    def included(self, pattern: str, source: str) -> List[str]:
        """The files an Include line names, in the order they are read (sorted by name, as agent 2 does)."""
        if not pattern:
            raise ConfigError(f"an Include line in {source} names no file: the agent would not start")
        path = os.path.join(os.path.dirname(os.path.abspath(source)), pattern)
        directory, name = os.path.split(path)
        wildcards = "*?[" if self.service == "zabbix-agent2" else "*"  # zabbix_agentd: ? and [ are plain
        if any(c in directory for c in wildcards):
            raise ConfigError(f"Include={pattern[:200]} in {source} has a wildcard in its directory: the agent "
                              f"takes one only in the file name")
        wild = any(c in name for c in wildcards)
        if not wild and not os.path.isdir(path):
            return [path]  # read_agent says what is wrong with it, if anything
        folder = directory if wild else path
        try:
            names = sorted(os.listdir(folder))
        except OSError as exc:
            raise ConfigError(f"cannot read the directory of Include={pattern[:200]} in {source}: "
                              f"{exc.strerror}") from None
        matches = (lambda n: _matches_agentd(n, name)) if self.service != "zabbix-agent2" else \
            (lambda n: fnmatch.fnmatchcase(n, name))
        return [os.path.join(folder, n) for n in names if (not wild or matches(n))
                and _regular(os.path.join(folder, n))]


def _regular(path: str) -> bool:
    """Whether the agent reads this file of an included directory: it skips what is not a regular file."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


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
    lines = []
    values: Dict[str, List[str]] = {}
    for line in data.decode("utf-8", "replace").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            lines.append((key.strip(), value.strip()))
            values.setdefault(key.strip(), []).append(value.strip())
    service = service or ("zabbix-agent2" if "agent2" in os.path.basename(path) else "zabbix-agent")
    return Agent(path, service, values, lines, len(data))


def installed_agents(explicit: Optional[str] = None) -> List[Agent]:
    if explicit:
        return [read_agent(explicit)]
    found = [read_agent(path, service) for path, service in AGENTS if os.path.exists(path)]
    if not found:
        raise ConfigError(f"no Zabbix agent configuration found ({' or '.join(p for p, _ in AGENTS)}): install "
                          f"zabbix-agent or zabbix-agent2, or name the file with --agent-config")
    return found
