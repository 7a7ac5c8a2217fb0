"""The template, the UserParameters and the CLI agree: one source of truth, checked here."""
import json
import re
import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import assert_no_secret
from zabbix_exalate.cli import main
from zabbix_exalate.template import MACROS, TEMPLATE, TEMPLATE_FILE, USERPARAMETER_FILE, generated_files

ROOT = Path(__file__).resolve().parent.parent
XML = ET.parse(ROOT / TEMPLATE_FILE).getroot()
TEMPLATE_EL = XML.find("templates/template")
USERPARAMETERS = dict(re.findall(r"^UserParameter=([\w.]+)\[\*\],(.*)$",
                                 (ROOT / USERPARAMETER_FILE).read_text(), re.M))
ITEMS = TEMPLATE_EL.findall("items/item")
PROTOTYPES = TEMPLATE_EL.findall("discovery_rules/discovery_rule/item_prototypes/item_prototype")
RULES = TEMPLATE_EL.findall("discovery_rules/discovery_rule")


def base(key: str) -> str:
    return key.split("[", 1)[0]


@pytest.mark.parametrize("path", sorted(generated_files(ROOT)), ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_file_is_what_the_generator_writes(path):
    assert path.read_text(encoding="utf-8") == generated_files(ROOT)[path], \
        f"{path.relative_to(ROOT)} is stale: run python -m zabbix_exalate.template"


def test_export_format_is_zabbix_6_0():
    assert XML.findtext("version") == "6.0"
    assert TEMPLATE_EL.findtext("template") == TEMPLATE == "Exalate by Zabbix agent"
    assert XML.find("groups/group/uuid").text == "a571c0d144b14fd4a87a9d9b2aa9fcd6"


def test_every_entity_has_its_own_uuid_v4():
    found = [e.text for e in XML.iter("uuid")]
    assert len(found) == len(set(found)) > 20
    for text in found:
        assert re.fullmatch(r"[0-9a-f]{32}", text), text
        value = uuid.UUID(hex=text)
        assert value.version == 4 and value.variant == uuid.RFC_4122, text
    # Everything Zabbix requires a uuid on carries one.
    for path in ("templates/template", "templates/template/items/item", "graphs/graph",
                 "templates/template/items/item/triggers/trigger", "templates/template/dashboards/dashboard",
                 "templates/template/valuemaps/valuemap", "templates/template/discovery_rules/discovery_rule",
                 "templates/template/discovery_rules/discovery_rule/item_prototypes/item_prototype",
                 "templates/template/discovery_rules/discovery_rule/item_prototypes/item_prototype/"
                 "trigger_prototypes/trigger_prototype",
                 "templates/template/discovery_rules/discovery_rule/graph_prototypes/graph_prototype"):
        entities = XML.findall(path)
        assert entities, path
        assert all(e.findtext("uuid") for e in entities), path


def test_every_key_in_the_template_is_served_by_a_userparameter():
    keys = [e.findtext("key") for e in ITEMS + PROTOTYPES + RULES]
    assert {base(k) for k in keys} == set(USERPARAMETERS)
    for key in keys:
        assert key.startswith(f"{base(key)}[{{$EXALATE.NODE}}"), key  # the node is always the first parameter


def test_every_userparameter_runs_a_real_command():
    for key, command in USERPARAMETERS.items():
        words = command.replace("2>/dev/null", "").split()
        assert words[:3] == ["zabbix-exalate", "--node", "'$1'"], command
        sub = main.commands[words[3]]
        options = {o for p in sub.params for o in getattr(p, "opts", []) if o.startswith("--")}
        assert {w for w in words[4:] if w.startswith("--") and w != "--"} <= options, command
        arguments = [p for p in sub.params if p.param_type_name == "argument"]
        assert ("'$2'" in words) == bool(arguments), command
        assert "secret" not in command and "password" not in command


def test_every_item_prototype_key_holds_an_lld_macro_and_names_show_the_real_name():
    for proto in PROTOTYPES:
        assert "{#CONNECTION.KEY}" in proto.findtext("key")
        assert '"{#CONNECTION}"' in proto.findtext("name")
        tags = {t.findtext("tag"): t.findtext("value") for t in proto.findall("tags/tag")}
        assert tags == {"component": "queue", "connection": "{#CONNECTION}"}


def test_every_lld_macro_the_template_uses_is_one_discover_emits(cli):
    emitted = set().union(*(row.keys() for row in json.loads(cli("discover").stdout)))
    used = set(re.findall(r"\{#[A-Z0-9_.]+\}", ET.tostring(TEMPLATE_EL.find("discovery_rules"), encoding="unicode")))
    assert used and used <= emitted, used - emitted


def test_every_user_macro_is_defined_with_a_description_and_used():
    text = ET.tostring(XML, encoding="unicode")
    defined = {m for m, _, _ in MACROS}
    used = {re.sub(r":.*", "}", m) for m in re.findall(r"\{\$[A-Z0-9_.]+[:}]", text)}
    assert used == defined
    for macro in TEMPLATE_EL.findall("macros/macro"):
        assert macro.findtext("description"), macro.findtext("macro")


def test_triggers_use_the_template_items_and_depend_on_node_unreachable():
    keys = {e.findtext("key") for e in ITEMS + PROTOTYPES}
    triggers = TEMPLATE_EL.findall(".//triggers/trigger") + TEMPLATE_EL.findall(
        ".//trigger_prototypes/trigger_prototype")
    names = {(t.findtext("name"), t.findtext("expression")) for t in triggers}
    for trig in triggers:
        referenced = re.findall(rf"/{re.escape(TEMPLATE)}/(exalate\.\w+\[[^\]]*\])", trig.findtext("expression"))
        assert referenced and set(referenced) <= keys, trig.findtext("name")
        assert trig.findtext("description") and trig.findtext("priority")
        for dep in trig.findall("dependencies/dependency"):
            assert (dep.findtext("name"), dep.findtext("expression")) in names
        if trig.findtext("name") not in ("Exalate: Node is unreachable", "Exalate: No data from the checks"):
            assert "Exalate: Node is unreachable" in [d.findtext("name") for d in trig.findall(
                "dependencies/dependency")], trig.findtext("name")
    # Thresholds of a connection can be overridden for that connection alone.
    for trig in TEMPLATE_EL.findall(".//trigger_prototypes/trigger_prototype"):
        thresholds = set(re.findall(r"\{\$[A-Z0-9_.]+[:}]", trig.findtext("expression"))) - {"{$EXALATE.NODE}"}
        assert thresholds and all(m.endswith(":") for m in thresholds), trig.findtext("name")


def test_userparameters_give_what_the_agent_would_store(config, sim):
    """Each UserParameter run through /bin/sh as the agent runs it, with $1..$3 filled in."""
    env = {"ZABBIX_EXALATE_CONFIG": config, "PATH": str(Path(subprocess.check_output(
        ["sh", "-c", "command -v zabbix-exalate"], text=True).strip()).parent) + ":/usr/bin:/bin"}

    def agent(key, *params):
        command = USERPARAMETERS[key]
        for i, value in enumerate(params, 1):
            command = command.replace(f"${i}", value)
        command = re.sub(r"\$\d", "", command)
        proc = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, env=env, timeout=30)
        output = proc.stdout + proc.stderr  # the agent stores both
        assert_no_secret(output)
        return output.strip()

    assert agent("exalate.ping", "") == "1"
    assert agent("exalate.errors", "default") == "7"
    assert agent("exalate.outgoing", "") == "20"
    rows = json.loads(agent("exalate.discovery", ""))
    key = rows[0]["{#CONNECTION.KEY}"]
    assert agent("exalate.sync_requests", "", key) == "1"
    assert agent("exalate.error_responses", "", key) == "5"
    assert agent("exalate.error_responses", "", key, "NO_ISSUE_TO_CONNECT_TO") == "3"  # 5 failures, 2 reasons
    gone = agent("exalate.sync_requests", "", "Gone")
    assert "not found" in gone and not gone[:1].isdigit()
    sim.stop()
    assert agent("exalate.ping", "") == "0"  # the reason goes to the log of a manual run, not into the value
