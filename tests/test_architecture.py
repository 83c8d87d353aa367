"""The rules of CONVENTIONS.md that a test can check: imports point inward, startup is lazy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

BRAIN = Path(__file__).parent.parent / "brain"
UI = {"click", "rich", "prompt_toolkit"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_never_imports_ui_libraries() -> None:
    core = [*BRAIN.glob("tasks/**/*.py"), *BRAIN.glob("offline/**/*.py")]
    core += [*BRAIN.glob("digest/**/*.py")]
    core += [
        BRAIN / n
        for n in (
            "client.py",
            "store.py",
            "secrets.py",
            "settings.py",
            "errors.py",
            "exchange.py",
            "status.py",
        )
    ]
    assert len(core) >= 10
    for path in core:
        bad = imported_modules(path) & UI
        assert not bad, f"{path} imports {bad}"


def test_errors_imports_nothing_from_brain() -> None:
    assert "brain" not in imported_modules(BRAIN / "errors.py")


def test_help_imports_no_heavy_module() -> None:
    code = (
        "import sys\n"
        "from brain.cli import run\n"
        "try:\n    run(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'httpx', 'rich', 'keyring', 'prompt_toolkit', 'sqlite3'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"
