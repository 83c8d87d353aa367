"""The rules of CONVENTIONS.md and DESIGN.md ("Layout") that a test can check: imports point
inward with no cycle, nothing imports the entry point, the core never imports a UI library,
startup is lazy, and no function grows past what a reader takes in at once."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

BRAIN = Path(__file__).parent.parent / "brain"
UI = {"click", "rich", "prompt_toolkit"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(BRAIN.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in BRAIN.rglob("*.py")}


def _type_checking_only(tree: ast.AST) -> set[int]:
    """Line numbers of imports inside `if TYPE_CHECKING:` (they never run)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            lines.update(n.lineno for n in ast.walk(node) if isinstance(n, ast.stmt))
    return lines


def brain_imports(path: Path) -> set[str]:
    """The brain modules `path` imports anywhere (inside functions too), TYPE_CHECKING aside."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_only(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("brain"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if not node.module.startswith("brain"):
                continue
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m in MODULES}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_inside_brain() -> None:
    graph = {name: brain_imports(path) - {name} for name, path in MODULES.items()}
    assert cycles(graph) == []


def test_a_cycle_would_be_found() -> None:
    # The check itself must be able to fail.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_nothing_imports_the_entry_point() -> None:
    importers = [name for name, path in MODULES.items() if "brain.cli" in brain_imports(path)]
    assert sorted(importers) == ["brain.quick"]  # the entry point (`brain`, `python -m brain`)


def test_core_never_imports_ui_libraries() -> None:
    core = [*BRAIN.glob("tasks/**/*.py"), *BRAIN.glob("offline/**/*.py")]
    core += [*BRAIN.glob("backends/**/*.py"), *BRAIN.glob("digest/**/*.py")]
    core += [
        BRAIN / n
        for n in (
            "app.py",
            "client.py",
            "deadline.py",
            "transport.py",
            "store.py",
            "secrets.py",
            "settings.py",
            "errors.py",
            "exchange.py",
            "material.py",
            "status.py",
            "premium.py",
            "conversation.py",
            "notify.py",
        )
    ]
    assert len(core) >= 20
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


LONG = 60


def test_no_long_function_without_a_reason() -> None:
    """A function past LONG lines says why in a comment beginning `# long:` inside it."""
    unexplained = []
    for path in BRAIN.rglob("*.py"):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = lines[node.lineno - 1 : node.end_lineno]
                if len(body) > LONG and not any("# long:" in line for line in body):
                    unexplained.append(
                        f"{path.relative_to(BRAIN.parent)}:{node.name} ({len(body)})"
                    )
    assert unexplained == []
