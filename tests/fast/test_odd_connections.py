"""Issue 15, class 7 and the names of class 9: connections listed under one name twice, ids beyond 2^53, names
too long for what Zabbix shows or for memory. Each connection gets its own key and a name Zabbix can show, the
same at every poll; every check reaches the connection by that key; the templates' scripts agree, in Node.js and
in Zabbix's own engine."""
import json
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers import SLACK, assert_contract, config_file, run_cli
from hostile_server import Answer, HostileServer
from test_template import connection_rule, discovered, javascript, reason_rule
from zabbix_exalate.exalate.names import (CUT, MAX_NAME, MAX_NAMES, ROOM, SHOWN, is_tagged_key, key_form,
                                          listed_connections, shown)
from zabbix_exalate.zabbix.design import FORMATS, TEMPLATE_NAMES, AGENT_TEMPLATE, HTTP_TEMPLATE, TRAPPER_TEMPLATE
from zabbix_exalate.zabbix.export import template_xml

ONE_POLL = (AGENT_TEMPLATE, TRAPPER_TEMPLATE, HTTP_TEMPLATE)
AGENT_REFUSES = set("\\'\"`*?[]{}~$!&;()<>|#@\n,")
BIG_ID = 2 ** 53 + 1          # a double holds 2^53 + 1 as 2^53
LONG = "Long " + "L" * 10235  # 10 KB: whole in collect's document, cut where Zabbix shows it
TAG_LIKE = "Billing (0123456789ab)"  # reads like a shown name of a tagged key

# Listed by the node: the same name twice (the first listed has the higher id), a huge id, a 10 KB name.
ODD = [{"name": "Twin", "id": BIG_ID, "status": "ACTIVE", "queues": {"sync-requests": 3}},
       {"name": "Twin", "id": 7, "status": "ERROR", "queues": {"sync-requests": 4}},
       {"name": LONG, "id": 8, "status": "ACTIVE", "queues": {"sync-requests": 11}},
       {"name": TAG_LIKE, "id": 9, "status": "ACTIVE", "queues": {"sync-requests": 12}},
       {"name": "AllContent", "id": 10, "status": "ACTIVE", "queues": {"sync-requests": 13}}]


@pytest.fixture
def odd(sim, write_config):
    sim.simulator.update(connections=ODD)
    return write_config(timeout="20")


def discover(config: str) -> list:
    ran = run_cli("--config", config, "discover")
    assert ran.code == 0, ran
    return json.loads(ran.stdout)


# -- what discovery hands out -------------------------------------------------------------------------------

def test_each_odd_connection_gets_its_own_key_and_name_and_every_check_reaches_it(odd):
    rows = discover(odd)
    keys = [r["{#CONNECTION.KEY}"] for r in rows]
    names = [r["{#CONNECTION}"] for r in rows]
    assert len(set(keys)) == len(set(names)) == len(ODD), rows
    assert [r["{#CONNECTION.ID}"] for r in rows] == [str(c["id"]) for c in ODD]  # every digit of 2^53 + 1
    # The Twin with the lowest id keeps the plain key; the other is set apart by a tag, as is the name that reads
    # like a tagged one; the 10 KB name is shown cut, with its tag.
    assert keys[1] == "Twin" and names[1] == "Twin"
    assert is_tagged_key(keys[0]) and names[0] == f"Twin ({keys[0].split('+')[1]})"
    assert is_tagged_key(keys[3]) and names[3] == f"{TAG_LIKE} ({keys[3].split('+')[1]})"
    assert names[2] == LONG[:ROOM] + CUT + f" ({keys[2].split('+')[1]})" and len(names[2]) <= SHOWN
    assert keys[4] == "AllContent" and names[4] == "AllContent"
    for key in keys:
        assert key.isascii() and not set(key) & AGENT_REFUSES and len(key) < 100, key
    # The agent runs the check with the key discovery gave: the node's API names a connection by its name, so
    # both Twins read the one queue of "Twin" (the simulator's first).
    counts = [run_cli("--config", odd, "sync-requests", "--", key).stdout for key in keys]
    assert counts == ["3\n", "3\n", "11\n", "12\n", "13\n"]


def test_status_shows_the_connection_a_tagged_key_names(odd):
    keys = [r["{#CONNECTION.KEY}"] for r in discover(odd)]
    ran = run_cli("--config", odd, "status", "--connection", keys[2])
    assert ran.code == 0 and LONG[:60] in ran.stdout, ran
    ran = run_cli("--config", odd, "status", "--connection", "Twin+000000000000")
    assert_contract(ran, 5, "no connection with the key 'Twin+000000000000'")


