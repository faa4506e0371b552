"""Import arrows point down (api → jobmanager → jobs → domain → config/errors), with no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A higher tier may import a lower one; a module may import within its own tier only while
# the graph stays acyclic. A new top-level module must be placed here before it is used.
ENTRY, MANAGER, PIPELINE, DOMAIN, FOUNDATION = 4, 3, 2, 1, 0
DOMAIN_MODULES = """
    antivirus child_events chunking content_safety extraction forkserver idempotency jobrecord
    jobstore
    leases logs metrics nhost_auth nhost_client openapi page_split pdf_engines pdf_text pypdf_lazy
    pypdf_plain
    readiness recovery riskscan sanitize screening uploads validation webhooks
"""
TIERS = {
    "api": ENTRY,
    "cli": ENTRY,
    "gunicorn.conf": ENTRY,
    "parse_child": ENTRY,  # the parse child's own entry point (python -m parse_child)
    "jobmanager": MANAGER,
    "jobs": PIPELINE,
    **dict.fromkeys(DOMAIN_MODULES.split(), DOMAIN),
    "config": FOUNDATION,
    "errors": FOUNDATION,
}
FLASK_PACKAGES = ("flask", "flask_limiter", "werkzeug")


def modules() -> dict[str, Path]:
    """Return the service's top-level modules by name."""
    return {path.name.removesuffix(".py"): path for path in sorted(ROOT.glob("*.py"))}


def imported_names(path: Path) -> set[str]:
    """Return every top-level package name the module imports, at any depth in its body."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def graph() -> dict[str, set[str]]:
    """Return each module's imports of other top-level modules."""
    found = modules()
    return {name: imported_names(path) & found.keys() - {name} for name, path in found.items()}


def test_every_module_has_a_tier():
    """A new module is placed in TIERS, so its arrows are checked too."""
    assert sorted(modules().keys() - TIERS.keys()) == []


@pytest.mark.parametrize("name", sorted(TIERS))
def test_no_module_imports_a_higher_tier(name):
    """Each import points to the same tier or one below it."""
    upward = {dep for dep in graph().get(name, set()) if TIERS[dep] > TIERS[name]}
    assert upward == set(), f"{name} imports {sorted(upward)} from above it"


def test_no_import_cycles():
    """Following imports from any module never comes back to it."""
    edges = graph()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name not in done:
            for dep in sorted(edges[name]):
                visit(dep, (*path, name))
            done.add(name)

    for name in sorted(edges):
        visit(name, ())


def test_flask_only_in_api():
    """Flask (and its extensions) is imported by api.py alone."""
    users = {
        name
        for name, path in modules().items()
        if imported_names(path) & set(FLASK_PACKAGES) and name != "api"
    }
    assert users == set()


def test_the_checker_sees_an_upward_import(tmp_path):
    """The parser finds imports nested in functions and TYPE_CHECKING blocks."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from api import app\n"
        "def late():\n    import jobs.sub\n"
    )
    assert {"api", "jobs"} <= imported_names(probe)
