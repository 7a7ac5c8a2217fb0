"""A template as a file Zabbix imports: its XML export, byte for byte what templates/<format>/ holds."""
import xml.etree.ElementTree as ET

from .content import template_tree
from .design import BY_NAME, DEFAULT_FORMAT, DEFAULT_TEMPLATE, TEMPLATE_NAMES

# In Zabbix's export format a list is a plural element holding one singular element per entry.
SINGULAR = {"groups": "group", "template_groups": "template_group", "templates": "template", "items": "item",
            "triggers": "trigger",
            "trigger_prototypes": "trigger_prototype", "item_prototypes": "item_prototype",
            "discovery_rules": "discovery_rule", "graph_prototypes": "graph_prototype", "graphs": "graph",
            "graph_items": "graph_item", "tags": "tag", "macros": "macro", "dependencies": "dependency",
            "conditions": "condition", "overrides": "override", "operations": "operation",
            "dashboards": "dashboard", "pages": "page", "widgets": "widget", "fields": "field",
            "valuemaps": "valuemap", "mappings": "mapping", "preprocessing": "step", "parameters": "parameter",
            "lld_macro_paths": "lld_macro_path"}


def _element(tag: str, value) -> ET.Element:
    node = ET.Element(tag)
    if isinstance(value, dict):
        node.extend(_element(k, v) for k, v in value.items())
    elif isinstance(value, list):
        node.extend(_element(SINGULAR[tag], v) for v in value)
    else:
        node.text = value
    return node


def template_xml(name: str = DEFAULT_TEMPLATE, fmt: str = DEFAULT_FORMAT) -> str:
    """One template as Zabbix XML of export format fmt, byte for byte what templates/<fmt>/ holds.

    Raises KeyError for an unknown name or format."""
    if name not in BY_NAME:
        raise KeyError(f"no bundled template {name!r}; there are: {', '.join(TEMPLATE_NAMES)}")
    root = _element("zabbix_export", template_tree(name, fmt))
    ET.indent(root, "    ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
