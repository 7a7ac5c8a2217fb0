"""The templates, the UserParameters and the CLI agree: one source of truth, checked here."""
import copy
import json
import re
import shutil
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from helpers import (BASE_SCENARIO, assert_no_secret, macro_names, misplaced_macros, require_binary, run_cli,
                     run_process)
from hostile_server import HostileServer, jsonrpc_calls, zabbix_api
from zabbix_exalate.cli import main
from zabbix_exalate.exalate.names import key_form
from zabbix_exalate.metrics import SEND_KEY
from zabbix_exalate.zabbix.content import CONNECTION_GONE, MACROS, MACROS_7_0, REASON_COUNT_JS
from zabbix_exalate.zabbix.design import (AGENT_TEMPLATE, DESIGNS, FORMATS, PER_CHECK_TEMPLATE, TEMPLATE_NAMES,
                                          TRAPPER_TEMPLATE, HTTP_TEMPLATE, format_for)
from zabbix_exalate.zabbix.httpscript import http_script
from zabbix_exalate.zabbix.export import template_xml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from generate import KEYS_DOC, README_FILE, USERPARAMETER_FILE, generated_files, tables  # noqa: E402

# What import-template installs, written out: each template's name and its file in templates/<format>/, in the
# order they are imported.
SHIPPED = {"Exalate by Zabbix agent": "template_exalate_agent.xml",
           "Exalate by Zabbix agent per check": "template_exalate_agent_per_check.xml",
           "Exalate by Zabbix trapper": "template_exalate_trapper.xml",
           "Exalate by HTTP": "template_exalate_http.xml"}
# A connection's status as the templates store it (history and the value map keep these numbers), and its queues'
# fields in the document, written out.
STATUS_CODES = {"ACTIVE": 1, "DEACTIVATED": 2, "ERROR": 3, "PENDING": 4, "CONFIGURED": 5}
OTHER_STATUS = 0
QUEUE_FIELDS = ("sync_requests", "blob_requests", "sync_responses", "blob_responses", "error_responses",
                "blob_error_responses")
# The committed files, as Zabbix would read them: XML[name] is the 6.0 export, XML[name, fmt] any format's.
XML = {(d.name, fmt): ET.parse(ROOT / "templates" / fmt / d.filename).getroot() for fmt in FORMATS for d in DESIGNS}
XML.update({name: XML[name, "6.0"] for name in TEMPLATE_NAMES})
ONE_POLL = (AGENT_TEMPLATE, TRAPPER_TEMPLATE, HTTP_TEMPLATE)
USERPARAMETERS = dict(re.findall(r"^UserParameter=([\w.]+)\[\*\],(.*)$",
                                 (ROOT / USERPARAMETER_FILE).read_text(), re.M))
GROUP_UUID = "a571c0d144b14fd4a87a9d9b2aa9fcd6"  # Zabbix's own "Templates/Applications": the same in every file
# Written independently of the generator's own pattern, so that a broken generator cannot hide here.
GENERATED = re.compile(r"<!-- generated: (\S+) -->\n(.*?)<!-- end generated -->", re.S)
NO_DATA = ("Exalate: No data from the checks", 'Exalate: Connection "{#CONNECTION}": No data')


def template(name: str, fmt: str = "6.0") -> ET.Element:
    return XML[name, fmt].find("templates/template")


def items(name: str, fmt: str = "6.0"):
    return template(name, fmt).findall("items/item")


def rules(name: str, fmt: str = "6.0"):
    return template(name, fmt).findall("discovery_rules/discovery_rule")


def connection_rule(name: str, fmt: str = "6.0") -> ET.Element:
    """The discovery of connections (the one-poll templates also discover failure reasons)."""
    (rule,) = [r for r in rules(name, fmt) if r.findtext("key").startswith("exalate.discovery[")]
    return rule


def reason_rule(name: str, fmt: str = "6.0") -> ET.Element:
    (rule,) = [r for r in rules(name, fmt) if r.findtext("key").startswith("exalate.reasons[")]
    return rule


def prototypes(name: str, fmt: str = "6.0"):
    """The item prototypes of each discovered connection."""
    return connection_rule(name, fmt).findall("item_prototypes/item_prototype")


def triggers(name: str, fmt: str = "6.0"):
    el = template(name, fmt)
    return el.findall(".//triggers/trigger") + el.findall(".//trigger_prototypes/trigger_prototype")


def base(key: str) -> str:
    return key.split("[", 1)[0]


def master(name: str, fmt: str = "6.0") -> ET.Element:
    found = [i for i in items(name, fmt) if i.findtext("type") != "DEPENDENT"]
    assert len(found) == 1, name
    return found[0]


def macros(name: str, fmt: str) -> dict:
    """The template's own macros: macro -> (default value, description)."""
    return {m.findtext("macro"): (m.findtext("value"), m.findtext("description"))
            for m in template(name, fmt).findall("macros/macro")}


def seconds(value: str) -> float:
    """A Zabbix time value (a plain number of seconds, or with a suffix s, m, h, d, w) in seconds."""
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw]?)", value).groups()
    return float(number) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]


# --- the files -------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(generated_files(ROOT)), ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_file_is_what_the_generator_writes(path):
    wanted = generated_files(ROOT)[path]
    assert path.read_text(encoding="utf-8") == wanted, \
        f"{path.relative_to(ROOT)} is stale: run python tools/generate.py"
    # An empty block would pass the comparison above if the generator skipped it: it must hold a table.
    for name, block in GENERATED.findall(wanted):
        assert block.startswith("| ") and block.count("\n") >= 3, f"{path.name}: block {name} is empty"


def test_every_generated_table_has_a_place_in_the_docs():
    placed = [name for doc in (README_FILE, KEYS_DOC)
              for name, _ in GENERATED.findall((ROOT / doc).read_text(encoding="utf-8"))]
    assert sorted(placed) == sorted(tables())
    assert {f"{kind}:{d.slug}" for d in DESIGNS for kind in ("macros", "items", "discovery", "triggers")} <= set(placed)


def test_four_templates_one_file_each_per_format():
    assert TEMPLATE_NAMES == tuple(SHIPPED)
    assert (AGENT_TEMPLATE, PER_CHECK_TEMPLATE, TRAPPER_TEMPLATE, HTTP_TEMPLATE) == tuple(SHIPPED)
    assert {d.name: d.filename for d in DESIGNS} == SHIPPED
    assert FORMATS == ("6.0", "7.0")
    # The layout of Zabbix's community-templates: one folder per export format, the same file names in each.
    on_disk = sorted(p.relative_to(ROOT / "templates").as_posix() for p in (ROOT / "templates").rglob("*.xml"))
    assert on_disk == [f"{fmt}/{file}" for fmt in ("6.0", "7.0") for file in sorted(SHIPPED.values())]
    # The defaults: the agent template, in the 6.0 format, byte for byte its committed file.
    assert template_xml() == template_xml(AGENT_TEMPLATE) == template_xml(AGENT_TEMPLATE, "6.0") == (
        ROOT / "templates" / "6.0" / "template_exalate_agent.xml").read_text(encoding="utf-8")
    with pytest.raises(KeyError):
        template_xml("Exalate by SNMP")
    with pytest.raises(KeyError):
        template_xml(AGENT_TEMPLATE, "6.4")


@pytest.mark.parametrize("server, fmt", [("6.0.14", "6.0"), ("6.0.40", "6.0"), ("6.2.9", "6.0"), ("6.4.21", "6.0"),
                                         ("7.0.0", "7.0"), ("7.0.22", "7.0"), ("7.2.3", "7.0"), ("7.4.1", "7.0"),
                                         ("8.0.0alpha1", "7.0")])
