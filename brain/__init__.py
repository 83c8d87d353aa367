"""brain: a personal LLM command line that asks Apex first and this laptop when Apex is away."""

import sys

__version__ = "0.1.0"

# `import httpx` also imports httpx's own command line (httpx._main) whenever click and rich are
# installed, as they are for brain: rich.console, rich.progress and pygments, ~35 ms on every
# request path (bench/README.md, section e). brain never uses that command line; marking the
# module absent makes httpx fall back to its stub `main` (httpx/__init__.py catches ImportError).
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
