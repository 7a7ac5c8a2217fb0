"""The Zabbix agents' configuration files on this host, read as far as this project needs them."""
import os
from dataclasses import dataclass
from typing import Dict, List, Optional

from ..errors import ConfigError

# Where Debian's and upstream's packages put the agents' configuration files, and the service that runs each.
AGENT_CONFIGS = ("/etc/zabbix/zabbix_agentd.conf", "/etc/zabbix/zabbix_agent2.conf")
AGENTS = tuple(zip(AGENT_CONFIGS, ("zabbix-agent", "zabbix-agent2")))


@dataclass
class Agent:
    """One agent's configuration file, as far as our UserParameters are concerned."""
    config: str
    service: str
    values: Dict[str, List[str]]  # every KEY=value line, in order, Include files not followed

    def first(self, key: str, default: str = "") -> str:
        return (self.values.get(key) or [default])[-1]  # the agent takes the last one

    def include_dir(self) -> str:
        """The directory of the first Include line: where our UserParameter file goes."""
        for pattern in self.values.get("Include", []):
            path = os.path.join(os.path.dirname(self.config), pattern)
            directory = os.path.dirname(path) if any(c in os.path.basename(path) for c in "*?[") else path
            if os.path.isdir(directory):
                return os.path.normpath(directory)
        raise ConfigError(f"{self.config} has no Include line naming an existing directory: add one, e.g. "
                          f"Include={os.path.dirname(self.config)}/{os.path.basename(self.config)}.d/*.conf")


def read_agent(path: str, service: str = "") -> Agent:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read the agent configuration {path}: {exc.strerror}") from None
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