def test_a_server_gets_the_newest_format_it_imports(server, fmt):
    assert format_for(server) == fmt


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_export_format_is_the_one_its_folder_names(name, fmt):
    root = XML[name, fmt]
    assert root.findtext("version") == fmt
    assert template(name, fmt).findtext("template") == template(name, fmt).findtext("name") == name
    # Zabbix's ZBX_PREG_INTERNAL_NAMES: what a template's technical name may hold.
    assert re.fullmatch(r"[0-9a-zA-Z_. \-]+", name)
    # 6.2 split template groups from host groups: 7.0 exports them as template_groups, 6.0 as groups.
    groups = "template_groups/template_group" if fmt == "7.0" else "groups/group"
    assert [g.findtext("uuid") for g in root.findall(groups)] == [GROUP_UUID]
    assert root.find("groups" if fmt == "7.0" else "template_groups") is None
    assert [g.findtext("name") for g in template(name, fmt).findall("groups/group")] == ["Templates/Applications"]
    if fmt == "6.0":  # nothing of 7.0 in a 6.0 file: 6.0 would refuse the whole import
        assert not [e.tag for e in root.iter() if e.tag in ("timeout", "enabled_lifetime_type", "enabled_lifetime",
                                                            "template_groups")
                    and not (e.tag == "timeout" and root.find(".//item[timeout]/type").text == "SCRIPT")]
        # 6.0 has a timeout for Script items only (and HTTP agent ones)
        assert [i.findtext("type") for i in root.iter("item") if i.find("timeout") is not None] == (
            ["SCRIPT"] if name == HTTP_TEMPLATE else [])


def entities(root: ET.Element) -> dict:
    """uuid -> what the entity is (its kind, and its key, name or expression), for every entity of one file."""
    found = {}
    for parent in root.iter():
        for child in parent:
            text = child.findtext("uuid")
            if text:
                what = child.findtext("key") or child.findtext("expression") or child.findtext("name")
                assert text not in found, f"uuid {text} twice in one file"
                found[text] = ("group" if child.tag == "template_group" else child.tag, what)  # 7.0's new name
    return found


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_an_entity_has_the_same_uuid_in_every_format(name):
    """Zabbix matches by uuid when the 7.0 export is imported over the 6.0 one: same uuid, same item, its history."""
    old, new = entities(XML[name, "6.0"]), entities(XML[name, "7.0"])
    assert old == new
    assert len(old) > 25


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_entity_has_its_own_uuid_v4_in_all_three_files(fmt):
    found = [e.text for name in TEMPLATE_NAMES for e in XML[name, fmt].iter("uuid") if e.text != GROUP_UUID]
    assert len(found) == len(set(found)) > 80
    for text in found:
        assert re.fullmatch(r"[0-9a-f]{32}", text), text
        value = uuid.UUID(hex=text)
        assert value.version == 4 and value.variant == uuid.RFC_4122, text
    # Everything Zabbix requires a uuid on carries one.
    for root in (XML[name, fmt] for name in TEMPLATE_NAMES):
        for path in ("templates/template", "templates/template/items/item", "graphs/graph",
                     "templates/template/items/item/triggers/trigger", "templates/template/dashboards/dashboard",
                     "templates/template/valuemaps/valuemap", "templates/template/discovery_rules/discovery_rule",
                     "templates/template/discovery_rules/discovery_rule/item_prototypes/item_prototype",
                     "templates/template/discovery_rules/discovery_rule/item_prototypes/item_prototype/"
                     "trigger_prototypes/trigger_prototype",
                     "templates/template/discovery_rules/discovery_rule/graph_prototypes/graph_prototype"):
            kind = root.findall(path)
            assert kind, path
            assert all(e.findtext("uuid") for e in kind), path


def test_the_agent_template_keeps_the_uuids_its_entities_always_had():
    """An update in place: Zabbix matches by uuid, so the hosts of the old (per-check) template keep their items."""
    ping = next(i for i in items(AGENT_TEMPLATE) if i.findtext("key") == "exalate.ping[{$EXALATE.NODE}]")
    assert template(AGENT_TEMPLATE).findtext("uuid") == "db79e7b0f0ac4ccea9d88e51651d5c1e"
    assert ping.findtext("uuid") == "df4f85e3104f4eed889b86f532712a0e"


# --- keys, UserParameters and commands -------------------------------------------------------------

def test_every_agent_key_in_the_templates_is_served_by_a_userparameter():
    keys = [e.findtext("key") for name in TEMPLATE_NAMES for e in items(name) + prototypes(name) + rules(name)
            if e.findtext("type") in (None, "ZABBIX_PASSIVE")]
    assert {base(k) for k in keys} == set(USERPARAMETERS)
    for key in keys:
        assert key.startswith(f"{base(key)}[{{$EXALATE.NODE}}"), key  # the node is always the first parameter


def test_every_userparameter_runs_a_real_command_with_real_options():
    global_options = {o for p in main.params for o in getattr(p, "opts", [])}
    for key, command in USERPARAMETERS.items():
        words = command.replace("2>/dev/null", "").split()
        assert words[0] == "zabbix-exalate" and words[1:3] == ["--node", "'$1'"], command
        at = 1
        while words[at].startswith("--"):  # global options, each with its value
            assert words[at] in global_options, command
            at += 2
        sub = main.commands[words[at]]
        rest = words[at + 1:]
        options = {o for p in sub.params for o in getattr(p, "opts", []) if o.startswith("--")}
        assert {w for w in rest if w.startswith("--") and w != "--"} <= options, command
        arguments = [p for p in sub.params if p.param_type_name == "argument"]
        assert ("'$2'" in rest) == bool(arguments), command
        assert "secret" not in command and "password" not in command


def test_the_one_poll_templates_keep_the_single_checks_keys():
    """Unlink one template without clearing, link another: matching keys keep their items and history."""
    def keys(name):
        return {e.findtext("key") for e in items(name) + prototypes(name) + rules(name)} - {
            master(name).findtext("key") if name in ONE_POLL else None}
    assert keys(PER_CHECK_TEMPLATE) < keys(AGENT_TEMPLATE) == keys(TRAPPER_TEMPLATE) == keys(HTTP_TEMPLATE)


@pytest.mark.parametrize("name", ONE_POLL)
def test_one_poll_templates_read_one_document(name):
    first = master(name)
    assert (first.findtext("value_type"), first.findtext("history"), first.findtext("trends")) == ("TEXT", "0", "0")
    assert first.find("triggers") is None  # an item without history evaluates no trigger
    if name == AGENT_TEMPLATE:
        assert first.findtext("type") is None  # Zabbix agent
        assert first.findtext("key") == "exalate.collect[{$EXALATE.NODE},{$EXALATE.COLLECT.TIMEOUT}]"
        assert first.findtext("delay") == "{$EXALATE.INTERVAL}"
    elif name == HTTP_TEMPLATE:  # the server's JavaScript, the same document as the agent's collect
        assert (first.findtext("type"), first.findtext("key")) == ("SCRIPT", "exalate.collect[{$EXALATE.NODE}]")
        assert first.findtext("delay") == "{$EXALATE.INTERVAL}"
        assert first.findtext("params") == http_script()
    else:
        # The server matches a trapper value by the key as written: it would not expand a macro in it.
        assert (first.findtext("type"), first.findtext("key")) == ("TRAP", SEND_KEY)
    dependent = [e for e in items(name) + prototypes(name) + rules(name) if e is not first]
    for entity in dependent:
        assert entity.findtext("type") == "DEPENDENT", entity.findtext("key")
        # The statuses read the node's connection list, which reads the document (see the test below).
        assert entity.findtext("master_item/key") == (
            "exalate.connection_list[{$EXALATE.NODE}]" if entity.findtext("key").startswith("exalate.status[")
            else first.findtext("key")), entity.findtext("key")
        steps = [(s.findtext("type"), s.findtext("parameters/parameter")) for s in entity.findall("preprocessing/step")]
        if entity.findtext("key").startswith("exalate.ping["):
            assert steps == [("JSONPATH", "$.ping")]  # a node that is down is a 0, not an unsupported item
        elif entity.findtext("key").startswith("exalate.credentials["):
            # Always a value: "unknown" when the node gave no answer, never an unsupported item.
            assert [s for s, _ in steps] == ["JSONPATH", "JAVASCRIPT"]
            assert entity.find("preprocessing/step").findtext("error_handler") == "CUSTOM_VALUE"
        elif steps[-1][0] == "DISCARD_UNCHANGED":
            # Stores only changes: it must never turn unsupported (Zabbix would keep it so while the value
            # stays the same), so every step that may fail sets a value instead.
            for step in entity.findall("preprocessing/step")[:-1]:
                assert step.findtext("type") == "JAVASCRIPT" or step.findtext("error_handler") == "CUSTOM_VALUE"
        elif entity.findtext("key").startswith("exalate.status["):
            assert steps[0] == ("JSONPATH", "$[?(@.key=='{#CONNECTION.KEY}')].first()"), steps
        elif "{#CONNECTION.KEY}" in entity.findtext("key"):
            assert steps[0] == ("JSONPATH", ENTRY), entity.findtext("key")  # see the test below
        else:
            assert steps[0][0] == "CHECK_JSON_ERROR", entity.findtext("key")