def test_discovery_is_the_same_at_every_poll_whatever_the_order_of_the_list(odd, sim):
    first = discover(odd)
    sim.simulator.update(connections=ODD[::-1])
    assert sorted(discover(odd), key=lambda r: r["{#CONNECTION.ID}"]) == \
        sorted(first, key=lambda r: r["{#CONNECTION.ID}"])


def test_the_templates_scripts_give_what_discover_gives_in_node_and_in_zabbix_s_engine(odd):
    document = run_cli("--config", odd, "collect").stdout
    assert json.loads(document)["connections"][2]["name"] == LONG  # the document keeps the whole name
    want = [{k: v for k, v in row.items() if k != "{#CONNECTION.REMOTE}"} for row in discover(odd)]
    for name in ONE_POLL:
        rule = connection_rule(name)
        assert discovered(rule, document) == want
        rows = discovered(reason_rule(name), json.dumps({"connections": [
            {**c, "error_reasons": {"X": 1}} for c in json.loads(document)["connections"]]}))
        assert [r["{#CONNECTION}"] for r in rows] == [r["{#CONNECTION}"] for r in want]
        if shutil.which("zabbix_js"):  # Debian's zabbix-server package: Duktape, as the server runs it
            script = rule.find("preprocessing/step[type='JAVASCRIPT']/parameters/parameter").text
            assert json.loads(zabbix_js(script, document)) == json.loads(javascript(script, document))


def zabbix_js(script: str, value: str) -> str:
    """A preprocessing script run by zabbix_js: Zabbix's own engine, reading the script and the value from files."""
    with tempfile.NamedTemporaryFile("w", suffix=".js") as code, tempfile.NamedTemporaryFile("w") as data:
        code.write(script)
        data.write(value)
        code.flush()
        data.flush()
        ran = subprocess.run(["zabbix_js", "-s", code.name, "-i", data.name], capture_output=True, text=True,
                             timeout=30)
    assert ran.returncode == 0, ran.stderr
    return ran.stdout


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(
    st.one_of(st.sampled_from(["Twin", "a" * (SHOWN + 1), "é" * ROOM, TAG_LIKE, "..", "%41", "A"]),
              st.text(max_size=8), st.text(alphabet="ab\U0001F600 ()", min_size=ROOM - 2, max_size=SHOWN + 3)),
    st.one_of(st.none(), st.integers(-2 ** 70, 2 ** 70), st.text(max_size=3))), max_size=12),
    st.randoms())
def test_keys_and_shown_names_are_unique_safe_short_and_stable(listing, random):
    found = [{"name": n, "id": i} for n, i in listing]
    listed = listed_connections(found)
    keys = [c["key"] for c in listed]
    names = [shown(c["name"], c["key"]) for c in listed]
    assert len(set(keys)) == len(keys) and len(set(names)) == len(names), listed
    # Only the same name listed again with the same id is left out: it is the same connection.
    assert {(c["name"], repr(c["id"])) for c in listed} == {(n, repr(i)) for n, i in listing}
    for c, key, name in zip(listed, keys, names):
        assert key.isascii() and not set(key) & AGENT_REFUSES and len(key) <= SHOWN * 12, key
        assert len(name) <= SHOWN, name
        if not is_tagged_key(key):
            assert (key, name) == (key_form(c["name"]), c["name"])
    # Stable: whatever order the node lists them in, each connection keeps its key (and so its history).
    shuffled = list(found)
    random.shuffle(shuffled)
    again = {(c["name"], repr(c["id"])): c["key"] for c in listed_connections(shuffled)}
    assert again == {(c["name"], repr(c["id"])): c["key"] for c in listed}


# -- what Zabbix holds -------------------------------------------------------------------------------------

# Zabbix 6.0 and 7.0 (database schema and server): names of items 255 characters, of graphs 128, of triggers 255,
# event names 2048, operational data 255, tag values 255, keys 2048, a user macro with its context 255.
LIMITS = {"item_prototype/name": 255, "item_prototype/key": 2048, "trigger_prototype/name": 255,
          "trigger_prototype/event_name": 2048, "trigger_prototype/opdata": 255, "graph_prototype/name": 128,
          "tag/value": 255}
REASON = "R" * 64        # jsonstream.MAX_REASON_LENGTH
MACRO_WITH_CONTEXT = re.compile(r'\{\$[A-Z0-9_.]+:"(?:[^"\\]|\\.)*"\}')


