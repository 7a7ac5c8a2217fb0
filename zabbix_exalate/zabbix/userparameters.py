"""The agent's side of the templates: one UserParameter per item key, generated from metrics.py."""
from typing import List, Tuple

from ..metrics import COLLECT_KEY, CONNECTION_METRICS, DISCOVERY_KEY, NODE_METRICS, PING_KEY

# --- the agent's side: one UserParameter per key -------------------------------------------------

def userparameters() -> List[Tuple[str, str]]:
    """(key, command) for every agent item key the templates use.

    $1 is the node; for a connection's queue $2 is the connection's key form; for collect $2 is the timeout."""
    rows = [(COLLECT_KEY, "zabbix-exalate --node '$1' --timeout '$2' collect"),  # '' : the node's timeout
            (PING_KEY, "zabbix-exalate --node '$1' ping 2>/dev/null"),  # 0 and why: the why would spoil the 0
            (DISCOVERY_KEY, "zabbix-exalate --node '$1' discover")]
    rows += [(m.key, f"zabbix-exalate --node '$1' {m.command}") for m in NODE_METRICS]
    for m in CONNECTION_METRICS:
        reason = " --reason '$3'" if m.reason_field else ""
        rows.append((m.key, f"zabbix-exalate --node '$1' {m.command}{reason} -- '$2'"))  # --: a key may start with -
    return rows


USERPARAMETER_HEADER = """\
# zabbix-exalate: the Exalate checks for the Zabbix agent (classic agent and agent 2).
#
# Install: copy this file into the directory the agent's Include line names, then restart the agent:
#   classic agent, Debian's package (zabbix-agent):   /etc/zabbix/zabbix_agentd.conf.d/
#   classic agent, Zabbix's own package:              /etc/zabbix/zabbix_agentd.d/
#   agent 2 (zabbix-agent2):                          /etc/zabbix/zabbix_agent2.d/
#   check with: grep ^Include /etc/zabbix/zabbix_agentd.conf (or zabbix_agent2.conf)
#   then:       systemctl restart zabbix-agent (or zabbix-agent2)
# The checks read /etc/zabbix/zabbix_exalate.conf (or $ZABBIX_EXALATE_CONFIG in the agent's environment):
# it holds secrets, so make it readable by the zabbix user and nobody else:
#   chown root:zabbix /etc/zabbix/zabbix_exalate.conf && chmod 0640 /etc/zabbix/zabbix_exalate.conf
# zabbix-exalate must be on the agent's PATH (pip puts it in /usr/local/bin), or write its full path below.
# Timeouts: each command gives up on its own and says why: exalate.collect after {$EXALATE.COLLECT.TIMEOUT}
# (2.5 s by default), a single check after the node's timeout in zabbix_exalate.conf (2.5 s by default).
# Zabbix must wait longer, or it kills the command and the reason (for collect, every value of the poll) is lost:
#   Zabbix 6.0: Timeout in this agent's configuration (zabbix_agentd.conf or zabbix_agent2.conf; default 3 s,
#     at most 30) bounds each command, and Timeout in zabbix_server.conf (or zabbix_proxy.conf of the proxy
#     polling this agent; default 3, at most 30) bounds the wait for its answer. Keep both above those two.
#   Zabbix 7.0: the item's timeout does; the agent's Timeout only bounds talking to the server. The 7.0
#     templates set it on each agent item from {$EXALATE.ITEM.TIMEOUT} (30s); items without one (the 6.0
#     templates) take Administration > General > Timeouts, "Zabbix agent" (3 s by default).
# Concurrency: every key below starts a Python process. Zabbix 7.0 polls agents asynchronously, up to
# MaxConcurrentChecksPerPoller (zabbix_server.conf or zabbix_proxy.conf, default 1000) checks at once per agent
# poller: 56 per-check items at a 5 s interval on 2 cores lost most of their values (28-38 timeouts a round)
# until it was lowered to 2. Hence the default template polls exalate.collect, one process per node and interval.
# On 6.0 a poller (StartPollers) waits for one answer at a time, and the classic agent runs one command per
# listener (StartAgents, default 3). See templates/README.md, "Timeouts and concurrency".
# Try one: zabbix_get -s 127.0.0.1 -k 'exalate.collect[default,]'
#
# Keys: exalate.<check>[<node>] and exalate.<check>[<node>,<connection key>]. <node> is a section of the
# configuration file (empty: [default]); <connection key> is {#CONNECTION.KEY} from exalate.discovery, or
# a name without the characters the agent refuses. No key or command line carries a secret.
# exalate.collect[<node>,<seconds>] prints the whole node as one JSON document (the "Exalate by Zabbix agent"
# template); the other keys print one value each (the "per check" template).
# exalate.error_responses and exalate.blob_error_responses take a third parameter: count one reason only.
# Generated from zabbix_exalate/metrics.py by `python tools/generate.py` in a checkout: edit that, not this.
"""


def userparameter_conf() -> str:
    return USERPARAMETER_HEADER + "".join(f"UserParameter={key}[*],{command}\n" for key, command in userparameters())

