"""Rewrites the generated files of a checkout from metrics.py: the template exports, the UserParameter file and
the reference tables of templates/README.md and docs/item-keys.md. Run from a checkout: python tools/generate.py"""
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's package, whatever is installed

from zabbix_exalate.metrics import METRICS  # noqa: E402
from zabbix_exalate.zabbix.content import MACROS, template_tree  # noqa: E402
from zabbix_exalate.zabbix.design import DESIGNS, FORMATS  # noqa: E402
from zabbix_exalate.zabbix.export import template_xml  # noqa: E402
from zabbix_exalate.zabbix.userparameters import userparameter_conf, userparameters  # noqa: E402

# Where the generated files live, relative to the repository root.
USERPARAMETER_FILE = "userparameters/userparameter_exalate.conf"
README_FILE = "templates/README.md"
KEYS_DOC = "docs/item-keys.md"

# --- reference tables for templates/README.md and docs/item-keys.md ------------------------------

TYPES = {None: "Zabbix agent", "DEPENDENT": "Dependent item", "TRAP": "Zabbix trapper", "SCRIPT": "Script"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Tuple[str, ...], rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _how(entity: dict) -> str:
    """Where a value comes from: the item type, and for a dependent item the JSONPath that picks it."""
    kind = TYPES[entity.get("type")]
    paths = [s["parameters"][0] for s in entity.get("preprocessing", []) if s["type"] == "JSONPATH"]
    where = " of its connection" if len(paths) > 1 else ""
    return kind + (f": `{paths[-1]}`{where}" if paths else "")


def _walk_triggers(tree: dict) -> List[Tuple[str, dict]]:
    found = [("", t) for i in tree["items"] for t in i.get("triggers", [])]
    prototypes = [p for rule in tree["discovery_rules"] for p in rule["item_prototypes"]]
    found += [("yes", t) for i in prototypes for t in i.get("trigger_prototypes", [])]
    return found


def tables() -> Dict[str, str]:
    """Every generated table, by the name its block carries: "macros:agent", ..., "keys"."""
    found = {"keys": _table(("Key", "Command the agent runs"),
                            ((f"`{k}[*]`", f"`{c}`") for k, c in userparameters()))}
    found["vocabulary"] = _table(("Name", "Command", "Item key", "Column in `status`"), (
        (m.name, f"`{m.command}`", f"`{m.key}`", " / ".join(m.heading) if m.per_connection else m.command)
        for m in METRICS))
    for d in DESIGNS:
        tree = template_tree(d.name)["templates"][0]
        rules = tree["discovery_rules"]
        # Every macro of either export, in the order of MACROS, with the 6.0 text where both have one (it says
        # what 6.0 and 7.0 each need); the 7.0 export's own text is in its file.
        by_format = {f: {m["macro"]: m for m in template_tree(d.name, f)["templates"][0]["macros"]} for f in FORMATS}
        every = {m: found_in[m] for found_in in reversed(by_format.values()) for m in found_in}
        found[f"macros:{d.slug}"] = _table(("Macro", "Default", "Description", "In the exports"), (
            (f"`{m}`", f"`{every[m]['value']}`", next(by_format[f][m] for f in FORMATS if m in by_format[f])[
                "description"], ", ".join(f for f in FORMATS if m in by_format[f]))
            for m, _, _ in MACROS if m in every))
        found[f"discovery:{d.slug}"] = _table(("Name", "Key", "Type", "Description"), [
            (rule["name"], f"`{rule['key']}`", TYPES[rule.get("type")], rule["description"]) for rule in rules])
        found[f"items:{d.slug}"] = _table(("Name", "Key", "Type", "Description"), (
            (i["name"], f"`{i['key']}`", _how(i), i["description"])
            for i in tree["items"] + [p for rule in rules for p in rule["item_prototypes"]]))
        found[f"triggers:{d.slug}"] = _table(("Name", "Expression", "Severity", "Per connection", "Depends on"), (
            (t.get("event_name") or t["name"], f"`{t['expression']}`", t["priority"].title(), proto,
             "; ".join(dep["name"] for dep in t.get("dependencies", []))) for proto, t in _walk_triggers(tree)))
    return found


# A block may be empty (a new one, or one a broken generator emptied): it is filled all the same.
BLOCK = re.compile(r"(<!-- generated: ([\w:]+) -->\n).*?(<!-- end generated -->)", re.S)


def fill(text: str) -> str:
    """Replace every generated block of a Markdown file with the current table."""
    current = tables()
    return BLOCK.sub(lambda m: m.group(1) + current[m.group(2)] + "\n" + m.group(3), text)


def generated_files(root: Path) -> Dict[Path, str]:
    """Every file this module writes, with the content it should have."""
    files = {root / d.path(fmt): template_xml(d.name, fmt) for fmt in FORMATS for d in DESIGNS}
    files.update({root / USERPARAMETER_FILE: userparameter_conf(),
                  root / README_FILE: fill((root / README_FILE).read_text(encoding="utf-8")),
                  root / KEYS_DOC: fill((root / KEYS_DOC).read_text(encoding="utf-8"))})
    return files


def main(argv: Optional[List[str]] = None) -> None:
    """Rewrite the generated files of the repository (default: the one this package sits in)."""
    root = Path((argv or sys.argv[1:] or [Path(__file__).resolve().parent.parent])[0])
    if not (root / README_FILE).is_file():
        # An installed package has no repository around it: say what to use instead of a traceback.
        sys.exit(f"{root} is not a checkout of zabbix-exalate (no {README_FILE}): this rewrites a checkout's "
                 f"generated files. An installed package gives them with 'zabbix-exalate agent userparameters' "
                 f"and 'zabbix-exalate zabbix import-template'.")
    for path, content in generated_files(root).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")


if __name__ == "__main__":
    main()