def worst(text: str, quote: str) -> str:
    """text with every LLD macro as long as discovery makes it (the name of quote characters, escaped in a
    context as Zabbix escapes it)."""
    longest_key = key_form("\U0001F600" * SHOWN)
    text = text.replace("{#CONNECTION.KEY}", longest_key).replace("{#REASON.KEY}", key_form("\U0001F600" * 64))
    text = re.sub(r'(\{\$[A-Z0-9_.]+:")\{#CONNECTION\}("\})', lambda m: m[1] + (quote * SHOWN).replace(
        '"', '\\"') + m[2], text)
    return text.replace("{#CONNECTION}", quote * SHOWN).replace("{#REASON}", REASON).replace(
        "{#KIND.NAME}", "attachment syncs").replace("{#KIND}", "attachment")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_place_zabbix_shows_a_connection_fits_its_limits(name, fmt):
    root = ET.fromstring(template_xml(name, fmt))
    for rule in root.iter("discovery_rule"):
        for path, limit in LIMITS.items():
            parent, _, field = path.rpartition("/")
            for entity in rule.iter(parent):
                text = entity.findtext(field) or ""
                for quote in ("W", '"'):
                    assert len(worst(text, quote)) <= limit, (path, worst(text, quote))
        for entity in rule.iter("trigger_prototype"):
            for quote in ("W", '"'):
                expression = worst(entity.findtext("expression"), quote)
                for macro in MACRO_WITH_CONTEXT.findall(expression):
                    assert len(macro) <= 255, macro  # a host can override it
                # Zabbix stores an item reference as its function's id: {12345678901234567890}.
                stored = re.sub(r"/[^/]+/[a-z_.]+\[[^\]]*\]", "{12345678901234567890}", expression)
                assert len(stored) <= 2048, stored


# -- names too long to hold ----------------------------------------------------------------------------------

def names_body(count: int, length: int):
    """{"total", "results"} of count connections whose names are length characters, streamed."""
    def chunks(request=None):
        yield b'{"total":%d,"results":[' % count
        for i in range(count):
            yield (b"," if i else b"") + b'{"id":%d,"status":"ACTIVE","name":"%06d' % (i, i) + \
                b"n" * (length - 6) + b'"}'
        yield b"]}"
    return chunks


@pytest.fixture
def named(tmp_path):
    """named(count, length) -> a configuration for a node listing count connections of names that long."""
    with HostileServer() as node:
        def setup(count: int, length: int, timeout: str = "2.5") -> str:
            node.route("GET", "*/4.0/connections", Answer(200, names_body(count, length)))
            node.route("GET", "*/4.0/cmonitor", Answer(200, b'{"numErrors":0}'))
            node.route("GET", "*/4.0/sync*", Answer(200, b'{"total":0}'))
            node.route("GET", "*/2.4/relations/*", Answer(200, b"[]"))
            cache = tmp_path / "cache"
            cache.mkdir(mode=0o700, exist_ok=True)
            return config_file(tmp_path / "c.conf", node.url, user="u", password="p", token_cache=str(cache),
                               timeout=timeout)
        yield setup


def bounded(ran, timeout: float) -> None:
    assert ran.peak_mb < 100, f"peak memory {ran.peak_mb:.0f} MB: {ran}"
    assert ran.elapsed <= timeout + SLACK, f"{ran.elapsed:.2f} s: {ran}"


def test_twelve_names_of_8_mb_are_listed_cut_in_bounded_memory(named):
    huge = (8 << 20) - 4096  # just below the longest value the parser takes (transport.MAX_TOKEN)
    config = named(12, huge, timeout="2.5")
    ran = run_cli("--config", config, "discover", memory=True)  # at the default timeout: in time, or it says so
    bounded(ran, 2.5)
    assert ran.code in (0, 7), ran
    config = named(12, huge, timeout="20")  # a busy machine may need more than 2.5 s for 100 MB
    ran = run_cli("--config", config, "collect", memory=True)
    bounded(ran, 20)
    connections = json.loads(ran.stdout)["connections"]
    assert [c["name"] for c in connections] == [f"{i:06d}" + "n" * (ROOM - 6) + CUT for i in range(12)]
    assert len({c["key"] for c in connections}) == 12
    why = f"name is {huge} characters long, more than the {MAX_NAME} zabbix-exalate keeps"
    assert all(why in reason for c in connections for reason in c["failures"].values()), connections[0]
    ran = run_cli("--config", config, "sync-requests", "--", connections[5]["key"])
    assert_contract(ran, 9, why, "give it a shorter name in Exalate")


def test_ten_thousand_names_of_10_kb_are_refused_in_bounded_memory(named):
    config = named(10_000, 10 << 10)
    why = f"whose names add up to more than {MAX_NAMES} characters"
    ran = run_cli("--config", config, "discover", memory=True)
    bounded(ran, 2.5)
    assert_contract(ran, 9, why)
    ran = run_cli("--config", config, "collect", memory=True)
    bounded(ran, 2.5)
    document = json.loads(ran.stdout)
    assert "connections" not in document and why in document["failures"]["connections"], document
