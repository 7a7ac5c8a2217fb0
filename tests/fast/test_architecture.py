"""The package's structural promises (issue 13), read from its source: no import cycle, click and printing only in
cli.py, a docstring opening every module, no block of lines written twice, and one reader of seconds."""
import ast
import re
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Set

import pytest

from helpers import config_file, free_ports, invoke

PACKAGE = Path(__file__).resolve().parents[2] / "zabbix_exalate"
CLI = "zabbix_exalate.cli"


# -- reading the package --------------------------------------------------------------------------

def modules(package: Path) -> Dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own, for its __init__.py)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = (package.name,) + path.relative_to(package).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_names(name: str, path: Path) -> Set[str]:
    """The absolute names path imports, anywhere in it (inside functions too), relative imports resolved; for
    `from X import Y` both X and X.Y (Y may be a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
                base = ".".join(filter(None, (base, node.module)))
            else:
                base = node.module
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(package: Path) -> Dict[str, Set[str]]:
    """module -> the modules of the package it imports."""
    known = modules(package)
    return {name: {n for n in imported_names(name, path) if n in known and n != name} for name, path in known.items()}


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """A cycle of the graph as [a, b, ..., a], or None."""
    state: Dict[str, str] = {}  # "open" while on the path, "done" once every way out of it is explored
    path: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def printing(path: Path) -> List[str]:
    """Where a module imports click, calls print() or touches sys.stdout/sys.stderr: "line: what"."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] == "click"]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module.split(".")[0] == "click":
                found.append(f"{node.lineno}: from {node.module} import")
            if node.module == "sys" and {a.name for a in node.names} & {"stdout", "stderr"}:
                found.append(f"{node.lineno}: from sys import stdout/stderr")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            found.append(f"{node.lineno}: print(")
        elif (isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr")
              and isinstance(node.value, ast.Name) and node.value.id == "sys"):
            found.append(f"{node.lineno}: sys.{node.attr}")
    return found


def docstring_problem(path: Path) -> Optional[str]:
    """Why the module does not open with a docstring whose summary (its first paragraph) is one sentence on one
    line; None when it does."""
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    if not doc:
        return "no docstring first"
    if "\n" in doc.split("\n\n")[0]:
        return f"its summary takes more than one line: {doc.splitlines()[0]!r}..."
    summary = " ".join(doc.split("\n\n")[0].split())
    if not summary.endswith(".") or re.search(r"[.!?] [A-Z]", summary):
        return f"its summary is not one sentence: {summary!r}"
    return None


BRACKETS = re.compile(r"^[\[\](){},;:]+$")
IMPORT = re.compile(r"^(import|from \S+ import) ")


def repeated_blocks(package: Path, size: int = 6) -> List[str]:
    """Blocks of size or more non-blank lines that appear twice letter for letter (whitespace normalised; import
    lines and lines of brackets alone left out), as "file:first-last = file:first-last"."""
    lines = []  # (normalised text, file, line number), module after module
    for path in modules(package).values():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            text = " ".join(line.split())
            if text and not BRACKETS.match(text) and not IMPORT.match(text):
                lines.append((text, path.relative_to(package.parent), number))
    seen = defaultdict(list)  # a window of size lines -> where each one starts
    for at in range(len(lines) - size + 1):
        window = lines[at:at + size]
        if len({file for _, file, _ in window}) == 1:
            seen[tuple(text for text, _, _ in window)].append(at)
    pairs = sorted((starts[0], other) for starts in seen.values() for other in starts[1:])
    found, run = [], None  # run: (first start, its twin's start, windows so far) of overlapping windows
    for first, twin in pairs + [(-1, -1)]:
        if run and (first, twin) == (run[0] + run[2], run[1] + run[2]):
            run = (run[0], run[1], run[2] + 1)
            continue
        if run:
            end = run[2] + size - 2  # the offset of the run's last line
            found.append(f"{lines[run[0]][1]}:{lines[run[0]][2]}-{lines[run[0] + end][2]} = "
                         f"{lines[run[1]][1]}:{lines[run[1]][2]}-{lines[run[1] + end][2]}")
        run = (first, twin, 1)
    return found


# -- the package keeps its promises ---------------------------------------------------------------

