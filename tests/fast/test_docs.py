"""The documentation agrees with the code: keys, exit statuses and the commands it shows."""
import pathlib
import re
import textwrap

import pytest

from zabbix_exalate.cli import main
from zabbix_exalate.config import NODE_KEYS, ZABBIX_KEYS
from zabbix_exalate.errors import EXIT_CODES

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_configuration_key_is_documented():
    text = (ROOT / "docs" / "configuration.md").read_text()
    for key in NODE_KEYS + ZABBIX_KEYS:
        assert f"`{key}`" in text or f"`{key}`," in text, key


def test_every_exit_status_is_explained():
    text = (ROOT / "docs" / "troubleshooting.md").read_text()
    for code in EXIT_CODES:
        assert re.search(rf"^\| {code} \|", text, re.M), code


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_commands_shown_in_the_docs_exist(doc):
    text = doc.read_text()
    code = "\n".join(re.findall(r"```(?:sh|ini)?\n(.*?)```", text, re.S) + re.findall(r"`([^`\n]+)`", text))
    # Commands as shown in code, not the synopsis ("zabbix-exalate [--config PATH] ... COMMAND").
    shown = re.findall(r"(?<![/\w-])zabbix-exalate((?: +[^\s`|\[#]+)+)", code)
    for args in shown:
        words = iter(args.split())
        command = main
        for word in words:
            if word in ("--config", "--node", "--timeout"):
                next(words, None)  # the option's value
            elif word.startswith("-"):
                continue
            else:
                assert word in command.commands, f"{doc.name}: 'zabbix-exalate{args}' names no command"
                command = command.commands[word]
                if not hasattr(command, "commands"):
                    break


def ini_examples():
    """Every INI block of the docs and the shipped example configuration, as (where, text)."""
    found = []
    for doc in DOCS:
        for i, block in enumerate(re.findall(r"^ *```ini\n(.*?)^ *```", doc.read_text(), re.S | re.M)):
            found.append((f"{doc.name}#{i + 1}", textwrap.dedent(block)))
    example = ROOT / "zabbix_exalate" / "data" / "zabbix_exalate.conf.example"
    found.append((example.name, example.read_text()))
    return found


@pytest.mark.parametrize("where, text", ini_examples(), ids=[w for w, _ in ini_examples()])
def test_every_ini_example_reads_and_runs_against_the_simulator(where, text, sim, tmp_path):
    """Each example as written (its keys, comments, ping_check, connections), pointed at the simulator."""
    import configparser
    import io
    import json

    from helpers import LOGIN_PASSWORD, PASSWORD, SECRET, config_file, run_cli
    from zabbix_exalate.config import load_node

    source = config_file(tmp_path / "example.conf", text=text)
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    parser.read_string(text)
    nodes = [s for s in parser.sections() if s != "zabbix"]
    assert nodes, where
    sim.simulator.update(credentials={"jwt_secret": SECRET, "user": "monitor", "password": PASSWORD,
                                      "login_password": LOGIN_PASSWORD, "monitor_user": "monitor",
                                      "monitor_password": PASSWORD})
    real = {"jwt_secret": SECRET, "user": "monitor", "password": PASSWORD, "monitor_user": "monitor",
            "monitor_password": PASSWORD, "login_password": LOGIN_PASSWORD}
    for node in nodes:
        load_node(source, node)  # as written: it parses, every key is known, values are valid
        for key in parser[node]:
            if key in real:
                parser[node][key] = real[key]
        parser[node]["url"] = sim.url
        if "monitor_url" in parser[node]:
            parser[node]["monitor_url"] = sim.url + "/rest/issuehub/4.0/cmonitor"
        parser[node]["token_cache"] = "off"
    written = io.StringIO()
    parser.write(written)
    runnable = config_file(tmp_path / "runnable.conf", text=written.getvalue())
    for node in nodes:
        ran = run_cli("--config", runnable, "--node", node, "collect")
        assert ran.code == 0 and ran.stderr == "", (where, node, ran)
        assert json.loads(ran.stdout)["ping"] == 1, (where, node, ran.stdout)
