"""How this brain was installed, so a hint that installs something names a command that works
here: `pipx inject` for a pipx install, this environment's own pip for a virtual environment
(a checkout's .venv included), never the system pip (Debian's refuses: externally managed).

The distribution is `brain-apex` (`brain-cli`, `brain` and `brain-ai` on the package index
are other projects); the command is `brain`. Stdlib only, imported only for a hint.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

DIST = "brain-apex"


def kind() -> str:
    """ "pipx", "uv" (a uv tool), "venv" (any other virtual environment) or "system"."""
    prefix = sys.prefix.replace("\\", "/")
    if "/pipx/venvs/" in prefix or (Path(sys.prefix) / "pipx_metadata.json").is_file():
        return "pipx"
    if "/uv/tools/" in prefix:
        return "uv"
    if sys.prefix != sys.base_prefix:
        return "venv"
    return "system"


def add(requirement: str) -> str:
    """A sentence naming the command that installs `requirement` (e.g. `mcp==2.3.0`,
    `keyrings.alt`) into the environment brain runs in."""
    req = shlex.quote(requirement)
    python = shlex.quote(sys.executable)
    found = kind()
    if found == "pipx":
        return f"`pipx inject {DIST} {req}`"
    if found == "uv":
        return f"`uv pip install --python {python} {req}`"
    if found == "venv":
        return f"`{python} -m pip install {req}` (brain's own environment)"
    return (
        f"brain runs in the system Python ({sys.executable}), which pip may refuse to change; "
        f"install brain with pipx (`pipx install PATH-TO-BRAIN`), then `pipx inject {DIST} {req}`"
    )


def doc(page: str) -> str:
    """Where to read docs/`page` on this machine: the checkout's docs/ (an editable install),
    else the copy shipped inside the package (the wheel carries docs/ as brain/docs)."""
    here = Path(__file__).resolve().parent
    for found in (here.parent / "docs" / page, here / "docs" / page):
        if found.is_file():
            return str(found)
    return f"docs/{page} in brain's source"
