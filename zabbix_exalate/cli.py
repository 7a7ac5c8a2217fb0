"""The command line: the only module that imports click and prints, and the one guard of every failure."""
import contextlib
import json
import os
import sys
import warnings
from typing import Callable, Optional

import click

from . import __version__
from .config import MAX_TIMEOUT, seconds
from .errors import (EXIT_CODES, INTERNAL, INTERRUPTED, CheckError, CheckTimeout, ConfigError, ConnectionNotFound,
                     printable)
from .masking import Masker
from .metrics import CONNECTION_METRICS, METRICS, SEND_KEY
from .zabbix.agentconf import AGENT_CONFIGS

# The words in a document that a server chose and that may echo a secret: masked for every secret. The rest of
# its strings, the node's names and states, only for long ones (see masking.DATA_SHORTEST); numbers never.
SERVER_TEXTS = frozenset({"failures", "remote", "{#CONNECTION.REMOTE}"}
                         | {f for m in CONNECTION_METRICS for f in (m.last_field, m.newest_field) if f})
OWN_PROCESS = object()  # main's obj when run as a program (see run)
EXIT_HELP = "\b\nExit status:\n" + "\n".join(f"  {code}  {text}" for code, text in sorted(EXIT_CODES.items()))


class Settings:
    def __init__(self, config: Optional[str], node: Optional[str], timeout: Optional[float],
                 own_process: bool = False):
        self.own_process = own_process  # run as a program: its time budget counts from the process's start
        self.config = config
        self.node = node or None  # the agent passes an empty first key parameter as ""
        self.timeout = timeout
        self.masker = Masker()  # told every secret once the configuration is read
        self.debug = False

    @property
    def label(self) -> str:
        return f"[{printable(self.node or 'default')}]"


class Seconds(click.ParamType):
    """A number of seconds as the configuration file's timeout takes it; empty means "the default" (a template
    macro left empty)."""
    name = "seconds"

    def convert(self, value, param, ctx):
        if value is None or value == "" or isinstance(value, float):
            return value or None
        found = seconds(value)
        if found is None:
            self.fail(f"{value!r} is not a number of seconds above 0 and up to {MAX_TIMEOUT:g}", param, ctx)
        return found


def guarded(settings: Optional[Settings], action: Callable, about_node: bool = True):
    """The one place a failure becomes output: our CheckError as its masked line (after the node's [section] when
    the command is about a node) and its exit status, Ctrl-C as 130, a bug of ours as one "internal error" line."""
    try:
        return action()
    except CheckError as exc:
        _fail(settings, f"{settings.label} {exc.message}" if about_node and settings else exc.message, exc.exit_code)
    except KeyboardInterrupt:
        _fail(settings, "interrupted", INTERRUPTED)
    except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
        raise  # usage errors: click's own message and status
    except Exception as exc:  # a bug of ours: still one line, and no value
        _fail(settings, _internal(exc), INTERNAL)


class Guarded(click.Command):
    """A command that runs through guarded(), failures prefixed with the node's [section]."""
    about_node = True

    def invoke(self, ctx):
        return guarded(ctx.find_object(Settings), lambda: super(Guarded, self).invoke(ctx), self.about_node)


class Unlabelled(Guarded):
    """A command that is not about a node (the Zabbix API, the simulator): its failures carry no [section]."""
    about_node = False


