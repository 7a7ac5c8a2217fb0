"""The zabbix-exalate command line: the only module that prints, and the one place errors become exit codes."""
import json
import signal
import sys
import warnings
from typing import Callable, List, Optional

import click

from . import __version__
from .errors import EXIT_CODES, CheckError, CheckTimeout
from .metrics import METRICS

EXIT_HELP = "\b\nExit status:\n" + "\n".join(f"  {code}  {text}" for code, text in sorted(EXIT_CODES.items()))


class Settings:
    def __init__(self, config: Optional[str], node: Optional[str], timeout: Optional[float]):
        self.config = config
        self.node = node or None  # the agent passes an empty first key parameter as ""
        self.timeout = timeout
        self.secrets: List[str] = []  # filled once the configuration is read: masked in every message

    @property
    def label(self) -> str:
        return f"[{self.node or 'default'}]"


@click.group(epilog=EXIT_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", metavar="PATH", help="Configuration file [default: $ZABBIX_EXALATE_CONFIG, "
              "else /etc/zabbix/zabbix_exalate.conf].")
@click.option("--node", metavar="NAME", help="Section of the configuration file naming the Exalate node "
              "[default: default].")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Give up after this long, connecting included [default: the node's timeout, else 2.5].")
@click.version_option(__version__, prog_name="zabbix-exalate")
@click.pass_context
def main(ctx, config, node, timeout):
    """Monitor Exalate sync nodes from Zabbix.

    Each check prints one number on stdout. When a check cannot tell, it prints nothing on stdout,
    one line on stderr saying why, and exits non-zero.
    """
    ctx.obj = Settings(config, node, timeout)


def _fail(settings: Optional[Settings], message: str, code: int) -> None:
    for secret in settings.secrets if settings else ():
        message = message.replace(secret, "***")
    click.echo(f"zabbix-exalate: {message}", err=True)
    sys.exit(code)


def _run(settings: Settings, action: Callable):
    """Read the node's configuration and run action(node) within the time budget; raises CheckError."""
    from .client import Deadline, Node
    from .config import config_path, load_node

    cfg, notices = load_node(config_path(settings.config), settings.node)
    settings.secrets = [s for s in cfg.secrets() if len(s) >= 3]
    for warning in notices:
        click.echo(f"zabbix-exalate: {warning}", err=True)
    seconds = settings.timeout or cfg.timeout
    _alarm(seconds)
    try:
        with warnings.catch_warnings():
            # The agent reads stderr into the value: a library's warning (a short HMAC key, verify =
            # false) would turn every item unsupported. What matters is reported as errors instead.
            warnings.simplefilter("ignore")
            return action(Node(cfg, Deadline(seconds)))
    finally:
        _alarm(0)


def _check(settings: Settings, action: Callable):
    """_run, with every failure turned into one line on stderr and its exit status."""
    try:
        return _run(settings, action)
    except CheckError as exc:
        _fail(settings, f"{settings.label} {exc.message}", exc.exit_code)
    except KeyboardInterrupt:
        _fail(settings, "interrupted", 130)
    except Exception as exc:  # a bug of ours: still one line, and no value
        _fail(settings, f"internal error, please report it: {type(exc).__name__}: {exc}", 1)


def _alarm(seconds: float) -> None:
    """A hard stop for what socket timeouts do not bound (a server trickling bytes, a slow DNS answer)."""
    if not hasattr(signal, "setitimer"):
        return
    if seconds:
        def expired(signum, frame):
            raise CheckTimeout(f"no complete answer within the timeout of {seconds:g} s")
        signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)


def _make_check(metric):
    def check(settings: Settings, connection: Optional[str] = None, reason: Optional[str] = None):
        from .checks import measure
        click.echo(_check(settings, lambda node: measure(node, metric.command, connection, reason)))

    params = []
    help_text = f"{metric.title}: GET {metric.path}"
    if metric.per_connection:
        params.append(click.Argument(["connection"]))
        help_text += ". CONNECTION is its exact name or the key form that discover prints."
    if metric.reason_field:
        params.append(click.Option(["--reason"], metavar="REASON", help=f"Count only the elements whose "
                                   f"{metric.reason_field} is REASON (e.g. NO_ISSUE_TO_CONNECT_TO)."))
    return click.Command(metric.command, params=params, help=help_text, epilog=EXIT_HELP,
                         callback=click.pass_obj(check))


for _metric in METRICS:
    main.add_command(_make_check(_metric))


@main.command()
@click.pass_obj
def ping(settings: Settings):
    """Print 1 if the node answers an authenticated request correctly, else 0 (the reason goes to stderr).

    Never fails: a node that cannot be asked is down as far as monitoring goes."""
    from .checks import ping as ping_node

    try:
        value, why = _run(settings, ping_node)
    except CheckError as exc:
        value, why = 0, exc.message
    click.echo(value)
    if why:
        click.echo(f"zabbix-exalate: {settings.label} {why}", err=True)


@main.command()
@click.pass_obj
def discover(settings: Settings):
    """Print the node's connections as Zabbix low-level discovery JSON.

    Uses GET 4.0/connections; when the node has no such endpoint, the connections listed in the
    configuration."""
    from .checks import discovery
    rows = _check(settings, discovery)
    click.echo(json.dumps(rows, ensure_ascii=True))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free port).")