ENTRY = "$.connections[?(@.key=='{#CONNECTION.KEY}')].first()"


def test_custom_values_and_errors_fit_zabbix_s_255_characters():
    for name in ONE_POLL:
        for fmt in FORMATS:
            for step in ET.fromstring(template_xml(name, fmt)).iter("step"):
                assert len(step.findtext("error_handler_params") or "") <= 255, step.findtext("error_handler_params")


def test_connection_items_start_with_the_step_zabbix_runs_once_per_document():
    """Zabbix parses the document once for the dependent items whose first step is JSONPath, and indexes a filter
    `?(@.key == "constant")`: any other first step parses it again, item after item, and a document would cost the
    square of its connections (tests/bench/bench_zabbix.py). The status reads its entry the same way from the node's
    connection list, an item that fails when the node gave no list: the node down is no status, not REMOVED."""
    for name in ONE_POLL:
        (listed,) = [i for i in items(name) if i.findtext("key") == "exalate.connection_list[{$EXALATE.NODE}]"]
        assert [(s.findtext("type"), s.findtext("parameters/parameter")) for s in listed.findall(
            "preprocessing/step")] == [("CHECK_JSON_ERROR", "$.failures.connections"), ("JSONPATH", "$.connections")]
        assert (listed.findtext("history"), listed.findtext("value_type")) == ("0", "TEXT")
        for proto in prototypes(name):
            first = proto.find("preprocessing/step")
            found = (first.findtext("type"), first.findtext("parameters/parameter"))
            if proto.findtext("key").startswith("exalate.status["):
                assert found == ("JSONPATH", "$[?(@.key=='{#CONNECTION.KEY}')].first()"), found
            else:
                assert found == ("JSONPATH", ENTRY), proto.findtext("key")


def test_queue_prototypes_check_their_connection_then_their_own_failure():
    fields = {f"exalate.{field}": field for field in QUEUE_FIELDS}
    for name in ONE_POLL:
        assert set(fields) <= {base(proto.findtext("key")) for proto in prototypes(name)}, name
        for proto in prototypes(name):
            steps = [(s.findtext("type"), s.findtext("parameters/parameter"), s.findtext("error_handler"))
                     for s in proto.findall("preprocessing/step")]
            if steps[-1][0] == "DISCARD_UNCHANGED":
                continue  # never unsupported: test_the_heads_and_newest_failures_come_back_after_an_error
            entry = "$.connections[?(@.key=='{#CONNECTION.KEY}')].first()"
            if base(proto.findtext("key")) == "exalate.status":
                # A connection no longer listed is REMOVED; no list at all (the node down) is no status, the
                # connection list item failing (test_a_node_that_is_down_is_a_0_and_every_other_item_says_why).
                assert steps[0] == ("JSONPATH", "$[?(@.key=='{#CONNECTION.KEY}')].first()", "CUSTOM_VALUE")
                continue
            field = fields.get(base(proto.findtext("key")), "{#QUEUE}")
            # The connection's entry (indexed; when it is not listed, one whose field failed for that reason), the
            # field's reason, then the value: the reason is the error's third line in Zabbix.
            assert steps == [
                ("JSONPATH", entry, "CUSTOM_VALUE"), ("CHECK_JSON_ERROR", f"$.failures.{field}", None),
                ("JSONPATH", f"$.{field}" if field in QUEUE_FIELDS else "$.{#REASONS}", "CUSTOM_ERROR")] + (
                [("JAVASCRIPT", REASON_COUNT_JS, None)] if field == "{#QUEUE}" else [])
            assert json.loads(proto.find("preprocessing/step").findtext("error_handler_params")) == {
                "failures": {field: CONNECTION_GONE}}


def test_every_item_prototype_key_holds_an_lld_macro_and_names_show_the_real_name():
    for name in TEMPLATE_NAMES:
        for proto in prototypes(name):
            assert "{#CONNECTION.KEY}" in proto.findtext("key")
            assert '"{#CONNECTION}"' in proto.findtext("name")
            tags = {t.findtext("tag"): t.findtext("value") for t in proto.findall("tags/tag")}
            assert tags in ({"component": "queue", "connection": "{#CONNECTION}"},
                            {"component": "health", "connection": "{#CONNECTION}"})


def used_lld_macros(rule: ET.Element) -> set:
    copy = ET.fromstring(ET.tostring(rule))
    for paths in copy.findall("lld_macro_paths"):
        copy.remove(paths)
    return set(re.findall(r"\{#[A-Z0-9_.]+\}", ET.tostring(copy, encoding="unicode")))


def test_every_lld_macro_a_template_uses_is_one_its_discovery_provides(cli, roomy):
    emitted = set().union(*(row.keys() for row in json.loads(cli("discover", config_path=roomy).stdout)))
    (rule,) = rules(PER_CHECK_TEMPLATE)
    used = used_lld_macros(rule)
    assert used and used <= emitted, used - emitted
    document = run_cli("--config", roomy, "collect").stdout
    for name in ONE_POLL:
        rule = connection_rule(name)
        provided = {p.findtext("lld_macro") for p in rule.findall("lld_macro_paths/lld_macro_path")}
        used = used_lld_macros(rule)
        assert used and used <= provided <= emitted, (name, used - provided, provided - emitted)
        # The reasons' rule: every macro it uses, its rows give (the simulator's node has failures).
        rule = reason_rule(name)
        provided = {p.findtext("lld_macro") for p in rule.findall("lld_macro_paths/lld_macro_path")}
        rows = discovered(rule, document)
        assert rows and all(set(row) == provided for row in rows)
        used = used_lld_macros(rule)
        assert used and used <= provided, (name, used - provided)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_user_macro_is_defined_with_a_description_and_used(name, fmt):
    defined = macros(name, fmt)
    copy = ET.fromstring(ET.tostring(XML[name, fmt]))
    copy.find("templates/template").remove(copy.find("templates/template/macros"))
    text = ET.tostring(copy, encoding="unicode")
    used = {re.sub(r":.*", "}", m) for m in re.findall(r"\{\$[A-Z0-9_.]+[:}]", text)}
    assert used == set(defined)
    values = {m: (v, MACROS_7_0.get(m, d) if fmt == "7.0" else d) for m, v, d in MACROS}
    for macro, (value, description) in defined.items():
        assert description, macro
        assert (value, description) == values[macro]
        # A description names only macros its template defines (or itself), so an operator can find them.
        named = set(re.findall(r"\{\$[A-Z0-9_.]+\}", description)) - {macro}
        if macro != "{$EXALATE.ITEM.TIMEOUT}":  # it tells what the command's own timeout is, in either template
            assert named <= set(defined), (macro, named - set(defined))


