"""The documentation agrees with the code: keys, exit statuses and the commands it shows."""
import pathlib
import re

import pytest

from zabbix_exalate.cli import main
from zabbix_exalate.config import NODE_KEYS, ZABBIX_KEYS
from zabbix_exalate.errors import EXIT_CODES

ROOT = pathlib.Path(__file__).resolve().parent.parent
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