@click.group(epilog=EXIT_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", metavar="PATH", help="Configuration file [default: $ZABBIX_EXALATE_CONFIG, "
              "else /etc/zabbix/zabbix_exalate.conf].")
@click.option("--node", metavar="NAME", help="Section of the configuration file naming the Exalate node "
              "[default: default].")
@click.option("--timeout", type=Seconds(), metavar="SECONDS",
              help="Give up after this long, connecting included [default: the node's timeout, else 2.5; "
              "an empty value means the default].")
@click.option("--debug", is_flag=True, help="Also print each request, its answer's status and timing and which "
              "credential it used, on stderr (secrets masked). Not for the agent: its items would turn unsupported.")
@click.version_option(__version__, prog_name="zabbix-exalate")
@click.pass_context
def main(ctx, config, node, timeout, debug):
    """Monitor Exalate sync nodes from Zabbix.

    Each check prints one number on stdout. When a check cannot tell, it prints nothing on stdout,
    one line on stderr saying why, and exits non-zero.
    """
    ctx.obj = Settings(config, node, timeout, own_process=ctx.obj is OWN_PROCESS)
    ctx.obj.debug = debug


def run() -> None:
    """The console script and `python -m zabbix_exalate`: a process of its own, as the agent starts it."""
    try:
        main(prog_name="zabbix-exalate", obj=OWN_PROCESS)
        code = 0
    except SystemExit as end:
        code = end.code
    # What is left once the command returned (every file closed, its output below) is the interpreter's teardown:
    # a tenth of a poll's CPU, spent on every run the agent starts. Skip it. Late workers die with the process.
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit(text), as Python ends it
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # the reader went away: the status Python's own shutdown gives
            code = code or 120
    os._exit(code)


def _masked(settings: Optional[Settings], text: str) -> str:
    """Every text that leaves the process (printed or sent) and may hold a server's or a file's words passes
    here: no secret in it, in any form."""
    return settings.masker.mask(text) if settings else text


def _say(settings: Optional[Settings], text: str, err: bool = False) -> None:
    """A line that may hold words a server or a file chose: masked."""
    click.echo(_masked(settings, text), err=err)


def _say_value(text: str) -> None:
    """A value of ours, never masked as text: a number, or a document whose strings are masked (_shown).
    Masking its text would turn a figure that equals a password into *** and break the JSON."""
    click.echo(text)


def _shown(settings: Settings, document):
    """The document (or discovery rows) with its strings masked value by value: see SERVER_TEXTS."""
    return settings.masker.mask_values(document, SERVER_TEXTS)


def _fail(settings: Optional[Settings], message: str, code: int) -> None:
    """The one line a failure prints (the agent stores it as the reason): masked, then made one line."""
    click.echo("zabbix-exalate: " + printable(_masked(settings, message)), err=True)  # a password may be a word
    sys.exit(code)


def _run(settings: Settings, action: Callable, whole_node: bool = False):
    """Read the node's configuration and run action(node) within the time budget; raises CheckError.

    whole_node: the action reads many endpoints from threads (collect): it gets a pool of kept-alive
    connections, and it keeps the deadline itself. A single check runs in one worker that the main thread
    waits for no longer than the deadline: what blocks inside C (a slow name lookup, a stalled TLS
    handshake) cannot hold it past it."""
    from .config import config_path, load_node
    from .exalate.api import Node
    from .exalate.transport import pooled_session
    from .runtime import Deadline, process_age, within

    cfg = load_node(config_path(settings.config), settings.node)
    cfg.register(settings.masker)
    budget = settings.timeout or cfg.timeout
    deadline = Deadline(budget, spent=process_age() if settings.own_process else 0.0)
    # A process of its own keeps the filter to its end: collect's workers still in flight after the deadline
    # (minting a token again after a 401...) would otherwise warn after the document, into the agent's value.
    with contextlib.nullcontext() if settings.own_process else warnings.catch_warnings():
        # The agent reads stderr into the value: a library's warning (a short HMAC key, verify =
        # false) would turn every item unsupported. What matters is reported as errors instead.
        warnings.simplefilter("ignore")
        session = pooled_session(cfg.max_connections) if whole_node else None
        trace = (lambda line: _say(settings, f"zabbix-exalate: debug: {line}", err=True)) if settings.debug else None
        if trace:
            trace(f"[{cfg.name}] of {cfg.source}: url {cfg.url}, timeout {budget:g} s, "
                  f"{deadline.left():.2f} s left after start-up")
        node = Node(cfg, deadline, session=session, trace=trace, masker=settings.masker)
        if whole_node:
            return action(node)

        def late() -> CheckError:
            waiting = node.transport.waiting_for
            return CheckTimeout(f"{waiting + ' did not answer' if waiting else 'no complete answer'} within the "
                                f"timeout of {deadline.seconds:g} s (a slow name lookup, network or node): raise "
                                f"timeout if the node is just slow")
        return within(deadline, lambda: action(node), late)


def _internal(exc: Exception) -> str:
    return f"internal error, please report it: {type(exc).__name__}: {printable(str(exc))[:300]}"


def _make_check(metric):
    def check(settings: Settings, connection: Optional[str] = None, reason: Optional[str] = None):
        from .checks import measure
        _say_value(str(_run(settings, lambda node: measure(node, metric.command, connection, reason))))

    params = []
    help_text = f"{metric.name}: GET {metric.path}"
    if metric.per_connection:
        params.append(click.Argument(["connection"]))
        help_text += ". CONNECTION is its exact name or the key form that discover prints."
    if metric.reason_field:
        params.append(click.Option(["--reason"], metavar="REASON", help=f"Count only the elements whose "
                                   f"{metric.reason_field} is REASON (e.g. NO_ISSUE_TO_CONNECT_TO)."))
    return Guarded(metric.command, params=params, help=help_text, epilog=EXIT_HELP,
                         callback=click.pass_obj(check))


for _metric in METRICS:
    main.add_command(_make_check(_metric))


@main.command(cls=Guarded)
@click.pass_obj
def ping(settings: Settings):
    """Print 1 if the node answers an authenticated request correctly, else 0 (the reason goes to stderr).

    A node that cannot be asked is down as far as monitoring goes; a mistake in the configuration is
    not the node's: it prints no value, one line, and exits 3, like every check."""
    from .checks import ping as ping_node

    try:
        value, why = _run(settings, ping_node)
    except ConfigError:
        raise  # not the node's: no value, like every check
    except CheckError as exc:
        value, why = 0, exc.message
    _say_value(str(value))
    if why:
        _say(settings, f"zabbix-exalate: {settings.label} {why}", err=True)


def _collect(settings: Settings, only: Optional[str] = None, keep: int = 1) -> dict:
    return _collect_timed(settings, only, keep)[0]


def _collect_timed(settings: Settings, only: Optional[str] = None, keep: int = 1):
    """The document, and the run's timeout in seconds (--timeout, else the node's)."""
    from .collect import collect as collect_node
    return _run(settings, lambda node: (collect_node(node, node.cfg.max_connections, only=only, keep=keep).document(),
                                        node.deadline.seconds), whole_node=True)


# status --connection: how many of the newest failures of each kind it lists.
SHOWN_FAILURES = 20


@main.command(cls=Guarded)
@click.pass_obj
def collect(settings: Settings):
    """Read the whole node in one run and print it as one line of JSON: the master item of the
    "Exalate by Zabbix agent" template.

    Every value is read once, over at most max_connections kept-alive connections, within the
    timeout. A value that could not be read is absent and its object's "failures" says why.
    Exits 0 whenever the configuration is usable, also when the node is down (ping 0). Within the
    agent's 512 KB: when an outage's reasons would not fit, they are compacted (see docs/collect.md)."""
    from .compact import agent_text
    _say_value(agent_text(_shown(settings, _collect(settings))))


@main.command(cls=Guarded)
@click.option("--connection", "connection", metavar="CONNECTION", help="Show this connection in full (its exact "
              "name or the key form that discover prints): each queue's size and oldest event, its failures by "
              f"reason and the newest {SHOWN_FAILURES} of each kind.")
@click.pass_obj
def status(settings: Settings, connection: Optional[str]):
    """Show the whole node at a terminal: its figures, a table of connections and queues, each queue's oldest
    waiting event and each connection's newest failure, and why any value could not be read. Exits 0 whenever
    it could show the node, failures included."""
    from .exalate.names import connection_name, is_tagged_key
    from .status import connection_text, status_text
    node = settings.node or "default"
    if connection is None:
        _say_value(status_text(_shown(settings, _collect(settings)), node))  # status.py escapes what it shows
        return
    # A tagged key names no connection by itself: the whole node is read, and the list says which one has it.
    field, name = ("key", connection) if is_tagged_key(connection) else ("name", connection_name(connection))
    document = _collect(settings, only=name if field == "name" else None, keep=SHOWN_FAILURES)
    listed = [c[field] for c in document.get("connections") or ()]
    if document.get("connections") is not None and name not in listed:
        raise ConnectionNotFound(f"the node lists no connection {'with the key' if field == 'key' else 'named'} "
                                 f"'{printable(name)}' ({len(listed)} listed: 'zabbix-exalate status' shows them)")
    shown = _shown(settings, document)
    _say_value(connection_text(shown, node, listed.index(name), SHOWN_FAILURES) if name in listed
               else status_text(shown, node))


@main.command(cls=Guarded)
@click.option("--agent-config", metavar="PATH", help="Zabbix agent configuration to take ServerActive and "
              "Hostname from [default: the first of " + ", ".join(AGENT_CONFIGS) + " that exists].")
@click.option("--server", metavar="HOST[:PORT]", help="Zabbix server or proxy to send to, in ServerActive's syntax "
              "(HOST, HOST:PORT, [IPV6]:PORT; ',' between servers that each get the value, ';' between the nodes of "
              "a cluster) [default: ServerActive of the agent configuration and the files it includes].")
@click.option("--host", "zabbix_host", metavar="NAME", help="The Zabbix host the trapper item belongs to "
              "[default: Hostname of the agent configuration].")
@click.option("--key", metavar="KEY", default=SEND_KEY, show_default=True, help="The trapper item's key.")
@click.pass_obj
def send(settings: Settings, agent_config, server, zabbix_host, key):
    """Collect the whole node and push the document to the trapper item of the "Exalate by Zabbix
    trapper" template (for a systemd timer or cron: see docs/collect.md).

    The collection keeps to the timeout; sending takes at most as long again."""
    from .runtime import Deadline
    from .zabbix.sender import push, target
    where = target(server, zabbix_host, agent_config)  # a mistake there is told before the node is read
    document, seconds = _collect_timed(settings)
    summary = push(json.dumps(_shown(settings, document), separators=(",", ":")), key, where, Deadline(seconds),
                   settings.masker)
    _say_value(f"{settings.label} {_outline(document)}; {_masked(settings, summary)}")


def _outline(document: dict) -> str:
    connections = document.get("connections")
    failures = len(document.get("failures", {})) + sum(len(c.get("failures", {})) for c in connections or ())
    listed = f"{len(connections)} connections" if connections is not None else "no connection list"
    return f"ping {document['ping']}, {listed}, {failures} values unread"


@main.command(cls=Guarded)
@click.pass_obj
def discover(settings: Settings):
    """Print the node's connections as Zabbix low-level discovery JSON.

    Uses GET 4.0/connections; when the node has no such endpoint, the connections listed in the
    configuration."""
    from .checks import discovery
    rows = _run(settings, discovery)
    _say_value(json.dumps(_shown(settings, rows), ensure_ascii=True))


@main.command(cls=Unlabelled)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free port).")
@click.option("--scenario", type=click.Path(exists=True, dir_okay=False), help="Scenario JSON file "
              "[default: the bundled sample]. Edited while running, it is read again.")