def test_every_macro_of_the_list_serves_some_template():
    defined = {fmt: {m for name in TEMPLATE_NAMES for m in macros(name, fmt)} for fmt in FORMATS}
    assert defined["7.0"] == {m for m, _, _ in MACROS}
    # What only 7.0 can use: a per-item timeout, and disabling lost resources before deleting them.
    assert defined["7.0"] - defined["6.0"] == {"{$EXALATE.ITEM.TIMEOUT}", "{$EXALATE.LLD.DISABLE.AFTER}"}
    assert set(MACROS_7_0) <= defined["7.0"]
    for fmt in FORMATS:
        assert "{$EXALATE.COLLECT.TIMEOUT}" not in macros(TRAPPER_TEMPLATE, fmt)
        assert "{$EXALATE.ITEM.TIMEOUT}" not in macros(TRAPPER_TEMPLATE, fmt)  # nothing there runs a command


# --- what 7.0 adds -----------------------------------------------------------------------------------

def agent_entities(name: str, fmt: str):
    """The items, prototypes and rules the Zabbix agent answers (no dependent, no trapper ones)."""
    return [e for e in items(name, fmt) + prototypes(name, fmt) + rules(name, fmt)
            if e.findtext("type") in (None, "ZABBIX_PASSIVE")]


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_in_7_0_every_agent_item_has_its_timeout_from_a_macro(name):
    """7.0 ends an agent's command at the item's timeout: every agent item sets one, a macro a host can raise."""
    found = agent_entities(name, "7.0")
    assert bool(found) == (name not in (TRAPPER_TEMPLATE, HTTP_TEMPLATE))
    for entity in found:
        assert entity.findtext("timeout") == "{$EXALATE.ITEM.TIMEOUT}", entity.findtext("key")
    for entity in items(name, "7.0") + prototypes(name, "7.0") + rules(name, "7.0"):
        if entity.findtext("type") == "SCRIPT":  # the HTTP template's: its own macro, which its JavaScript reads too
            assert entity.findtext("timeout") == "{$EXALATE.HTTP.TIMEOUT}"
            assert {"name": "timeout", "value": "{$EXALATE.HTTP.TIMEOUT}"} in [
                {"name": p.findtext("name"), "value": p.findtext("value")} for p in entity.findall("parameters/parameter")]
        elif entity not in found:  # dependent and trapper items run nothing: Zabbix ignores a timeout there
            assert entity.find("timeout") is None, entity.findtext("key")
    if found:
        value, description = macros(name, "7.0")["{$EXALATE.ITEM.TIMEOUT}"]
        assert 1 <= seconds(value) <= 600, value  # what 7.0 accepts
        assert description and "timeout" in description


def test_in_7_0_collect_gives_up_before_its_item_does():
    """The master item's timeout leaves collect's own below it, so collect says why it gave up, within the poll."""
    item = master(AGENT_TEMPLATE, "7.0")
    key = item.findtext("key")
    assert key == "exalate.collect[{$EXALATE.NODE},{$EXALATE.COLLECT.TIMEOUT}]"
    timeout_macro = item.findtext("timeout")
    assert timeout_macro == "{$EXALATE.ITEM.TIMEOUT}"
    defined = macros(AGENT_TEMPLATE, "7.0")
    collect_macro = re.search(r",(\{\$[A-Z.]+\})\]$", key).group(1)  # collect's --timeout, via the UserParameter
    assert USERPARAMETERS["exalate.collect"] == "zabbix-exalate --node '$1' --timeout '$2' collect"
    collect_seconds, item_seconds = seconds(defined[collect_macro][0]), seconds(defined[timeout_macro][0])
    assert collect_seconds + 1 <= item_seconds, (collect_seconds, item_seconds)  # a second for exit and the answer
    # Also for a host that raised collect's timeout on 6.0, where the agent's Timeout was at most 30 s.
    assert item_seconds >= 30
    # Each macro's description says how the two relate, and the item's description tells what to compare.
    # By name (without braces: Zabbix would show a macro's value where its name is meant).
    timeout_name, collect_name = timeout_macro[2:-1], collect_macro[2:-1]
    assert timeout_name in defined[collect_macro][1]
    assert collect_name in defined[timeout_macro][1]
    assert collect_name in item.findtext("description") and timeout_name in item.findtext("description")
    # The single checks give up after the node's timeout (2.5 s unless configured): below the item's as well.
    assert 2.5 + 1 <= item_seconds


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_in_7_0_a_lost_connection_s_items_are_disabled_then_deleted(name):
    for rule in rules(name, "7.0"):
        assert rule.find("lifetime_type") is None  # the default: DELETE_AFTER
        assert rule.findtext("lifetime") == "{$EXALATE.LLD.LIFETIME}"
        assert rule.findtext("enabled_lifetime_type") == "DISABLE_AFTER"
        assert rule.findtext("enabled_lifetime") == "{$EXALATE.LLD.DISABLE.AFTER}"
    defined = macros(name, "7.0")
    disable = seconds(defined["{$EXALATE.LLD.DISABLE.AFTER}"][0])
    delete = seconds(defined["{$EXALATE.LLD.LIFETIME}"][0])
    # The API refuses a disable period of 1 h or less (but 0) and one not below the lifetime; with macros it cannot
    # check, so the defaults are checked here. Longer than discovery's interval, or a connection could be disabled
    # before discovery had a chance to see it again.
    assert 3600 <= disable < delete
    assert disable > seconds(defined["{$EXALATE.LLD.INTERVAL}"][0])
    for old in rules(name, "6.0"):
        assert old.findtext("lifetime") == "{$EXALATE.LLD.LIFETIME}" and old.find("enabled_lifetime_type") is None


def normalised(root: ET.Element) -> str:
    """A 7.0 export as the 6.0 one would be, undoing only what 7.0 adds or renames (not the descriptions)."""
    copy = ET.fromstring(ET.tostring(root))
    copy.find("version").text = "6.0"
    groups = copy.find("template_groups")
    if groups is not None:
        groups.tag = "groups"
        for group in groups:
            group.tag = "group"
    for parent in list(copy.iter()):
        for child in list(parent):
            if child.tag in ("timeout", "enabled_lifetime_type", "enabled_lifetime", "description"):
                parent.remove(child)
            elif child.tag == "field" and child.findtext("name") == "reference":
                parent.remove(child)
            elif child.tag == "macro" and child.findtext("macro") in ("{$EXALATE.ITEM.TIMEOUT}",
                                                                          "{$EXALATE.LLD.DISABLE.AFTER}"):
                parent.remove(child)
    # The dashboards differ by design: each version's widgets (tests/fast/test_dashboard.py).
    for dashboard in copy.iter("dashboard"):
        dashboard.remove(dashboard.find("pages"))
    ET.indent(copy)
    return ET.tostring(copy, encoding="unicode")


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_the_formats_differ_only_where_7_0_adds_or_renames(name):
    """Keys, preprocessing, triggers, graphs and uuids are one source: what the tests of the 6.0 files prove about
    values and triggers holds for the 7.0 files."""
    assert normalised(XML[name, "7.0"]) == normalised(XML[name, "6.0"])


# --- import-template chooses the export by the server's version, with the server's own rules -----------

ZABBIX_PASSWORD = "zbx-pa55-not-shown"


def import_template(version: str, *args: str):
    """zabbix-exalate zabbix import-template [FILE], as an operator runs it, against a Zabbix frontend on loopback
    whose API says it is that version: what it printed, and the JSON-RPC calls the frontend received."""
    with HostileServer() as frontend:
        frontend.route("POST", "*/api_jsonrpc.php", zabbix_api(apiinfo__version={"result": version}))
        ran = run_cli("--config", "/nonexistent", "zabbix", "import-template", *args, secrets=[ZABBIX_PASSWORD],
                      env={"ZABBIX_URL": frontend.url, "ZABBIX_USER": "Admin", "ZABBIX_PASSWORD": ZABBIX_PASSWORD,
                           "ZABBIX_TOKEN": ""})
    return ran, jsonrpc_calls(frontend)


def imports(calls) -> list:
    return [call["params"] for call in calls if call["method"] == "configuration.import"]


