"""Dependencies point down: no package imports one above it (tsdb is the bottom, virtwatch the top).

Every `import` and `from ... import` in every module of the packages counts, at module level or inside a
function (or under `if TYPE_CHECKING:`), relative ones resolved against the module's own package.
"""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: package -> the other packages it may import; virtwatch, the command line and its wiring, may import them all
ALLOWED = {
    "tsdb": set(),
    "collector": {"tsdb"},
    "alerts": {"tsdb"},
    "analysis": {"tsdb"},
    "simulator": {"tsdb", "collector", "alerts"},
    "dashboard": {"tsdb", "alerts", "analysis"},
    "virtwatch": {"tsdb", "collector", "alerts", "analysis", "simulator", "dashboard"},
}


def module_name(root: Path, path: Path) -> str:
    """Return the dotted module name of a file under root ("alerts/notify/__init__.py" -> "alerts.notify")."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str, str]]:
    """Return (line, imported module, the statement) for every import in a module's tree, wherever it is."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, f"import {alias.name}") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = ", ".join(alias.name for alias in node.names)
            statement = f"from {'.' * node.level}{node.module or ''} import {names}"
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = package[:len(package) - (node.level - 1)] if node.level - 1 <= len(package) else []
                target = ".".join(base + ([node.module] if node.module else []))
                if not node.module:  # `from . import x`: x is a module of the package
                    found += [(node.lineno, f"{target}.{alias.name}".lstrip("."), statement) for alias in node.names]
                    continue
            else:
                target = node.module or ""
            found.append((node.lineno, target, statement))
    return found


def import_violations(root: Path, allowed: dict[str, set[str]] = ALLOWED) -> list[str]:
    """Return "file:line: statement (package may not import other)" for every import pointing up or across."""
    violations = []
    for package in sorted(allowed):
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            module = module_name(root, path)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, target, statement in imported_modules(tree, module, path.name == "__init__.py"):
                top = target.split(".")[0]
                if top in allowed and top != package and top not in allowed[package]:
                    violations.append(f"{path.relative_to(root)}:{line}: {statement} "
                                      f"({package} may not import {top})")
    return violations


def test_no_package_imports_one_above_it():
    violations = import_violations(REPO)
    assert not violations, "imports pointing up:\n" + "\n".join(violations)


def write(root: Path, relative: str, text: str) -> None:
    """Write one module of a fixture tree."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_the_check_names_every_upward_import_with_its_file_and_line(tmp_path):
    write(tmp_path, "tsdb/__init__.py", "")
    write(tmp_path, "tsdb/store.py", "import os\nfrom ..alerts import engine\n")
    write(tmp_path, "alerts/__init__.py", "")
    write(tmp_path, "alerts/notify/__init__.py", "from . import webhook\nfrom .config import ReceiverConfig\n")
    write(tmp_path, "alerts/notify/webhook.py",
          "from tsdb import Store\n\n\ndef build():\n    from virtwatch.config import ReceiverConfig\n")
    write(tmp_path, "alerts/notify/config.py", "from ...dashboard import origins\n")
    write(tmp_path, "collector/agent.py", "import dashboard.app as app\nimport alerts\n")
    write(tmp_path, "dashboard/data.py", "from alerts.burn import burn_rate\nfrom analysis import signals\n")
    write(tmp_path, "simulator/fleet.py", "from collector import agent\nfrom virtwatch import wiring\n")
    write(tmp_path, "virtwatch/wsgi.py", "from dashboard.app import create_app\nfrom simulator import fleet\n")
    assert import_violations(tmp_path) == [
        "alerts/notify/config.py:1: from ...dashboard import origins (alerts may not import dashboard)",
        "alerts/notify/webhook.py:5: from virtwatch.config import ReceiverConfig (alerts may not import virtwatch)",
        "collector/agent.py:1: import dashboard.app (collector may not import dashboard)",
        "collector/agent.py:2: import alerts (collector may not import alerts)",
        "simulator/fleet.py:2: from virtwatch import wiring (simulator may not import virtwatch)",
        "tsdb/store.py:2: from ..alerts import engine (tsdb may not import alerts)",
    ]


def test_a_relative_import_is_resolved_against_its_own_package():
    tree = ast.parse("from . import model\nfrom .. import shard\nfrom ..windows import PERIODS\n")
    assert [t for _, t, _ in imported_modules(tree, "alerts.notify", is_package=True)] == [
        "alerts.notify.model", "alerts.shard", "alerts.windows"]
    assert [t for _, t, _ in imported_modules(tree, "alerts.notify.webhook", is_package=False)] == [
        "alerts.notify.model", "alerts.shard", "alerts.windows"]
