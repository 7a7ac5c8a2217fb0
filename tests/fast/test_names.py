"""Odd connection names: discovery hands out a key-safe form, and every check takes either form."""
import json
import string

import pytest
from hypothesis import given, strategies as st

from zabbix_exalate.exalate.names import connection_name, key_form

# What the Zabbix agent refuses in a key parameter, plus the key's own separators.
AGENT_REFUSES = set("\\'\"`*?[]{}~$!&;()<>|#@\n") | {","}

ODD_NAMES = [
    "ADO <> Jira Prod",
    "ServiceNow/Incidents (EU)",
    "it's \"quoted\"",
    "[brackets] {braces}",
    "$HOME; rm -rf / | cat &",
    "Ünïcødé — 東京 ✓",
    "up/..ward",
    "...",
    "50% off",
    "100%25",
    "a,b",
    "tab\tand\nnewline",
    "~tilde`back`tick#hash@at!",
]


@pytest.fixture
def odd(sim):
    sim.simulator.update(connections=[{"name": n, "id": i, "queues": {"sync-requests": i + 1, "error-responses": 2}}
                                      for i, n in enumerate(ODD_NAMES)])
    return sim


def test_discovery_keys_are_safe_for_the_agent(cli, odd):
    rows = json.loads(cli("discover").stdout)
    assert [r["{#CONNECTION}"] for r in rows] == ODD_NAMES
    for row in rows:
        assert not set(row["{#CONNECTION.KEY}"]) & AGENT_REFUSES, row
        assert row["{#CONNECTION.KEY}"].isascii()


@pytest.mark.parametrize("index", range(len(ODD_NAMES)), ids=[repr(n) for n in ODD_NAMES])
def test_each_check_takes_the_key_form(cli, odd, index):
    assert cli("sync-requests", key_form(ODD_NAMES[index])).stdout == f"{index + 1}\n"


@pytest.mark.parametrize("index", range(len(ODD_NAMES)), ids=[repr(n) for n in ODD_NAMES])
def test_each_check_takes_the_exact_name(cli, odd, index):
    name = ODD_NAMES[index]
    if name == "100%25":
        # Documented limit: a name that reads as a key form is taken as one ("100%"), so such a
        # name must be given in its key form, as discovery hands it out.
        cli("sync-requests", name).assert_failed(5, "'100%' not found")
    else:
        assert cli("sync-requests", name).stdout == f"{index + 1}\n"


@pytest.mark.parametrize("name", ["..", ".", "%2E%2E", "../admin", "a/../../4.0/cmonitor", "./.",
                                  "x/../../relations/Other"])
def test_a_name_made_of_dots_is_refused_before_any_request(cli, odd, name):
    # Clients and servers (nginx, requests) resolve "..", even spelled %2E%2E, as navigation; a reverse
    # proxy that decodes %2F turns a name's "/../" into it too.
    sent = len(odd.simulator.requests)
    cli("sync-requests", name).assert_failed(3, "path navigation", "rename the connection")
    assert len(odd.simulator.requests) == sent


@pytest.mark.parametrize("name", ["x?limit=0#frag", "...", "a/b", "a/.../b"])
def test_a_name_never_leaves_its_path_segment(cli, odd, name):
    cli("sync-requests", name)
    raw = odd.simulator.requests[-1][1]
    segments = raw.split("?")[0].split("/")
    assert segments[:5] == ["", "rest", "issuehub", "2.4", "relations"]
    assert segments[6:] == ["syncevents", "syncrequests"], raw
    assert "?" not in raw and "#" not in raw


def test_unknown_odd_name_is_reported_printably(cli, odd):
    cli("sync-requests", "no\nsuch").assert_failed(5, "'no\\nsuch' not found")


@given(st.text(min_size=1))
def test_key_form_is_safe_and_reversible(name):
    key = key_form(name)
    assert set(key) <= set(string.ascii_letters + string.digits + "_.-%")
    assert key not in (".", "..")
    assert connection_name(key) == name


@pytest.mark.parametrize("name", ["AllContent", "Jira_prod-2.0"])
def test_plain_names_are_their_own_key_form(name):
    assert key_form(name) == name and connection_name(name) == name
