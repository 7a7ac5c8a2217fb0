"""Pushes a collection to a Zabbix trapper item over the sender protocol, with zabbix_utils' Sender."""
import logging
import os
import socket
from typing import Optional

from ..errors import CheckTimeout, ConfigError, Unreachable, ZabbixAPIError
from .agentconf import AGENT_CONFIGS, read_agent

DEFAULT_PORT = 10051


def push(value: str, key: str, server: Optional[str] = None, host: Optional[str] = None,
         agent_config: Optional[str] = None, timeout: float = 10.0) -> str:
    """Send value to key of host; returns what Zabbix answered, in words. Raises CheckError."""
    from zabbix_utils import ItemValue, Sender
    from zabbix_utils.exceptions import ProcessingError

    # zabbix_utils logs its failures; Python would print them on stderr. We report them ourselves.
    library_log = logging.getLogger("zabbix_utils")
    library_log.addHandler(logging.NullHandler())
    library_log.propagate = False

    sender = _sender(Sender, server, agent_config, timeout)
    host = host or sender.host or socket.gethostname()  # the agent's own default for Hostname
    where = ", ".join(str(n) for c in sender.clusters for n in c.nodes)
    try:
        answer = sender.send([ItemValue(host, key, value)])
    except ProcessingError as exc:
        if "connect" in str(exc).lower():
            raise Unreachable(f"cannot connect to Zabbix at {where}: is the server or proxy running and "
                              f"listening there? (ServerActive or --server)") from None
        raise ZabbixAPIError(f"Zabbix at {where} sent an answer that is not the sender protocol's") from None
    except socket.timeout:
        raise CheckTimeout(f"Zabbix at {where} did not answer within {timeout:g} s") from None
    except OSError as exc:
        answer_text = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else None
        if answer_text:
            raise ZabbixAPIError(f"Zabbix at {where} refused the data: {answer_text.get('info') or answer_text}") \
                from None
        raise Unreachable(f"sending to Zabbix at {where} failed: {exc.strerror or type(exc).__name__}") from None
    if answer.failed or not answer.processed:
        raise ZabbixAPIError(f"Zabbix at {where} did not accept the value of {key} for host {host!r} "
                             f"(processed {answer.processed}, failed {answer.failed}): check that the host "
                             f"exists with that name, that the \"Exalate by Zabbix trapper\" template is linked "
                             f"to it, and that this machine may send to it (the item's allowed hosts)")
    return f"sent to {where} as {key} of host {host!r}: accepted"


def _sender(Sender, server: Optional[str], agent_config: Optional[str], timeout: float):
    path = agent_config or next((p for p in AGENT_CONFIGS if os.path.exists(p)), None)
    if server:
        address, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
        if not port.isdigit() or not 0 < int(port) < 65536:
            address, port = server, str(DEFAULT_PORT)
        sender = Sender(server=address.strip("[]"), port=int(port), timeout=timeout)
        sender.host = _hostname(path) if path else None
        return sender
    if not path:
        raise ConfigError(f"no Zabbix agent configuration ({' or '.join(AGENT_CONFIGS)}) to read ServerActive "
                          f"from: name the Zabbix server with --server and the host with --host")
    try:
        sender = Sender(use_config=True, config_path=path, timeout=timeout)
    except OSError as exc:
        raise ConfigError(f"cannot read the agent configuration {path}: {exc.strerror}") from None
    except Exception as exc:  # configparser's errors: the file is not KEY=VALUE lines
        raise ConfigError(f"cannot read ServerActive from {path} ({type(exc).__name__}): "
                          f"use --server and --host") from None
    if (sender.tls.get("tlsconnect") or "unencrypted").lower() != "unencrypted":
        raise ConfigError(f"{path} has the agent connect with TLS (TLSConnect), which send does not speak: "
                          f"allow unencrypted connections for this host in Zabbix, or send with zabbix_sender")
    return sender


def _hostname(path: str) -> Optional[str]:
    """Hostname from the agent's configuration, when --server replaces its ServerActive."""
    try:
        return read_agent(path).first("Hostname") or None
    except ConfigError:
        return None