def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph(PACKAGE)
    # The reader sees relative imports inside functions too: cli.py imports the runtime only where it runs a check.
    assert "zabbix_exalate.runtime" in graph[CLI] and "zabbix_exalate.errors" in graph[CLI], graph[CLI]
    cycle = find_cycle(graph)
    assert cycle is None, "an import cycle: " + " -> ".join(cycle)


def test_only_the_cli_imports_click_and_prints():
    found = {name: printing(path) for name, path in modules(PACKAGE).items()}
    assert any("import click" in what for what in found.pop(CLI)), "cli.py no longer imports click: update this test"
    assert {name: where for name, where in found.items() if where} == {}


def test_every_module_opens_with_a_one_sentence_docstring_of_its_role():
    problems = {name: docstring_problem(path) for name, path in modules(PACKAGE).items()}
    assert {name: problem for name, problem in problems.items() if problem} == {}


def test_no_block_of_six_lines_is_written_twice():
    assert repeated_blocks(PACKAGE) == []


# -- the test's own readers find what they are meant to find --------------------------------------

def write_package(root: Path, files: Dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "pkg"


def test_the_readers_find_a_cycle_a_print_a_repeated_block_and_a_missing_docstring(tmp_path):
    block = "".join(f"    total = total + {n}\n" for n in range(6))
    package = write_package(tmp_path, {
        "pkg/__init__.py": '"""A package."""\n',
        "pkg/agent.py": '"""Agent."""\nfrom .sub import send\n\n\ndef f(total):\n' + block + "    print(total)\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/send.py": '"""Send. Two sentences."""\nimport sys\n\n\ndef g(total):\n    from .. import agent\n'
                           + block + "    sys.stderr.write('x')\n",
    })
    assert find_cycle(import_graph(package)) == ["pkg.agent", "pkg.sub.send", "pkg.agent"]
    assert printing(package / "agent.py") == ["12: print("]
    assert printing(package / "sub" / "send.py") == ["13: sys.stderr"]
    assert repeated_blocks(package) == ["pkg/agent.py:6-11 = pkg/sub/send.py:7-12"]
    assert docstring_problem(package / "agent.py") is None
    assert "not one sentence" in docstring_problem(package / "sub" / "send.py")
    assert docstring_problem(package / "sub" / "__init__.py") == "no docstring first"


# -- one reader of seconds: --timeout and the file's timeout take the same values ------------------

TIMEOUTS = ["0", "-0", "-1", "nan", "inf", "1e-9", "0.001", "2.5", " 2.5", "+5", "1e3", "3600", "3600.0001", "7200",
            "1e400", "abc", "2,5"]


@pytest.fixture(scope="module")
def unreachable():
    """A node url where nothing listens: a run that takes its timeout fails at once as unreachable (8)."""
    (port,) = free_ports()
    return f"http://127.0.0.1:{port}"


def accepted_on_the_command_line(value: str, url: str, tmp_path) -> bool:
    path = config_file(tmp_path / "option.conf", url, user="monitor", password="pa55-word", token_cache="off")
    ran = invoke("--config", path, "--timeout", value, "outgoing")
    assert ran.code in (2, 7, 8), (value, ran)  # refused as a usage error, or taken: a timeout, or nothing there
    return ran.code != 2


def accepted_in_the_file(value: str, url: str, tmp_path) -> bool:
    path = config_file(tmp_path / "file.conf", url, user="monitor", password="pa55-word", token_cache="off",
                       timeout=value)
    ran = invoke("--config", path, "outgoing")
    assert ran.code in (3, 7, 8), (value, ran)
    assert ran.code != 3 or "timeout" in ran.stderr, (value, ran)
    return ran.code != 3


def test_the_command_line_and_the_file_take_the_same_timeouts(unreachable, tmp_path):
    option = {v for v in TIMEOUTS if accepted_on_the_command_line(v, unreachable, tmp_path)}
    in_file = {v for v in TIMEOUTS if accepted_in_the_file(v, unreachable, tmp_path)}
    assert option == in_file, f"only --timeout takes {option - in_file}, only the file {in_file - option}"
    assert option == {"1e-9", "0.001", "2.5", " 2.5", "+5", "1e3", "3600"}
    assert "3600" in option and "7200" not in option
