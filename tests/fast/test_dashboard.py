"""The templates' dashboard: what each Zabbix version's template dashboards allow, items named by key, a grid that
fits, and the node's state, the connections' problems and backlogs on the first screen."""
import xml.etree.ElementTree as ET
from typing import Dict, List

import pytest

from zabbix_exalate.metrics import CONNECTION_STATUSES, PING_KEY
from zabbix_exalate.zabbix.content import GRID_COLUMNS, STATUS_COLOURS, template_tree
from zabbix_exalate.zabbix.design import FORMATS, TEMPLATE_NAMES, BY_NAME, node_key
from zabbix_exalate.zabbix.export import template_xml

# What a template dashboard may hold: 6.0 lists six widget types (CWidgetConfig::isWidgetTypeSupportedInContext);
# 7.0 any widget (ZBXNEXT-8086), of which these are the ones we use.
ALLOWED = {"6.0": {"CLOCK", "GRAPH_CLASSIC", "GRAPH_PROTOTYPE", "ITEM", "PLAIN_TEXT", "URL"},
           "7.0": {"item", "graphprototype", "problems", "honeycomb"}}
CASES = [(name, fmt) for name in TEMPLATE_NAMES for fmt in FORMATS]


def widgets(name: str, fmt: str) -> List[ET.Element]:
    root = ET.fromstring(template_xml(name, fmt))
    (dashboard,) = root.findall("templates/template/dashboards/dashboard")
    return dashboard.findall("pages/page/widgets/widget")


def box(w: ET.Element) -> tuple:
    return tuple(int(w.findtext(k)) for k in ("x", "y", "width", "height"))


def fields(w: ET.Element) -> Dict[str, ET.Element]:
    return {f.findtext("name"): f for f in w.findall("fields/field")}


@pytest.mark.parametrize("name, fmt", CASES)
def test_only_widgets_the_version_allows_on_a_template_dashboard(name, fmt):
    assert {w.findtext("type") for w in widgets(name, fmt)} <= ALLOWED[fmt]


@pytest.mark.parametrize("name, fmt", CASES)
def test_widgets_name_items_by_key_and_never_a_graph_by_name(name, fmt):
    """Item and trigger names change with the vocabulary; keys do not. A widget naming a missing key would import
    as an inaccessible widget."""
    tree = template_tree(name, fmt)["templates"][0]
    keys = {i["key"] for i in tree["items"]}
    prototypes = {p["key"] for rule in tree["discovery_rules"] for p in rule["item_prototypes"]}
    used = 0
    for w in widgets(name, fmt):
        for f in w.findall("fields/field"):
            assert f.findtext("type") not in ("GRAPH", "GRAPH_PROTOTYPE"), ET.tostring(f)
            if f.findtext("type") in ("ITEM", "ITEM_PROTOTYPE"):
                assert f.findtext("value/host") == name
                assert f.findtext("value/key") in (keys if f.findtext("type") == "ITEM" else prototypes)
                used += 1
    assert used >= 6


@pytest.mark.parametrize("name, fmt", CASES)
def test_the_widgets_fill_the_grid_without_overlapping(name, fmt):
    found = [box(w) for w in widgets(name, fmt)]
    assert max(x + width for x, _, width, _ in found) == GRID_COLUMNS[fmt]
    cells = set()
    for x, y, width, height in found:
        mine = {(column, row) for column in range(x, x + width) for row in range(y, y + height)}
        assert not mine & cells, (x, y, width, height)
        cells |= mine
    # 7.0 widget references: five characters, one per widget that has one.
    references = [f.findtext("value") for w in widgets(name, fmt) for f in w.findall("fields/field")
                  if f.findtext("name") == "reference"]
    assert len(references) == len(set(references)) and all(len(r) == 5 for r in references)


@pytest.mark.parametrize("name, fmt", CASES)
def test_the_node_s_state_comes_first_and_7_0_colours_it(name, fmt):
    first = min(widgets(name, fmt), key=lambda w: (int(w.findtext("y")), int(w.findtext("x"))))
    assert first.findtext("type").lower() == "item"
    got = fields(first)
    assert got["itemid.0" if fmt == "7.0" else "itemid"].findtext("value/key") == node_key(PING_KEY)
    thresholds = {got[f"thresholds.{i}.threshold"].findtext("value"): got[f"thresholds.{i}.color"].findtext("value")
                  for i in range(2) if f"thresholds.{i}.threshold" in got}
    if fmt == "7.0":  # 0 (down) red, 1 (up) green
        assert thresholds == {"0": "E45959", "1": "59DB8F"}
    else:
        assert thresholds == {}  # 6.0's item value widget has no thresholds


@pytest.mark.parametrize("name, fmt", CASES)
def test_every_connection_s_backlog_and_failures_are_drawn(name, fmt):
    """A graph per connection for the items the connection's backlog and failed-syncs problems watch."""
    drawn = [fields(w)["itemid.0" if fmt == "7.0" else "itemid"].findtext("value/key")
             for w in widgets(name, fmt) if w.findtext("type").lower() in ("graph_prototype", "graphprototype")]
    assert [key.split("[")[0] for key in drawn] == ["exalate.sync_requests", "exalate.error_responses"]


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_7_0_lists_the_host_s_problems_and_colours_connections_by_status(name):
    found = {w.findtext("type"): w for w in widgets(name, "7.0")}
    got = fields(found["problems"])
    assert got["show_opdata"].findtext("value") == "1"  # operational data in a column of its own
    if not BY_NAME[name].one_poll:
        assert "honeycomb" not in found  # no status item per connection to colour
        return
    honeycomb = fields(found["honeycomb"])
    # The honeycomb's item tags select the status items, and nothing else of the template.
    tags = {}
    for i in range(2):
        tags[honeycomb[f"item_tags.{i}.tag"].findtext("value")] = (honeycomb[f"item_tags.{i}.operator"].findtext(
            "value"), honeycomb[f"item_tags.{i}.value"].findtext("value"))
    assert tags == {"component": ("1", "health"), "connection": ("4", "")}  # equals; exists
    tree = template_tree(name, "7.0")["templates"][0]
    every = tree["items"] + [p for rule in tree["discovery_rules"] for p in rule["item_prototypes"]]
    selected = [i["key"] for i in every if {"tag": "component", "value": "health"} in i["tags"]
                and any(t["tag"] == "connection" for t in i["tags"])]
    assert [key.split("[")[0] for key in selected] == ["exalate.status"]
    colours = {honeycomb[f"thresholds.{i}.threshold"].findtext("value"): honeycomb[f"thresholds.{i}.color"].findtext(
        "value") for i in range(len(STATUS_COLOURS))}
    codes = dict(CONNECTION_STATUSES)
    assert colours == {str(codes[status]): colour for status, colour in STATUS_COLOURS.items()}
    assert colours[str(codes["ERROR"])] == "E45959" and colours[str(codes["ACTIVE"])] == "59DB8F"
