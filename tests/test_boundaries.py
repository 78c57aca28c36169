"""
The boundaries between exmta's packages, as docs/architecture.rst states
them: the page's import table (which package may import which) and its
promises (what a package never loads), read from the page itself, so the
page and the code cannot part.

Three checks: every import statement of exmta/ (inside functions too) is
one the table allows; following those imports from module to module, no
promise is broken; and a fresh Python process that imports every module of
a package loads none of the modules that package promises never to load.
"""

import ast
import json
import os
import re
import subprocess
import sys

import pytest

import exmta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(exmta.__file__)))
PACKAGE = os.path.join(ROOT, "exmta")
PAGE = os.path.join(ROOT, "docs", "architecture.rst")


def _block(name):
    """
    @return: the lines of the literal block between C{.. NAME begin} and
        C{.. NAME end} of the page, a continued row (more indented) joined
        to the one before.
    """
    with open(PAGE, encoding="utf-8") as handle:
        text = handle.read()
    match = re.search(rf"^\.\. {name} begin\n(.*?)^\.\. {name} end$", text, re.M | re.S)
    assert match, f"docs/architecture.rst has no '.. {name} begin' ... '.. {name} end' block"
    rows = []
    for line in match.group(1).splitlines():
        if not line.strip() or line.strip() == "::":
            continue
        if line.startswith(" " * 8) and rows:
            rows[-1] += " " + line.strip()
        else:
            rows.append(line.strip())
    return rows


def importRules():
    """
    @return: {unit: frozenset of what it may import}; a unit is a package
        or module of exmta, dotted below C{exmta}.
    """
    return {row.split()[0]: frozenset(row.split()[1:]) for row in _block("import rules")}


def promises():
    """
    @return: [(unit, frozenset of units it never loads)].
    """
    result = []
    for row in _block("boundaries"):
        subject, verb, rest = row.partition("never loads")
        assert verb, f"not a promise: {row!r}"
        result.append((subject.strip(), frozenset(rest.split())))
    return result


def _covers(entry, module):
    return module == f"exmta.{entry}" or module.startswith(f"exmta.{entry}.")


def unitOf(module, rules):
    """
    @return: the row of C{rules} C{module} (a dotted name) belongs to: the
        longest one naming it or a package holding it.
    """
    if module == "exmta":
        return "exmta"
    units = [unit for unit in rules if unit != "exmta" and _covers(unit, module)]
    return max(units, key=len) if units else None


def modules():
    """
    @return: {dotted name: path} of every module of exmta.
    """
    found = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts.pop()
                found[".".join(parts)] = path
    return found


def imports(path, known):
    """
    @return: the exmta modules C{path} imports, each with its line, at any
        depth (imports inside functions count).
    """
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # "from exmta.queue import dsn" imports the module exmta.queue.dsn.
            targets = [
                f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known
                else node.module
                for alias in node.names
            ]
        else:
            continue
        found += [
            (target, node.lineno) for target in dict.fromkeys(targets) if target.startswith("exmta.")
        ]
    return found


def importGraph():
    """
    @return: {module: set of modules loading it loads at once or later},
        a package's __init__ counted with each module under it.
    """
    known = modules()
    graph = {}
    for module, path in known.items():
        targets = set()
        for target, _ in imports(path, known):
            parts = target.split(".")
            targets.update(".".join(parts[:n]) for n in range(2, len(parts) + 1))
        graph[module] = {target for target in targets if target in known}
    return graph


_PROMISES = [pytest.param(subject, forbidden, id=subject) for subject, forbidden in promises()]


def test_everyModuleHasARow():
    rules = importRules()
    missing = sorted(module for module in modules() if unitOf(module, rules) is None)
    assert not missing, f"docs/architecture.rst's import table has no row for {missing}"


def test_everyImportIsAllowed():
    rules = importRules()
    known = modules()
    refused = []
    for module, path in sorted(known.items()):
        unit = unitOf(module, rules)
        allowed = rules.get(unit, frozenset())
        for target, line in imports(path, known):
            if unitOf(target, rules) == unit or any(_covers(entry, target) for entry in allowed):
                continue
            refused.append(f"{os.path.relpath(path, ROOT)}:{line}: {unit} imports {target}")
    assert not refused, (
        "imports docs/architecture.rst's table does not allow:\n" + "\n".join(refused)
    )


def _chain(graph, start, target):
    """
    @return: the import path from C{start} to C{target}, for the message.
    """
    previous, frontier = {start: None}, [start]
    while frontier:
        module = frontier.pop(0)
        if module == target:
            chain = []
            while module is not None:
                chain.append(module)
                module = previous[module]
            return " -> ".join(reversed(chain))
        for following in sorted(graph.get(module, ())):
            if following not in previous:
                previous[following] = module
                frontier.append(following)
    return None


@pytest.mark.parametrize("subject, forbidden", _PROMISES)
def test_importsKeepThePromises(subject, forbidden):
    """
    Imports followed from module to module, from every module of
    C{subject}, reach nothing it promises never to load.
    """
    graph = importGraph()
    starts = [module for module in graph if _covers(subject, module)]
    broken = []
    for start in starts:
        reached, frontier = set(), [start]
        while frontier:
            module = frontier.pop()
            for following in graph[module]:
                if following not in reached:
                    reached.add(following)
                    frontier.append(following)
        for module in sorted(reached):
            if any(_covers(entry, module) for entry in forbidden):
                broken.append(_chain(graph, start, module))
    assert not broken, f"{subject} reaches what it never loads:\n" + "\n".join(sorted(set(broken)))


_LOAD = """
import importlib, json, pkgutil, sys
subject = importlib.import_module(sys.argv[1])
if hasattr(subject, "__path__"):
    for found in pkgutil.walk_packages(subject.__path__, subject.__name__ + "."):
        importlib.import_module(found.name)
print(json.dumps(sorted(name for name in sys.modules if name.startswith("exmta"))))
"""


@pytest.mark.parametrize("subject, forbidden", _PROMISES)
def test_aProcessKeepsThePromises(subject, forbidden):
    """
    A fresh process that imports every module of C{subject} (for receive,
    the receive worker's own process) has loaded nothing it promises never
    to load.
    """
    environment = dict(os.environ, PYTHONPATH=ROOT)
    loaded = json.loads(subprocess.run(
        [sys.executable, "-c", _LOAD, f"exmta.{subject}"],
        env=environment, cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout)
    wrong = [module for module in loaded if any(_covers(entry, module) for entry in forbidden)]
    assert not wrong, f"importing exmta.{subject} loads {wrong}"
