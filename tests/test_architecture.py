"""The import rules of docs/ARCHITECTURE.md, checked by walking every import statement.

Each rule: files under a folder must not import the named top-level packages, anywhere in
the file (module level or inside a function). Relative imports are not used in this code base.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# folder (or file) -> top-level packages its code must not import, and why
RULES: dict[str, tuple[frozenset[str], str]] = {
    "core": (
        frozenset({"streamlit", "pages", "ui", "workers", "extra_streamlit_components", "streamlit_authenticator"}),
        "core is used by pages, workers and the CLI alike; it never imports the UI or the workers",
    ),
    "workers": (frozenset({"streamlit", "pages", "ui"}), "workers run without a UI"),
    "pages": (
        frozenset({"sqlalchemy", "openai", "dramatiq", "redis", "psycopg", "workers"}),
        "pages only draw: data, AI and queues are core's",
    ),
    "ui": (
        frozenset({"sqlalchemy", "openai", "dramatiq", "redis", "psycopg", "workers"}),
        "UI helpers only draw: data, AI and queues are core's",
    ),
    "streamlit_app.py": (
        frozenset({"sqlalchemy", "openai", "dramatiq", "redis", "psycopg", "workers"}),
        "the router only draws",
    ),
}


# Core modules whose objects are live database rows, sessions or queue messages: pages get
# plain data objects and the StrEnum values (core.platform.statuses) instead.
DATA_MODULES = frozenset({"core.platform.models", "core.platform.db", "core.platform.queue", "core.platform.jobs"})


def imported_modules(path: Path) -> dict[str, int]:
    """Full module name -> first line that imports it (or a name from it), for `path`."""
    found: dict[str, int] = {}
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        for name in names:
            found.setdefault(name, node.lineno)
    return found


def imported_packages(path: Path) -> dict[str, int]:
    """Top-level package -> first line that imports it, for every import in `path`."""
    found: dict[str, int] = {}
    for module, line in imported_modules(path).items():
        package = module.split(".")[0]
        found[package] = min(line, found.get(package, line))
    return found


def _files(where: str) -> list[Path]:
    target = ROOT / where
    return [target] if target.is_file() else sorted(target.rglob("*.py"))


@pytest.mark.parametrize("where", sorted(RULES))
def test_layers_import_only_what_they_may(where: str) -> None:
    banned, why = RULES[where]
    files = _files(where)
    assert files, f"nothing to check under {where}"
    broken = [
        f"{path.relative_to(ROOT)}:{line} imports {package}"
        for path in files
        for package, line in sorted(imported_packages(path).items())
        if package in banned
    ]
    assert not broken, f"{why}:\n" + "\n".join(broken)


@pytest.mark.parametrize("where", ["pages", "ui", "streamlit_app.py"])
def test_the_ui_never_holds_orm_rows_sessions_or_queues(where: str) -> None:
    broken = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _files(where)
        for module, line in sorted(imported_modules(path).items())
        if module in DATA_MODULES
    ]
    assert not broken, "the UI calls core services and gets plain data back:\n" + "\n".join(broken)


@pytest.mark.parametrize("where", ["pages", "ui", "streamlit_app.py"])
def test_the_ui_uses_each_feature_package_through_its_public_names(where: str) -> None:
    """core.access, .documents, .meetings, .chat and .admin name their public API in their
    __init__; the modules behind it may move. (core.platform's modules are imported as such.)"""
    features = ("core.access.", "core.documents.", "core.meetings.", "core.chat.", "core.admin.")
    broken = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _files(where)
        for module, line in sorted(imported_modules(path).items())
        if module.startswith(features)
    ]
    assert not broken, "import the package, not its module:\n" + "\n".join(broken)


# "No module over ~500 lines": a little slack, so a module near the mark can take a fix
# before it is split by what it does.
MAX_MODULE_LINES = 550


def test_no_module_is_too_long_to_read() -> None:
    modules = [path for where in ("core", "pages", "ui", "workers", "streamlit_app.py") for path in _files(where)]
    too_long = {
        str(path.relative_to(ROOT)): lines
        for path in modules
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long, f"split these by what they do (at most {MAX_MODULE_LINES} lines): {too_long}"


def test_pages_holds_only_routed_pages() -> None:
    """Every script in pages/ is a page the router lists; helpers live in ui/."""
    router = (ROOT / "streamlit_app.py").read_text(encoding="utf-8")
    scripts = [page for page in sorted((ROOT / "pages").glob("*.py")) if page.name != "__init__.py"]
    assert scripts
    for page in scripts:
        assert f'"pages/{page.name}"' in router, f"pages/{page.name} is not routed by streamlit_app.py"


def test_the_app_is_served_with_the_pages_folder_left_to_the_router() -> None:
    """Streamlit takes a pages/ folder for an old-style multipage app until st.navigation first
    runs; every way Quorum starts the server turns that off before the first script run."""
    from core import cli

    command = cli._streamlit_command(8501, "127.0.0.1")
    assert command[1:3] == ["-m", "ui.streamlit_server"]
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "streamlit run" not in dockerfile


def test_the_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n\ndef f():\n    from sqlalchemy.orm import Session\n    import streamlit as st\n")
    assert imported_packages(sample) == {"os": 1, "sqlalchemy": 4, "streamlit": 5}