@click.option("--scenario", type=click.Path(exists=True, dir_okay=False), help="Scenario JSON file "
              "[default: the bundled sample]. Edited while running, it is read again.")
@click.option("--write-config", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Write a zabbix-exalate configuration (mode 0600) for this simulator to FILE.")
@click.option("--node", "node_name", default="default", show_default=True, help="Section name used by --write-config.")
def simulate(host, port, scenario, write_config, node_name):
    """Run a simulated Exalate node until stopped (Ctrl-C)."""
    from .simulator import Simulator, SimulatorServer, sample_scenario_path

    try:
        server = SimulatorServer(Simulator(scenario or sample_scenario_path()), host, port)
    except (OSError, ValueError) as exc:
        _fail(None, f"cannot start the simulator: {exc}", 3)
    if write_config:
        server.write_config(write_config, node_name)
        click.echo(f"configuration for it written to {write_config} (section [{node_name}])", err=True)
    click.echo(f"Exalate simulator listening on {server.url} (scenario {scenario or 'sample'}); Ctrl-C stops it",
               err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@main.command()
def demo():
    """Start the simulator on a free loopback port and run discovery and every check against it."""
    from .demo import run_demo
    click.echo(run_demo())


@main.group()
def zabbix():
    """Set Zabbix up through its API (URL and login from ZABBIX_URL, ZABBIX_TOKEN or ZABBIX_USER and
    ZABBIX_PASSWORD, else the [zabbix] section of the configuration file)."""


def _zabbix_call(settings: Settings, action: Callable) -> str:
    from .config import config_path
    from .zabbix_api import Zabbix, zabbix_settings
    try:
        found = zabbix_settings(config_path(settings.config))
        settings.secrets = [s for s in found.secrets() if len(s) >= 3]
        return action(Zabbix(found))
    except CheckError as exc:
        _fail(settings, exc.message, exc.exit_code)


@zabbix.command("import-template")
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.pass_obj
def import_template(settings: Settings, file: Optional[str]):
    """Import the bundled "Exalate by Zabbix agent" template (or FILE). Safe to run again."""
    from .template import template_xml
    if file:
        with open(file, encoding="utf-8") as handle:
            source = handle.read()
    else:
        source = template_xml()
    _zabbix_call(settings, lambda api: api.import_template(source))
    click.echo(f"imported {file or 'the Exalate by Zabbix agent template'}")


@zabbix.command("add-host")
@click.argument("hostname")
@click.option("--agent-address", default="127.0.0.1", show_default=True, help="IP address or DNS name of its agent.")
@click.option("--agent-port", default=10050, show_default=True, type=click.IntRange(1, 65535))
@click.option("--node", "node_name", default=None, help="{$EXALATE.NODE}: the configuration section the agent "
              "uses [default: the global --node, else default].")
@click.option("--group", default="Exalate", show_default=True, help="Host group (created if missing).")
@click.pass_obj
def add_host(settings: Settings, hostname, agent_address, agent_port, node_name, group):
    """Create or update HOSTNAME with an agent interface, link the template and set {$EXALATE.NODE}."""
    node = node_name or settings.node or "default"
    click.echo(_zabbix_call(settings, lambda api: api.add_host(hostname, agent_address, agent_port, node, group)))