@pytest.mark.parametrize("version, fmt", [("6.0.14", "6.0"), ("7.0.22", "7.0")])
def test_import_template_takes_the_export_for_the_server_and_says_so(version, fmt):
    ran, calls = import_template(version)
    assert ran.code == 0, ran
    assert ran.stdout == ('imported "Exalate by Zabbix agent", "Exalate by Zabbix agent per check", '
                          f'"Exalate by Zabbix trapper", "Exalate by HTTP" ({fmt} format, for Zabbix {version})\n')
    methods = [c["method"] for c in calls if c["method"] != "apiinfo.version"]
    assert methods == ["user.login"] + ["configuration.import"] * 4, methods
    imported = imports(calls)
    assert [i["source"] for i in imported] == [(ROOT / "templates" / fmt / file).read_text(encoding="utf-8")
                                               for file in SHIPPED.values()]
    full = {"createMissing": True, "updateExisting": True, "deleteMissing": True}
    for params in imported:
        assert params["format"] == "xml"
        rules = params["rules"]
        # The rule names of this server's configuration.import: 6.0 still calls template groups "groups"; from
        # 6.2 on that rule is refused and "template_groups" is the one.
        assert rules == {"templates": {"createMissing": True, "updateExisting": True}, "items": full,
                         "triggers": full, "graphs": full, "discoveryRules": full, "valueMaps": full,
                         "templateDashboards": full, "templateLinkage": {"createMissing": True},
                         ("template_groups" if fmt == "7.0" else "groups"): {"createMissing": True}}


def test_import_template_with_a_file_says_its_format_and_refuses_one_too_new(tmp_path):
    new = tmp_path / "agent-7.0.xml"
    new.write_text((ROOT / "templates" / "7.0" / "template_exalate_agent.xml").read_text(encoding="utf-8"))
    ran, calls = import_template("7.0.22", str(new))
    assert ran.code == 0 and ran.stdout == f"imported {new} (7.0 format, for Zabbix 7.0.22)\n", ran
    assert [i["source"] for i in imports(calls)] == [new.read_text()]
    old = tmp_path / "agent-6.0.xml"
    old.write_text((ROOT / "templates" / "6.0" / "template_exalate_agent.xml").read_text(encoding="utf-8"))
    ran, calls = import_template("7.0.22", str(old))  # the upgrade path: a 6.0 export into 7.0
    assert ran.code == 0 and "(6.0 format, for Zabbix 7.0.22)" in ran.stdout, ran
    assert [i["source"] for i in imports(calls)] == [old.read_text()]
    ran, calls = import_template("6.0.14", str(new))
    assert ran.code == 10 and imports(calls) == [] and ran.stdout == "", ran
    assert "Zabbix 7.0 export, which Zabbix 6.0.14 cannot import" in ran.stderr
    assert "templates/6.0/" in ran.stderr and len(ran.stderr.splitlines()) == 1


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_triggers_use_the_template_items_and_depend_on_node_unreachable(name):
    el = template(name)
    keys = {e.findtext("key") for e in items(name) + prototypes(name)}
    if name in ONE_POLL:
        keys.remove(master(name).findtext("key"))  # history 0: no trigger may read it
    found = triggers(name)
    names = {(t.findtext("name"), t.findtext("expression")) for t in found}
    for trig in found:
        referenced = re.findall(rf"/{re.escape(name)}/(exalate\.\w+\[[^\]]*\])", trig.findtext("expression"))
        assert referenced and set(referenced) <= keys, trig.findtext("name")
        assert "/Exalate by" not in re.sub(rf"/{re.escape(name)}/", "", trig.findtext("expression"))
        assert trig.findtext("description") and trig.findtext("priority")
        for dep in trig.findall("dependencies/dependency"):
            assert (dep.findtext("name"), dep.findtext("expression")) in names
        depends = [d.findtext("name") for d in trig.findall("dependencies/dependency")]
        if trig.findtext("name") not in ("Exalate: Node is unreachable", "Exalate: No data from the checks",
                                         REFUSED_PROBLEM):
            assert "Exalate: Node is unreachable" in depends, trig.findtext("name")
        if name in ONE_POLL and trig.findtext("name") not in ("Exalate: No data from the checks", REFUSED_PROBLEM,
                                                              "Exalate: Node is unreachable"):
            # Refused credentials make every value unreadable, the node answering all the same.
            assert REFUSED_PROBLEM in depends, trig.findtext("name")
        if name in ONE_POLL and trig.findtext("name") == "Exalate: Node is unreachable":
            # A condition, not a dependency (which would keep it open once the node answers refusing us).
            assert trig.findtext("expression").endswith(
                f" and last(/{name}/exalate.credentials[{{$EXALATE.NODE}}])<>0"), trig.findtext("expression")
        if name in ONE_POLL and '"{#CONNECTION}"' in trig.findtext("name") and "/exalate.status[" not in \
                trig.findtext("expression").rsplit(" and ", 1)[0]:
            # A removed connection's other problems neither open nor stay open: a condition on its status.
            assert trig.findtext("expression").endswith(
                f" and last(/{name}/exalate.status[{{$EXALATE.NODE}},{{#CONNECTION.KEY}}])<>6"), trig.findtext("name")
        assert (trig.findtext("manual_close") == "YES") == (trig.findtext("name") in NO_DATA), trig.findtext("name")
    # Thresholds of a connection can be overridden for that connection alone.
    for trig in el.findall(".//trigger_prototypes/trigger_prototype"):
        if "was removed" in trig.findtext("name"):
            continue  # no threshold: the node said so
        thresholds = set(re.findall(r"\{\$[A-Z0-9_.]+[:}]", trig.findtext("expression"))) - {"{$EXALATE.NODE}"}
        assert thresholds and all(m.endswith(":") for m in thresholds), trig.findtext("name")
    # The override that spares deactivated connections their backlog triggers still finds them.
    (override,) = el.findall("discovery_rules/discovery_rule/overrides/override")
    spared = [t.findtext("name") for t in found if "backlog" in t.findtext("name")]
    assert len(spared) == 2 and override.findtext("operations/operation/value") == "backlog"


REFUSED_PROBLEM = "Exalate: Credentials refused by the node"


@pytest.mark.parametrize("name", ONE_POLL)
def test_connection_status_triggers_and_value_map(name):
    status_key = f"/{name}/exalate.status[{{$EXALATE.NODE}},{{#CONNECTION.KEY}}]"
    found = {t.findtext("name"): t for t in triggers(name)}
    error = found['Exalate: Connection "{#CONNECTION}": Connection is in error']
    deactivated = found['Exalate: Connection "{#CONNECTION}": Connection is deactivated']
    period = '{$EXALATE.STATUS.PERIOD:"{#CONNECTION}"}'
    assert error.findtext("expression") == (f"min({status_key},{period})={STATUS_CODES['ERROR']} and "
                                            f"max({status_key},{period})={STATUS_CODES['ERROR']}")
    assert deactivated.findtext("expression").startswith('{$EXALATE.DEACTIVATED.CONTROL:"{#CONNECTION}"}=1 and ')
    assert f"={STATUS_CODES['DEACTIVATED']}" in deactivated.findtext("expression")
    assert (error.findtext("priority"), deactivated.findtext("priority")) == ("AVERAGE", "WARNING")
    (valuemap,) = [v for v in template(name).findall("valuemaps/valuemap")
                   if v.findtext("name") == "Exalate connection status"]
    mapped = {int(m.findtext("value")): m.findtext("newvalue") for m in valuemap.findall("mappings/mapping")}
    assert mapped == {0: "Other", 1: "Active", 2: "Deactivated", 3: "Error", 4: "Pending", 5: "Configured",
                      6: "Removed"}


# --- the real chain, without Zabbix: the agent's command, then each item's preprocessing --------------

class Unsupported(Exception):
    """What Zabbix would make of the item: unsupported, with this message."""


FILTER = re.compile(r"\[\?\(@\.(\w+)=='([^']*)'\)\]((?:\.\w+)*)\.first\(\)")


