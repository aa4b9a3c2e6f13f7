"""Dependencies flow one way: every import under apps/ follows ALLOWED, and nothing imports in a
circle (between apps, or between the modules of one app).

Imports are read from the source with ast, so an import inside a function counts as much as one
at the top: a lazy import hides an arrow from the reader, not from this test. docs/architecture.md
shows the same map; a test below keeps its table equal to ALLOWED.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ROOT / "apps"
DOC = ROOT / "docs" / "architecture.md"

# The one map of which app may import which. A feature app never imports rollouts (which
# orchestrates them), nor an interface (api, pages, demo); interfaces do not import each other.
DOMAIN = ["releases", "checks", "checklists", "signoffs", "incidents"]
BASE = ["core", "jobs", "outbox"]
ALLOWED: dict[str, list[str]] = {
    "core": [],
    "jobs": ["core"],
    "outbox": ["core", "jobs"],
    "releases": ["core"],
    "checks": ["releases", *BASE],
    "checklists": ["releases", *BASE],
    "signoffs": ["releases", *BASE],
    "incidents": ["releases", *BASE],
    "rollouts": [*DOMAIN, *BASE],
    "reports": [*DOMAIN, *BASE],
    "configuration": [*DOMAIN, *BASE],
    "runbooks": [*DOMAIN, *BASE],
    "api": ["rollouts", "configuration", "runbooks", *DOMAIN, *BASE],
    "pages": ["rollouts", "reports", *DOMAIN, *BASE],
    "demo": ["rollouts", "reports", "api", *DOMAIN, *BASE],
    "exporter": ["rollouts", "reports", *DOMAIN, *BASE],
    "sso": ["releases", "core"],
    "slack": ["signoffs", "releases", *BASE],
}


@dataclass(frozen=True)
class Import:
    """One import statement of one module, resolved to the module it loads."""

    source: str  # dotted name of the importing module
    target: str  # dotted name of the imported module (the longest one that exists)
    line: int
    type_only: bool  # under `if TYPE_CHECKING:`: never executed

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line} imports {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(APPS.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(node: ast.Import | ast.ImportFrom, name: str, is_package: bool) -> list[str]:
    """The dotted names an import statement may load (a `from x import y` may load x.y)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = name.split(".") if is_package else name.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        package = ".".join([*base, *([node.module] if node.module else [])])
    else:
        package = node.module or ""
    return [package, *(f"{package}.{alias.name}" for alias in node.names)]


def imports_in(
    code: str, name: str, modules: dict[str, Path] | set[str], *, is_package: bool = False
) -> list[Import]:
    """Every import of apps.* in the module, at any depth (functions, classes, if blocks)."""
    found: list[Import] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, True)
            for child in node.orelse:
                visit(child, type_only)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            targets = set()
            for dotted in _imported_names(node, name, is_package):
                parts = dotted.split(".")
                while parts and ".".join(parts) not in modules:
                    parts.pop()
                if parts:
                    targets.add(".".join(parts))
            # `from . import a, b` names both a and b: keep the deepest modules it reaches.
            for target in targets:
                if not any(t.startswith(target + ".") for t in targets) and target != name:
                    found.append(Import(name, target, node.lineno, type_only))
        for child in ast.iter_child_nodes(node):
            visit(child, type_only)

    visit(ast.parse(code, filename=name), False)
    return found


def all_imports() -> list[Import]:
    modules = all_modules()
    return [
        imp
        for name, path in modules.items()
        for imp in imports_in(
            path.read_text(), name, modules, is_package=path.name == "__init__.py"
        )
    ]


def app_of(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found)


def cross_app(imports: list[Import]) -> list[Import]:
    return [
        imp
        for imp in imports
        if app_of(imp.source) and app_of(imp.target) and app_of(imp.source) != app_of(imp.target)
    ]


# --- the rules ----------------------------------------------------------------------------------


def test_every_app_is_in_the_map():
    apps_on_disk = {p.name for p in APPS.iterdir() if (p / "__init__.py").exists()}
    assert apps_on_disk == set(ALLOWED), "add the new app to ALLOWED and docs/architecture.md"


def test_every_arrow_between_apps_is_allowed():
    # Type-only imports count: an annotation naming another app's class still depends on it.
    wrong = [
        imp.where
        for imp in cross_app(all_imports())
        if app_of(imp.target) not in ALLOWED.get(app_of(imp.source), [])
    ]
    assert not wrong, "arrows not in ALLOWED:\n" + "\n".join(wrong)


def test_no_import_cycle_between_apps():
    graph: dict[str, set[str]] = defaultdict(set)
    for imp in cross_app(all_imports()):
        graph[app_of(imp.source)].add(app_of(imp.target))
    found = cycles(graph)
    assert not found, f"apps importing each other, directly or around a circle: {found}"


def test_the_allowed_map_has_no_cycle():
    assert cycles({app: set(deps) for app, deps in ALLOWED.items()}) == []


def test_no_import_cycle_between_the_modules_of_an_app():
    # Left out: imports that never run (`if TYPE_CHECKING:`), and a package's __init__ loading
    # its own submodules: Python loads the package before any submodule anyway, so that pair
    # cannot be untangled and is not a circle of two ideas.
    graph: dict[str, set[str]] = defaultdict(set)
    for imp in all_imports():
        if imp.type_only or app_of(imp.source) != app_of(imp.target):
            continue
        if imp.target.startswith(imp.source + "."):
            continue
        graph[imp.source].add(imp.target)
    found = cycles(graph)
    assert not found, "modules importing each other:\n" + "\n".join(map(str, found))


def test_the_map_in_docs_architecture_is_this_one():
    rows = re.findall(r"^\| `(\w+)` \|[^|]*\| (.*?) \|$", DOC.read_text(), flags=re.MULTILINE)
    documented = {app: sorted(re.findall(r"`(\w+)`", deps)) for app, deps in rows if app in ALLOWED}
    assert documented == {app: sorted(deps) for app, deps in ALLOWED.items()}


def test_the_reader_sees_every_kind_of_import():
    # The parser is what every rule above stands on: check it on a module written for it.
    modules = {"apps.a", "apps.a.tasks", "apps.a.models", "apps.b", "apps.b.models", "apps.c"}
    code = (
        "from typing import TYPE_CHECKING\n"
        "from . import models\n"
        "if TYPE_CHECKING:\n"
        "    from apps.c import Thing\n"
        "def later():\n"
        "    from .tasks import send\n"
        "    import apps.b.models\n"
    )
    found = {(imp.target, imp.type_only) for imp in imports_in(code, "apps.a.services", modules)}
    assert found == {
        ("apps.a.models", False),
        ("apps.c", True),
        ("apps.a.tasks", False),
        ("apps.b.models", False),
    }
    assert cycles({"x": {"y"}, "y": {"z", "x"}, "z": set()}) == [["x", "y"]]