@click.option("--write-config", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Write a zabbix-exalate configuration (mode 0600) for this simulator to FILE.")
@click.option("--node", "node_name", default="default", show_default=True, help="Section name used by --write-config.")
def simulate(host, port, scenario, write_config, node_name):
    """Run a simulated Exalate node until stopped (Ctrl-C)."""
    from .simulation.simulator import Simulator, SimulatorServer, sample_scenario_path

    try:
        server = SimulatorServer(Simulator(scenario or sample_scenario_path()), host, port)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot start the simulator: {exc}") from None
    if write_config:
        server.write_config(write_config, node_name)
        _say(None, f"configuration for it written to {write_config} (section [{node_name}])", err=True)
    _say(None, f"Exalate simulator listening on {server.url} (scenario {scenario or 'sample'}); Ctrl-C stops it",
         err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@main.command(cls=Unlabelled)
def demo():
    """Start the simulator on a free loopback port and run discovery and every check against it."""
    from .simulation.demo import run_demo
    _say(None, run_demo())


@main.group()
def agent():
    """Set up the Zabbix agent on this host for the checks, and see a key as the agent does."""


@agent.command("userparameters", cls=Unlabelled)
def agent_userparameters():
    """Print the UserParameter file (for the agent's include directory)."""
    from .zabbix.userparameters import userparameter_conf
    _say(None, userparameter_conf().rstrip("\n"))


@agent.command("install", cls=Guarded)
@click.option("--agent-config", metavar="PATH", help="The agent's configuration [default: every one of "
              + ", ".join(AGENT_CONFIGS) + " that exists].")
@click.pass_obj
def agent_install(settings: Settings, agent_config: Optional[str]):
    """Write the UserParameter file into each agent's include directory (from its Include line) and, if
    there is none, an example configuration (mode 0640, group zabbix) to edit. Run it as root."""
    from .config import config_path
    from .zabbix.agent import executable_for_agent, install, with_executable
    from .zabbix.agentconf import installed_agents
    from .zabbix.userparameters import userparameter_conf

    text = with_executable(userparameter_conf(), executable_for_agent(sys.argv[0]))
    for line in install(installed_agents(agent_config), text, config_path(settings.config)):
        _say(settings, line)


@agent.command("check", cls=Guarded)
@click.argument("key", required=False)
@click.option("--agent-config", metavar="PATH", help="The agent's configuration [default: the first of "
              + ", ".join(AGENT_CONFIGS) + " that exists].")
@click.pass_obj
def agent_check(settings: Settings, key: Optional[str], agent_config: Optional[str]):
    """Run KEY [default: exalate.collect[NODE,]] as the agent would: its UserParameter, through /bin/sh,
    as its user, with its PATH and Timeout; print what the agent would store. Run it as root.

    Exits with the check's own status (0: the agent would store a value)."""
    from .zabbix.agent import SHELL_CANNOT_EXECUTE, SHELL_NOT_FOUND, run_as_agent
    from .zabbix.agentconf import installed_agents
    node = settings.node or "default"
    key = key or f"exalate.collect[{node},]"
    env = {"ZABBIX_EXALATE_CONFIG": settings.config} if settings.config else {}
    seen = run_as_agent(installed_agents(agent_config)[0], key, env)
    _say(settings, f"{key} runs, as user {seen.user}: {seen.command}")
    if seen.timed_out:
        raise CheckTimeout(f"{key}: the agent would give up after its Timeout of {seen.timeout:g} s (\"Timeout "
                           f"while executing a shell script\"): raise Timeout or lower the check's timeout")
    _say(settings, f"after {seen.seconds:.2f} s (the agent's Timeout is {seen.timeout:g} s) it would store:")
    _say(settings, seen.output or "(nothing: the item would be unsupported)")
    if seen.status in (SHELL_CANNOT_EXECUTE, SHELL_NOT_FOUND):  # the program was never run
        _say(settings, f"exit {seen.status}: the user {seen.user} " + (
            "cannot execute the program (a venv under /root, or a Python it may not run? see docs/install.md)"
            if seen.status == SHELL_CANNOT_EXECUTE else "finds no such program on the agent's PATH (see docs/install.md)"))
    sys.exit(seen.status)


@main.group()
def zabbix():
    """Set Zabbix up through its API (URL and login from ZABBIX_URL, ZABBIX_TOKEN or ZABBIX_USER and
    ZABBIX_PASSWORD, else the [zabbix] section of the configuration file)."""


def _zabbix(settings: Settings, action: Callable) -> str:
    """action(api) on the logged-in Zabbix API of the configuration or the environment."""
    from .config import config_path, load_zabbix
    from .zabbix.frontend import Zabbix
    found = load_zabbix(config_path(settings.config))
    found.register(settings.masker)
    return action(Zabbix(found, settings.masker))


@zabbix.command("import-template", cls=Unlabelled)
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.pass_obj
def import_template(settings: Settings, file: Optional[str]):
    """Import every bundled template (or FILE) into Zabbix. Safe to run again: it updates them.

    The bundled templates go in the newest export format the server takes: 7.0's for Zabbix 7.0 and later
    (item timeouts, lost connections disabled before they are deleted), else 6.0's. Over the 6.0 ones, the 7.0
    ones update the same items, so hosts keep their history."""
    from .zabbix.design import TEMPLATE_NAMES, format_for
    from .zabbix.export import template_xml
    source = None
    if file:
        with open(file, encoding="utf-8") as handle:
            source = handle.read()

    def run(api) -> str:
        if source is not None:
            return f"imported {file} ({api.import_template(source)} format, for Zabbix {api.version})"
        fmt = format_for(api.version)
        for name in TEMPLATE_NAMES:
            api.import_template(template_xml(name, fmt))
        names = ", ".join(f'"{name}"' for name in TEMPLATE_NAMES)
        return f"imported {names} ({fmt} format, for Zabbix {api.version})"
    _say(settings, _zabbix(settings, run))


@zabbix.command("add-host", cls=Unlabelled)
@click.argument("hostname")
@click.option("--agent-address", default="127.0.0.1", show_default=True, help="IP address or DNS name of its agent.")
@click.option("--agent-port", default=10050, show_default=True, type=click.IntRange(1, 65535))
@click.option("--node", "node_name", default=None, help="{$EXALATE.NODE}: the configuration section the agent "
              "uses [default: the global --node, else default].")
@click.option("--group", default="Exalate", show_default=True, help="Host group (created if missing).")
@click.option("--template", "template_name", metavar="NAME", help="The template to link: one that "
              "import-template imports (see templates/README.md) [default: Exalate by Zabbix agent].")
@click.option("--proxy", "proxy_name", metavar="PROXY_NAME", help="The Zabbix proxy that monitors the host: it polls "
              "the agent, or receives what send pushes, and preprocesses [default: the server; an existing host "
              "keeps its own].")
@click.pass_obj
def add_host(settings: Settings, hostname, agent_address, agent_port, node_name, group, template_name, proxy_name):
    """Create or update HOSTNAME with an agent interface, link the template and set {$EXALATE.NODE}.

    With --template "Exalate by HTTP" the host gets no agent interface: the node's URL and credentials go from its
    section of the configuration file into host macros (the secrets as secret macros). With --proxy, that
    proxy monitors the host."""
    from .zabbix.design import DEFAULT_TEMPLATE, HTTP_TEMPLATE, TEMPLATE_NAMES
    template_name = template_name or DEFAULT_TEMPLATE
    if template_name not in TEMPLATE_NAMES:
        raise click.BadParameter(f"{template_name!r} is not one of {', '.join(map(repr, TEMPLATE_NAMES))}",
                                 param_hint="--template")
    node = node_name or settings.node or "default"
    macros, agent_interface = _http_host(settings, node) if template_name == HTTP_TEMPLATE else ([], True)
    _say(settings, _zabbix(settings, lambda api: api.add_host(hostname, agent_address, agent_port, node, group,
                                                                   template_name, macros, agent_interface,
                                                                   proxy_name)))


def _http_host(settings: Settings, node: str):
    """The HTTP template needs no agent: the host gets the node's URL and credentials as macros instead."""
    from .config import config_path, load_node
    from .zabbix.frontend import http_macros, http_misses
    cfg = load_node(config_path(settings.config), node)
    cfg.register(settings.masker)
    misses = http_misses(cfg)
    if misses:
        _say(settings, f"note: the HTTP template does not follow {', '.join(misses)} of [{node}]: the Zabbix server "
                       f"(or proxy) reaches the node directly, with its own CA certificates")
    return http_macros(cfg), False
