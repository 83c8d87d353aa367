"""Everything brain writes: answers on stdout, notices and errors on stderr.

Owns the choice, made at call time, between live Markdown (rich, stdout a terminal) and plain
text as it arrives (piped or redirected), the `--json` object, and the one format of notices
and errors. rich is imported only when a terminal is there to draw on. NO_COLOR and
FORCE_COLOR are honoured by rich.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from brain.errors import BrainError, PipeClosed

PROGRESS_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Output:
    """One command's output. `rich_answer` is decided here, once, from the real streams."""

    def __init__(self, *, json_mode: bool = False, verbose: bool = False) -> None:
        self.json_mode = json_mode
        self.verbose = verbose
        self.stdout_tty = _isatty(sys.stdout)
        self.stderr_tty = _isatty(sys.stderr)
        self.rich_answer = self.stdout_tty and not json_mode and os.environ.get("TERM") != "dumb"
        self._live: Any = None
        self._status: Any = None
        self._text = ""
        self._err_console: Any = None
        self._ended_with_newline = True
        self._drawn_at = 0.0
        self._said_at = 0.0  # the last progress line on a stderr that is not a terminal
        self._meter_at = 0.0

    def _draw(self) -> None:
        from rich.markdown import Markdown

        self._live.update(Markdown(self._text), refresh=True)

    # ----- stderr -------------------------------------------------------------------------
    def err_console(self) -> Any:
        if self._err_console is None:
            from rich.console import Console

            self._err_console = Console(stderr=True, highlight=False, soft_wrap=True)
        return self._err_console

    def notice(self, message: str) -> None:
        from brain.secrets import redact

        self._pause_status()
        message = redact(message)
        if self.stderr_tty:
            self.err_console().print(f"[yellow]brain:[/] {_escape(message)}")
        else:
            sys.stderr.write(f"brain: {message}\n")
            sys.stderr.flush()

    def info(self, message: str) -> None:
        """Detail only shown with -v."""
        if self.verbose:
            self.notice(message)

    def error(self, exc: BrainError) -> None:
        from brain.secrets import redact

        self.stop()
        message, fix = redact(exc.message), redact(exc.fix or "")
        head, *rest = message.splitlines() or [""]
        fixes = [line for line in fix.splitlines() if line.strip()]
        if self.stderr_tty:
            console = self.err_console()
            console.print(f"[bold red]brain: error:[/] {_escape(head)}")
            for line in rest:
                console.print(f"  {_escape(line)}")
            for line in fixes:
                console.print(f"  [cyan]→[/] {_escape(line)}")
        else:
            lines = [
                f"brain: error: {head}",
                *(f"  {r}" for r in rest),
                *(f"  → {f}" for f in fixes),
            ]
            sys.stderr.write("\n".join(lines) + "\n")
            sys.stderr.flush()

    def waiting(self, message: str) -> None:
        """A spinner on stderr until the first token (terminal only)."""
        if not self.stderr_tty:
            return
        self._pause_status()
        self._status = self.err_console().status(_escape(message), spinner="dots")
        self._status.start()

    def progress(self, message: str) -> None:
        """Progress of a long step (a memo being transcribed): the spinner's words, updated in
        place on a terminal; otherwise a line at most every PROGRESS_EVERY seconds."""
        import time

        if self.stderr_tty:
            if self._status is None:
                self.waiting(message)
            else:
                self._status.update(_escape(message))
            return
        now = time.monotonic()
        if not self._said_at:  # a step that ends within PROGRESS_EVERY says nothing here
            self._said_at = now
        elif now - self._said_at >= PROGRESS_EVERY:
            self._said_at = now
            sys.stderr.write(f"brain: {message}\n")
            sys.stderr.flush()

    def meter(self, seconds: float, level: float) -> None:
        """A recording's elapsed time and level on one stderr line, redrawn (terminal only)."""
        import time

        if not self.stderr_tty:
            return
        now = time.monotonic()
        if now - self._meter_at < 0.1:
            return
        self._meter_at = now
        filled = round(level * 20)
        minutes, secs = divmod(int(seconds), 60)
        dot = "●" if os.environ.get("NO_COLOR") else "\x1b[31m●\x1b[0m"
        sys.stderr.write(
            f"\r{dot} {minutes}:{secs:02d}  {'█' * filled}{'·' * (20 - filled)}  Enter stops\x1b[K"
        )
        sys.stderr.flush()

    def meter_end(self) -> None:
        if self.stderr_tty:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()

    def _pause_status(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    # ----- stdout -------------------------------------------------------------------------
    def delta(self, text: str) -> None:
        """A piece of the answer as it arrives."""
        self._pause_status()
        if self.json_mode:
            return
        self._text += text
        if self.rich_answer:
            if self._live is None:
                from rich.console import Console
                from rich.live import Live

                console = Console(highlight=False)
                self._live = Live(
                    console=console,
                    refresh_per_second=12,
                    vertical_overflow="visible",
                    transient=False,
                )
                self._live.start()
            # Parsing Markdown costs more as the answer grows: redraw at most ~12 times a
            # second (stop() draws the final state).
            import time

            now = time.monotonic()
            if now - self._drawn_at >= 0.08:
                self._drawn_at = now
                self._draw()
        else:
            _out(text)
            self._ended_with_newline = text.endswith("\n")

    def stop(self) -> None:
        """End the live display; leave the cursor on a fresh line."""
        self._pause_status()
        if self._live is not None:
            self._draw()
            self._live.stop()
            self._live = None
        elif not self.json_mode and self._text and not self._ended_with_newline:
            self._ended_with_newline = True
            _out("\n")

    def json(self, obj: dict[str, Any]) -> None:
        _out(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")

    def write(self, text: str) -> None:
        """Plain text on stdout (lists, paths, config)."""
        _out(text if text.endswith("\n") else text + "\n")

    def table(self, title: str | None, columns: list[str], rows: list[list[str]]) -> None:
        """A rich table on a terminal; tab-separated lines when piped."""
        if self.stdout_tty:
            from rich.console import Console
            from rich.table import Table

            table = Table(title=title, show_lines=False, header_style="bold")
            for col in columns:
                table.add_column(col, overflow="fold")
            for row in rows:
                table.add_row(*[_escape(c) for c in row])
            Console().print(table)
        else:
            lines = ["\t".join(columns)] + ["\t".join(row) for row in rows]
            self.write("\n".join(lines))


def _out(text: str) -> None:
    """Write to stdout; a reader that went away (`| head`) becomes PipeClosed, so the caller
    can keep what was said and brain can exit quietly (click would turn EPIPE into exit 1)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise PipeClosed("stdout was closed by its reader") from None


def _escape(text: str) -> str:
    return text.replace("[", "\\[")