def jsonpath(value, path: str):
    """The few JSONPath forms the templates use: $.a.b, $.a.length(), $.a[?(@.k=='v')].first() and
    $.a[?(@.k=='v')].b.c.first() (the first match that has b.c)."""
    assert path.startswith("$"), path
    rest = path[1:]
    while rest:
        if rest == ".length()":
            return len(value)
        step = FILTER.match(rest)
        if step:
            found = []
            for e in value if isinstance(value, list) else ():
                if isinstance(e, dict) and e.get(step[1]) == step[2]:
                    try:
                        found.append(jsonpath(e, "$" + step[3]))
                    except LookupError:
                        pass
            if not found:
                raise LookupError(path)
            value, rest = found[0], rest[step.end():]
            continue
        step = re.match(r"\.(\w+)", rest)
        assert step, f"a JSONPath form this test cannot evaluate: {path}"
        if not isinstance(value, dict) or step[1] not in value:
            raise LookupError(path)
        value, rest = value[step[1]], rest[step.end():]
    return value


def as_text(value) -> str:
    """How Zabbix hands a JSONPath result to the next step: strings bare, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def javascript(script: str, value: str) -> str:
    """Run a preprocessing script as Zabbix does: a function body of `value` whose result becomes a string."""
    require_binary("node")
    harness = ("let input = ''; process.stdin.on('data', d => input += d); process.stdin.on('end', () => {"
               " const {script, value} = JSON.parse(input);"
               " try { process.stdout.write(String(new Function('value', script)(value))); }"
               " catch (e) { process.stderr.write(String(e)); process.exit(1); } });")
    ran = subprocess.run(["node", "-e", harness], input=json.dumps({"script": script, "value": value}),
                         capture_output=True, text=True, timeout=30)
    if ran.returncode:
        raise Unsupported(ran.stderr)
    return ran.stdout


# The one-poll templates' dependent node items by key: the master of an item that does not read the document itself.
NODE_ITEMS = {i.findtext("key"): i for name in ONE_POLL for i in items(name) if i.findtext("type") == "DEPENDENT"}


def preprocess(entity: ET.Element, value: str, macros: dict = None) -> str:
    above = NODE_ITEMS.get(entity.findtext("master_item/key"))
    if above is not None:
        # An unsupported master: Zabbix 7.0 makes its dependents unsupported with its error, 6.0 gives them no value.
        value = preprocess(above, value, macros)
    for step in entity.findall("preprocessing/step"):
        kind, parameter = step.findtext("type"), step.findtext("parameters/parameter")
        for macro, text in (macros or {}).items():
            parameter = parameter.replace(macro, text)
        if kind == "CHECK_JSON_ERROR":
            try:
                raise Unsupported(jsonpath(json.loads(value), parameter))
            except LookupError:
                continue
        elif kind == "JSONPATH":
            try:
                value = as_text(jsonpath(json.loads(value), parameter))
            except LookupError:
                if step.findtext("error_handler") == "CUSTOM_ERROR":
                    raise Unsupported(step.findtext("error_handler_params")) from None
                if step.findtext("error_handler") == "CUSTOM_VALUE":
                    value = step.findtext("error_handler_params")
                    continue
                raise Unsupported(f"no data matches {parameter}") from None
        elif kind == "JAVASCRIPT":
            value = javascript(parameter, value)
        else:
            # Each keeps the value when it changed, as it has here.
            assert kind in ("DISCARD_UNCHANGED_HEARTBEAT", "DISCARD_UNCHANGED"), kind
    return value


def value_of(entity: ET.Element, document: str, macros: dict = None) -> str:
    try:
        return preprocess(entity, document, macros)
    except Unsupported as exc:
        return f"unsupported: {exc}"


def discovered(rule: ET.Element, document: str) -> list:
    rows = json.loads(preprocess(rule, document))
    paths = {p.findtext("lld_macro"): p.findtext("path") for p in rule.findall("lld_macro_paths/lld_macro_path")}
    return [{macro: as_text(jsonpath(row, path)) for macro, path in paths.items()} for row in rows]


@pytest.fixture
def roomy(write_config):
    """A configuration for the simulator with time to spare: these tests check values, not speed, and the
    machine may be busy."""
    return write_config(timeout="20")


@pytest.fixture
def agent(roomy):
    """Run a UserParameter through /bin/sh as the agent runs it, with $1..$3 filled in: agent(key, *params)."""
    env = {"ZABBIX_EXALATE_CONFIG": roomy, "PATH": str(Path(shutil.which("zabbix-exalate")).parent) + ":/usr/bin:/bin"}

    def run(key, *params):
        command = USERPARAMETERS[key]
        for i, value in enumerate(params, 1):
            command = command.replace(f"${i}", value)
        command = re.sub(r"\$\d", "", command)
        ran = run_process(["/bin/sh", "-c", command], env=env, inherit=False)
        output = ran.stdout + ran.stderr  # the agent stores both
        assert_no_secret(output)
        return output.strip()
    return run


def test_userparameters_give_what_the_agent_would_store(agent, sim):
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
    # The master item: an empty timeout (the macro left empty) means the node's own.
    assert json.loads(agent("exalate.collect", "", ""))["errors"] == 7
    assert json.loads(agent("exalate.collect", "default", "10"))["outgoing"] == 20
    sim.stop()
    assert agent("exalate.ping", "") == "0"  # the reason goes to the log of a manual run, not into the value


def expected_node_values(document: dict) -> dict:
    return {"exalate.ping": "1", "exalate.credentials": "1", "exalate.errors": str(BASE_SCENARIO["errors"]),
            "exalate.outgoing": str(BASE_SCENARIO["outgoing"]), "exalate.incoming": str(BASE_SCENARIO["incoming"]),
            "exalate.connections": str(len(BASE_SCENARIO["connections"])),
            "exalate.connection_list": json.dumps(document["connections"]),
            "exalate.response_time": json.dumps(document["response_time"])}


@pytest.fixture
def document(agent, roomy):
    def get(name: str) -> str:
        if name == AGENT_TEMPLATE:
            return agent("exalate.collect", "", "")
        ran = run_cli("--config", roomy, "collect")  # the document `send` pushes to the trapper item
        assert ran.code == 0, ran
        return ran.stdout.strip()
    return get


@pytest.mark.parametrize("name", ONE_POLL)
def test_dependent_items_give_the_simulators_values(name, document):
    text = document(name)
    wanted = expected_node_values(json.loads(text))
    for entity in items(name):
        if entity.findtext("type") == "DEPENDENT":
            assert value_of(entity, text) == wanted.pop(base(entity.findtext("key"))), entity.findtext("key")
    assert wanted == {}, "an item the test expected is missing"
    listed = {c["name"]: c for c in json.loads(text)["connections"]}
    for connection in BASE_SCENARIO["connections"]:
        macros = {"{#CONNECTION.KEY}": key_form(connection["name"])}
        for proto in prototypes(name):
            field = base(proto.findtext("key"))[len("exalate."):]
            got = value_of(proto, text, macros)
            command = field.replace("_", "-")
            if "queues" not in connection:
                if field.endswith("_oldest"):
                    assert got == "0", (field, got)
                elif field.startswith("last_"):
                    assert got.startswith("unknown: connection 'Gone' not found"), (field, got)
                elif field != "status":
                    assert got.startswith("unsupported: ") and "not found" in got, (connection["name"], field, got)
            elif command in connection["queues"]:
                assert got == str(connection["queues"][command]), (connection["name"], field)
            elif field.endswith("_oldest"):
                # The simulator's queues start at syncEventId 1000, listed from the middle: the head is 1000.
                assert got == ("1000" if connection["queues"][command[:-len("-oldest")]] else "0"), (field, got)
            elif field.startswith("last_"):
                failure = listed[connection["name"]][field]
                assert got == f"{failure['issue']} {failure['reason']}: {failure['message']}", (field, got)
                assert got.startswith("A-100") and ("NO_ISSUE_TO_CONNECT_TO: Could not connect" in got
                                                    or "CHECKSUM_MISMATCH: Checksums" in got), got


@pytest.mark.parametrize("name", ONE_POLL)
def test_a_connection_the_node_no_longer_lists_says_so(name, document):
    doc = json.loads(document(name))
    doc["connections"] = [c for c in doc["connections"] if c["name"] != "Gone"]
    for proto in prototypes(name):
        got = value_of(proto, json.dumps(doc), {"{#CONNECTION.KEY}": "Gone"})
        field = base(proto.findtext("key"))
        if field.endswith("_oldest"):
            assert got == "0", got  # no head known: no stuck problem
        elif field.startswith("exalate.last_"):
            assert got == "unknown: the node's connection list could not be read, or no longer lists this " \
                          "connection", got
        elif field == "exalate.status":
            assert got == "6", got  # REMOVED: discovery found it, the node no longer lists it
        else:
            assert got == f"unsupported: {CONNECTION_GONE}", got


@pytest.mark.parametrize("name", ONE_POLL)
def test_a_node_that_is_down_is_a_0_and_every_other_item_says_why(name, document, sim):
    sim.stop()
    text = document(name)
    for entity in items(name) + prototypes(name):
        if entity.findtext("type") != "DEPENDENT":
            continue
        got = value_of(entity, text, {"{#CONNECTION.KEY}": "AllContent"})
        if entity.findtext("key").startswith("exalate.ping["):
            assert got == "0"
        elif entity.findtext("key").startswith("exalate.credentials["):
            assert got == "2"  # unknown: a node that is down is not one that refuses us
        elif "_oldest[" in entity.findtext("key"):
            assert got == "0"
        elif entity.findtext("key").startswith("exalate.last_"):
            assert got.startswith("unknown: the node's connection list could not be read"), got
        else:
            assert got.startswith("unsupported: ") and len(got) > 30, (entity.findtext("key"), got)
    for rule in rules(name):
        with pytest.raises(Unsupported):  # the rule keeps its items while it cannot tell
            discovered(rule, text)


def test_scripts_are_ecmascript_5_for_zabbix():
    """Zabbix runs preprocessing in Duktape: no arrow functions, let, const or template strings."""
    for name in ONE_POLL:
        for step in XML[name].iter("step"):
            if step.findtext("type") == "JAVASCRIPT":
                script = step.findtext("parameters/parameter")
                assert not re.search(r"=>|\blet\b|\bconst\b|`", script), script


@pytest.mark.parametrize("name", ONE_POLL)
def test_discovery_and_status_scripts_give_what_discover_gives(name, document, cli, roomy):
    require_binary("node")
    text = document(name)
    rule = connection_rule(name)
    emitted = [{k: v for k, v in row.items() if k != "{#CONNECTION.REMOTE}"}
               for row in json.loads(cli("discover", config_path=roomy).stdout)]
    # But for its status: a connection whose queues answer "not found" is REMOVED in the document.
    removed = [c["name"] for c in json.loads(text)["connections"] if c["status"] == "REMOVED"]
    assert removed == ["Gone"]
    assert discovered(rule, text) == [{**row, "{#CONNECTION.STATUS}": "REMOVED"} if row["{#CONNECTION}"] in removed
                                      else row for row in emitted]
    # Queue numbers do not reach discovery: an unchanged connection list is discarded whatever the queues say.
    doc = json.loads(text)
    doc["connections"][0]["sync_requests"] += 100
    assert preprocess(rule, json.dumps(doc)) == preprocess(rule, text)
    (status,) = [p for p in prototypes(name) if p.findtext("key").startswith("exalate.status[")]
    for reported in [*STATUS_CODES, "SOMETHING_NEW"]:
        doc["connections"][0]["status"] = reported
        got = value_of(status, json.dumps(doc), {"{#CONNECTION.KEY}": doc["connections"][0]["key"]})
        assert got == str(STATUS_CODES.get(reported, OTHER_STATUS)), reported


def test_the_generator_outside_a_checkout_says_what_to_use(tmp_path):
    ran = run_process([sys.executable, str(ROOT / "tools" / "generate.py"), str(tmp_path)])
    assert ran.code == 1 and "Traceback" not in ran.stderr
    assert "not a checkout" in ran.stderr and "agent userparameters" in ran.stderr
    assert list(tmp_path.iterdir()) == [], "nothing written"


# --- stalled queues and why syncs fail (the one-poll templates) -------------------------------------------

IN_FLIGHT = {"sync_requests": "Syncs to send", "blob_requests": "Attachments to send",
             "sync_responses": "Sync answers to process", "blob_responses": "Attachment answers to process"}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ONE_POLL)
def test_each_queue_of_work_in_flight_has_a_stuck_problem(name, fmt):
    found = {t.findtext("name"): t for t in triggers(name, fmt)}
    period = '{$EXALATE.STUCK.PERIOD:"{#CONNECTION}"}'
    for field, queue in IN_FLIGHT.items():
        oldest = f"/{name}/exalate.{field}_oldest[{{$EXALATE.NODE}},{{#CONNECTION.KEY}}]"
        size = f"/{name}/exalate.{field}[{{$EXALATE.NODE}},{{#CONNECTION.KEY}}]"
        stuck = found[f'Exalate: Connection "{{#CONNECTION}}": {queue} are stuck']
        # The head has not changed (the item stores only changes) while the queue never emptied.
        status = f"/{name}/exalate.status[{{$EXALATE.NODE}},{{#CONNECTION.KEY}}]"
        assert stuck.findtext("expression") == (f"nodata({oldest},{period})=1 and last({oldest})>0 and "
                                                f"min({size},{period})>0 and last({status})<>6")
        assert stuck.findtext("opdata") == "Waiting: {ITEM.LASTVALUE3}, oldest event: {ITEM.LASTVALUE1}"
        assert stuck.findtext("priority") == "AVERAGE" and stuck.find("manual_close") is None
        (item,) = [p for p in prototypes(name, fmt) if p.findtext("key") == oldest.split("/")[2]]
        steps = [(s.findtext("type"), s.findtext("parameters/parameter"), s.findtext("error_handler_params"))
                 for s in item.findall("preprocessing/step")]
        # 0 when the queue is empty, unread or its connection unlisted: never unsupported (see
        # test_the_heads_and_newest_failures_come_back_after_an_error), and no problem without a head.
        unread = json.dumps({"unread": "the node's connection list could not be read, or no longer lists this "
                                       "connection"})
        assert steps == [("JSONPATH", "$.connections[?(@.key=='{#CONNECTION.KEY}')].first()", unread),
                         ("JSONPATH", f"$.{field}_oldest", "0"), ("DISCARD_UNCHANGED", "", None)]
    assert not [n for n in found if "stuck" in n and ("error" in n.lower() or "fail" in n.lower())]
    (override,) = connection_rule(name, fmt).findall("overrides/override")
    assert [o.findtext("value") for o in override.findall("operations/operation")] == ["backlog", "stuck"]


def test_the_per_check_template_has_no_stuck_problem_and_no_newest_failure():
    names = [t.findtext("name") for t in triggers(PER_CHECK_TEMPLATE)]
    assert not [n for n in names if "stuck" in n]
    assert len(rules(PER_CHECK_TEMPLATE)) == 1
    assert not [p for p in prototypes(PER_CHECK_TEMPLATE) if "oldest" in p.findtext("key")
                or "last_" in p.findtext("key")]


@pytest.mark.parametrize("name", ONE_POLL)
def test_the_failed_syncs_problems_carry_the_newest_failure(name):
    found = {t.findtext("name"): t for t in triggers(name)}
    for what, field in (("syncs", "last_error"), ("attachments", "last_blob_error")):
        failed = found[f'Exalate: Connection "{{#CONNECTION}}": Failed {what}']
        newest = f"/{name}/exalate.{field}[{{$EXALATE.NODE}},{{#CONNECTION.KEY}}]"
        status = f"/{name}/exalate.status[{{$EXALATE.NODE}},{{#CONNECTION.KEY}}]"
        assert failed.findtext("expression").endswith(f" and length(last({newest}))>=0 and last({status})<>6")
        assert failed.findtext("event_name").endswith("): {ITEM.LASTVALUE2}")
        assert failed.findtext("opdata") == "Failed: {ITEM.LASTVALUE1}"
        (item,) = [p for p in prototypes(name) if p.findtext("key") == newest.split("/")[2]]
        assert item.findtext("value_type") == "TEXT" and item.findtext("history") == "30d"
        assert item.findall("preprocessing/step")[-1].findtext("type") == "DISCARD_UNCHANGED"


@pytest.mark.parametrize("name", ONE_POLL)
def test_the_newest_failure_reads_issue_reason_and_message_whatever_is_missing(name):
    (item,) = [p for p in prototypes(name) if p.findtext("key").startswith("exalate.last_error[")]
    script = item.findall("preprocessing/step")[-2].findtext("parameters/parameter")
    cases = [({"issue": "AC-113", "reason": "NO_ISSUE_TO_CONNECT_TO", "message": "Could not connect"},
              "AC-113 NO_ISSUE_TO_CONNECT_TO: Could not connect"),
             ({"issue": None, "reason": "SCRIPT_ERROR", "message": "m"}, "SCRIPT_ERROR: m"),
             ({"issue": "AC-1", "reason": None, "message": None}, "AC-1"),
             ({"issue": None, "reason": None, "message": "only a message"}, "only a message"),
             ({"id": 3, "issue": None, "reason": None, "message": None}, "(no details)"),
             (None, "none")]
    for failure, text in cases:
        connection = {"name": "x"} if failure is None else {"name": "x", "last_error": failure}
        assert javascript(script, json.dumps(connection)) == text, failure
    # A queue that could not be read: a value all the same, which says so (see the test below).
    unread = {"name": "x", "failures": {"error_responses": "HTTP 500 from the node"}}
    assert javascript(script, json.dumps(unread)) == "unknown: HTTP 500 from the node"
    assert javascript(script, json.dumps({"unread": "no list"})) == "unknown: no list"


@pytest.mark.parametrize("name", ONE_POLL)
def test_the_heads_and_newest_failures_come_back_after_an_error(name, document):
    """Items that store only changes: each poll gives a value, an unreadable queue one that differs from a read
    one, so that the same value after an error is a change again and never leaves the item unsupported."""
    doc = json.loads(document(name))
    macros = {"{#CONNECTION.KEY}": "AllContent"}
    kept = [p for p in prototypes(name) if p.findall("preprocessing/step")[-1].findtext("type") == "DISCARD_UNCHANGED"]
    assert len(kept) == 6
    healthy = {p.findtext("key"): value_of(p, json.dumps(doc), macros) for p in kept}
    assert all(not v.startswith("unsupported") and v not in ("0", "none") for v in healthy.values()), healthy
    broken = copy.deepcopy(doc)
    entry = broken["connections"][0]
    entry["failures"] = {f: "HTTP 500 from the node" for f in QUEUE_FIELDS}
    for field in list(entry):
        if field.startswith("last_") or field.endswith("_oldest"):
            del entry[field]
    for proto in kept:
        got = value_of(proto, json.dumps(broken), macros)
        assert not got.startswith("unsupported") and got != healthy[proto.findtext("key")], (proto.findtext("key"), got)


@pytest.mark.parametrize("name", ONE_POLL)
def test_failure_reasons_are_discovered_and_counted(name, sim, roomy):
    sim.simulator.update(connections=[
        {"name": "ADO <> Jira Prod", "queues": {"error-responses": 5, "blob-error-responses": 2},
         "error_reasons": ["NO_ISSUE_TO_CONNECT_TO", "SCRIPT_ERROR", "NO_ISSUE_TO_CONNECT_TO"],
         "blob_error_reasons": ["CHECKSUM_MISMATCH", "it's (odd) ~*!"]},
        {"name": "Quiet", "queues": {"sync-requests": 1}}])
    text = run_cli("--config", roomy, "collect").stdout
    rule = reason_rule(name)
    rows = discovered(rule, text)
    ado = key_form("ADO <> Jira Prod")
    assert [(r["{#CONNECTION}"], r["{#CONNECTION.KEY}"], r["{#KIND}"], r["{#REASON}"], r["{#REASON.KEY}"])
            for r in rows] == [
        ("ADO <> Jira Prod", ado, "sync", "NO_ISSUE_TO_CONNECT_TO", "NO_ISSUE_TO_CONNECT_TO"),
        ("ADO <> Jira Prod", ado, "sync", "SCRIPT_ERROR", "SCRIPT_ERROR"),
        ("ADO <> Jira Prod", ado, "attachment", "CHECKSUM_MISMATCH", "CHECKSUM_MISMATCH"),
        ("ADO <> Jira Prod", ado, "attachment", "it's (odd) ~*!", "it%27s%20%28odd%29%20%7E%2A%21")]
    (proto,) = rule.findall("item_prototypes/item_prototype")
    counts = [value_of(proto, text, row) for row in rows]
    assert counts == ["3", "2", "1", "1"]
    # The key takes the reason's key form: Zabbix's key syntax holds it whatever the node wrote.
    assert all(re.fullmatch(r"[A-Za-z0-9_.%-]+", row["{#REASON.KEY}"]) for row in rows)
    # A reason that is gone counts 0 (its item lives on until the discovery's lifetime ends).
    assert value_of(proto, text, {**rows[0], "{#REASON.KEY}": "GONE_REASON"}) == "0"
    # An unreadable queue: the reason items of that kind say why.
    doc = json.loads(text)
    doc["connections"][0]["failures"] = {"error_responses": "HTTP 500 from the node"}
    assert value_of(proto, json.dumps(doc), rows[0]) == "unsupported: HTTP 500 from the node"


def descriptions(root: ET.Element):
    """(what, description) of every entity that has one: the template, macros, items, prototypes, triggers, rules."""
    for el in root.iter():
        text = el.findtext("description")
        if text:
            yield el.findtext("name") or el.findtext("macro") or el.findtext("key") or el.tag, text


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_description_is_self_contained(name, fmt):
    """What to do is in the description itself: no macro Zabbix would expand where its name is meant, no path to a
    file of this repository (an operator in the frontend cannot open it)."""
    found = list(descriptions(XML[name, fmt]))
    assert len(found) > 30
    for what, text in found:
        assert not misplaced_macros(text), (what, misplaced_macros(text))
        assert not re.search(r"\b(docs|templates)/|\.md\b", text), (what, text)
    # The rule reads a macro as a name everywhere else, the context form included.
    assert misplaced_macros('set {$EXALATE.DEACTIVATED.CONTROL:"{#CONNECTION}"} to 0, see {$EXALATE.X}') == [
        '{$EXALATE.DEACTIVATED.CONTROL:"{#CONNECTION}"}', "{$EXALATE.X}"]
    assert misplaced_macros("failed for {$EXALATE.DOWN.PERIOD}: run zabbix-exalate --node {$EXALATE.NODE}") == []
    assert macro_names("the macro EXALATE.DEACTIVATED.CONTROL, not {$EXALATE.NODE}.") == ["EXALATE.DEACTIVATED.CONTROL"]


@pytest.mark.parametrize("name", ONE_POLL)
def test_a_value_whose_reason_was_compacted_away_says_where_to_look(name, document):
    """collect's form 2 of compacting leaves a connection's reasons out ("unread": "see compacted"): each of its
    values says so instead of Zabbix's "no data matches"."""
    doc = json.loads(document(name))
    gone = next(c for c in doc["connections"] if c["name"] == "Gone")
    del gone["failures"]
    gone["unread"] = "see compacted"
    values = {base(p.findtext("key")): value_of(p, json.dumps(doc), {"{#CONNECTION.KEY}": "Gone"})
              for p in prototypes(name)}
    for field in QUEUE_FIELDS:
        assert values[f"exalate.{field}"] == (
            "unsupported: not read; its reason was left out of the collected document to fit the agent's 512 KB: "
            "see its \"compacted\" field, or run zabbix-exalate status"), values[f"exalate.{field}"]
    assert values["exalate.status"] == "6"  # REMOVED stays: a status is never compacted
