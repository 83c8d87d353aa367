"""Everything brain writes: answers on stdout, notices and errors on stderr.

Owns the choice, made at call time, between live Markdown (rich, stdout a terminal) and plain
text as it arrives (piped or redirected), the `--json` object, and the one format of notices
and errors. rich is imported only when a terminal is there to draw on. NO_COLOR and
FORCE_COLOR are honoured by rich.

What must stay true:
- A model's or a server's text never reaches a terminal as control sequences: every writer
  here passes text through `clean` (answers on a terminal, stored answers, notices, errors,
  tables, JSON). Piped or redirected, an answer is written as it came (it is data).
- On a terminal an answer ends up in the scrollback exactly once, however long: each finished
  Markdown block (brain.blocks) is printed once, and only the block still arriving is redrawn,
  so brain's cost per token stays flat (bench/render_cost.py measures it).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

from brain.errors import BrainError, Interrupted, PipeClosed

# C0 controls but tab and newline, DEL and the C1 controls: shown as visible symbols (ESC as
# "␛"), so an escape sequence in a model's answer is seen, never obeyed. CR is dropped (CRLF).
_CONTROLS: dict[int, str | None] = {c: chr(0x2400 + c) for c in range(0x20)}
_CONTROLS.update({0x09: None, 0x0A: None, 0x0D: "", 0x7F: "\u2421"})
_CONTROLS.update({c: "\ufffd" for c in range(0x80, 0xA0)})
_CONTROLS = {k: v for k, v in _CONTROLS.items() if v is not None}
# In JSON the C0 controls are escaped by json itself; DEL and C1 are escaped here (lossless).
_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in (0x7F, *range(0x80, 0xA0))}


def clean(text: str) -> str:
    """`text` made safe for a terminal: control characters become visible symbols."""
    return text.translate(_CONTROLS)


def money(usd: float) -> str:
    """A cost as a person reads it: two significant digits, at least four decimals ($0.0123,
    $0.00000042, $1.5000), never `$0.000000`; $0 when it was free."""
    import math

    if not math.isfinite(usd):
        return f"${usd}"
    if usd == 0:
        return "$0"
    digits = max(4, 1 - math.floor(math.log10(abs(usd))))
    return f"${usd:.{digits}f}"


def cut(text: str, width: int) -> str:
    """At most `width` characters, cut at a word and marked with an ellipsis when cut."""
    if len(text) <= width:
        return text
    head = text[: width - 1]
    space = head.rfind(" ")
    return (head[:space] if space > width // 2 else head).rstrip() + "…"


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
        self._answer: _LiveAnswer | None = None
        self._status: Any = None
        self._err_console: Any = None
        self._console: Any = None
        self._wrote = False  # plain answer text was written and...
        self._ended_with_newline = True  # ...whether it ended its line
        self._said_at = 0.0  # the last progress line on a stderr that is not a terminal
        self._meter_at = 0.0

    # ----- stderr -------------------------------------------------------------------------
    def err_console(self) -> Any:
        if self._err_console is None:
            from rich.console import Console

            self._err_console = Console(stderr=True, highlight=False, soft_wrap=True)
        return self._err_console

    def notice(self, message: str, fixes: list[str] | None = None) -> None:
        """One line for the person (stderr); `fixes`: what they can do, one line each."""
        from brain.secrets import redact

        self._pause_status()
        message = clean(redact(message))
        fixes = [clean(redact(f)) for f in fixes or []]
        with self._above_answer():
            if self.stderr_tty:
                console = self.err_console()
                console.print(f"[yellow]brain:[/] {_escape(message)}")
                for line in fixes:
                    console.print(f"  [cyan]→[/] {_escape(line)}")
            else:
                lines = [f"brain: {message}", *(f"  → {f}" for f in fixes)]
                sys.stderr.write("\n".join(lines) + "\n")
                sys.stderr.flush()

    def info(self, message: str) -> None:
        """Detail only shown with -v."""
        if self.verbose:
            self.notice(message)

    def error(self, exc: BrainError) -> None:
        """An error, and what to do next. The user's own Ctrl-C is said plainly, not as an
        error (it is what they asked for)."""
        from brain.secrets import redact

        self.stop()
        message, fix = clean(redact(exc.message)), clean(redact(exc.fix or ""))
        head, *rest = message.splitlines() or [""]
        fixes = [line for line in fix.splitlines() if line.strip()]
        label = "brain:" if isinstance(exc, Interrupted) else "brain: error:"
        if self.stderr_tty:
            console = self.err_console()
            style = "yellow" if isinstance(exc, Interrupted) else "bold red"
            console.print(f"[{style}]{label}[/] {_escape(head)}")
            for line in rest:
                console.print(f"  {_escape(line)}")
            for line in fixes:
                console.print(f"  [cyan]→[/] {_escape(line)}")
        else:
            lines = [f"{label} {head}", *(f"  {r}" for r in rest), *(f"  → {f}" for f in fixes)]
            sys.stderr.write("\n".join(lines) + "\n")
            sys.stderr.flush()

    def waiting(self, message: str) -> None:
        """A spinner on stderr until the first token (terminal only)."""
        if not self.stderr_tty:
            return
        self._pause_status()
        self._status = self.err_console().status(_escape(clean(message)), spinner="dots")
        self._status.start()

    def progress(self, message: str) -> None:
        """Progress of a long step (a memo being transcribed): the spinner's words, updated in
        place on a terminal; otherwise a line at most every PROGRESS_EVERY seconds."""
        import time

        message = clean(message)
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

    def _above_answer(self) -> Any:
        """A notice in the middle of a live answer goes above its open block."""
        if self._answer is not None and self.stderr_tty:
            return self._answer.paused()
        from contextlib import nullcontext

        return nullcontext()

    # ----- stdout -------------------------------------------------------------------------
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(highlight=False)
        return self._console

    def delta(self, text: str) -> None:
        """A piece of the answer as it arrives."""
        self._pause_status()
        if self.json_mode or not text:
            return
        if self.rich_answer:
            if self._answer is None:
                self._answer = _LiveAnswer(self.console())
            self._answer.feed(clean(text))
            return
        _out(clean(text) if self.stdout_tty else text)
        self._wrote, self._ended_with_newline = True, text.endswith("\n")

    def stop(self) -> None:
        """End the answer: its last block drawn, the cursor on a fresh line. Ready for the
        next answer (`queue run` prints several with one Output)."""
        self._pause_status()
        if self._answer is not None:
            answer, self._answer = self._answer, None
            answer.close()
        elif self._wrote and not self._ended_with_newline:
            _out("\n")
        self._wrote, self._ended_with_newline = False, True

    def markdown(self, text: str) -> None:
        """A whole stored answer: drawn as Markdown on a terminal (the same blocks a live one
        ends as), written as it is when piped."""
        from brain.secrets import redact

        text = redact(text, urls=False)
        if self.rich_answer:
            drawn = _Drawn()
            splitter = _splitter(self.console(), budget=1 << 30)
            for block in [*splitter.feed(clean(text)), *splitter.end()]:
                self.console().print(drawn.piece(block))
        elif text:
            _out((clean(text) if self.stdout_tty else text).rstrip("\n") + "\n")

    def header(self, title: str) -> None:
        """The line that opens one entry of several (`history`, `queue run`): set apart from
        the answers' own Markdown headings."""
        title = clean(title)
        if self.stdout_tty:
            from rich.rule import Rule

            self.console().print(Rule(_escape(title), align="left", style="dim"), style="bold")
        else:
            _out(f"── {title} ──\n")

    def json(self, obj: dict[str, Any], *, indent: int | None = 2) -> None:
        # A key, or a configured URL's password, never reaches stdout (brain.secrets): the
        # object's strings are masked, so a key holding a quote cannot break the JSON.
        from brain.secrets import redact_all

        obj = redact_all(obj, urls=False)
        # A stdout that is not UTF-8 gets \u escapes: the same JSON, nothing replaced by '?'.
        encoding = (getattr(sys.stdout, "encoding", None) or "utf-8").lower().replace("-", "")
        ascii_only = encoding not in ("utf8", "utf8sig")
        text = json.dumps(obj, ensure_ascii=ascii_only, indent=indent).translate(_JSON_ESCAPES)
        _out(text + "\n")

    def write(self, text: str) -> None:
        """Plain text on stdout (lists, paths, config)."""
        from brain.secrets import redact

        text = redact(text, urls=False)
        text = clean(text) if self.stdout_tty else text
        _out(text if text.endswith("\n") else text + "\n")

    def table(
        self,
        title: str | None,
        columns: list[str],
        rows: list[list[str]],
        styles: dict[str, str] | None = None,
    ) -> None:
        """A rich table on a terminal; tab-separated lines when piped. `styles`: a cell's
        exact text -> its style on a terminal (e.g. {"ok": "green"})."""
        if self.stdout_tty:
            from rich.table import Table

            table = Table(title=title, show_lines=False, header_style="bold")
            for col in columns:
                table.add_column(col, overflow="fold")
            from brain.secrets import redact

            for row in rows:
                cells = [clean(redact(c, urls=False)) for c in row]
                table.add_row(*[_styled(c, (styles or {}).get(c)) for c in cells])
            self.console().print(table)
        else:
            lines = ["\t".join(columns)] + ["\t".join(row) for row in rows]
            self.write("\n".join(lines))


def _styled(text: str, style: str | None) -> str:
    return f"[{style}]{_escape(text)}[/]" if style else _escape(text)


def _splitter(console: Any, budget: int | None = None) -> Any:
    from brain.blocks import Splitter

    rows, width = console.size.height, console.size.width
    # The open block stays well inside the screen: a live region taller than the screen is
    # what makes rich print copies into the scrollback.
    return Splitter(budget=budget or max(3, rows - 10), width=width)


class _Drawn:
    """How the blocks printed so far end, so the next is drawn as in one document: rich's
    Markdown puts a blank line between two elements (none after a rule), and none between the
    items of one list; a container (list, quote, table) drawn alone begins with a blank line."""

    def __init__(self) -> None:
        self.gap = False  # the next element gets a blank line before it
        self.list_end: tuple[str, str] | None = None  # (list type, marker) the last one closed

    def piece(self, block: Any, *, keep: bool = True) -> Any:
        """The renderable for `block`; `keep`: it is printed (else a live view of it)."""
        from rich.syntax import Syntax

        if block.code is not None:
            c = block.code
            pad = (1 if c.first else 0, 1, 1 if c.last else 0, 1)
            code = Syntax(block.text, c.lexer, theme="monokai", word_wrap=True, padding=pad)
            lead, drop = self.gap and not block.joined, False
            if keep:
                self.gap, self.list_end = True, None
            return _Piece(code, lead, drop)
        md = _markdown(block.text)
        top = [t for t in md.parsed if t.level == 0]
        first = top[0] if top else None
        container = first is not None and first.type in _CONTAINERS
        same_list = (
            first is not None
            and self.list_end is not None
            and (first.type.replace("_open", ""), first.markup) == self.list_end
        )
        lead = self.gap and not block.joined and not container
        drop = container and (block.joined or same_list)
        if keep and top:
            last = top[-1]
            self.gap = last.type != "hr"
            kind = last.type.replace("_close", "")
            self.list_end = (kind, last.markup) if last.type in _LIST_ENDS else None
        return _Piece(md, lead, drop)


_TEMPLATE: Any = None  # (a Markdown with rich's own settings, its parser)


def _markdown(text: str) -> Any:
    """rich's Markdown for `text`, parsed by one shared markdown-it parser: rich builds a new
    parser for every Markdown, a fifth of the cost of drawing an answer block by block. A copy
    of one Markdown made by rich itself, so every other setting stays rich's own."""
    global _TEMPLATE
    import copy

    if _TEMPLATE is None:
        from markdown_it import MarkdownIt
        from rich.markdown import Markdown

        # The parser rich's Markdown.__init__ builds: CommonMark with strikethrough and tables.
        _TEMPLATE = (Markdown(""), MarkdownIt().enable("strikethrough").enable("table"))
    template, parser = _TEMPLATE
    md = copy.copy(template)
    md.markup, md.parsed = text, parser.parse(text)
    return md


_CONTAINERS = {"bullet_list_open", "ordered_list_open", "blockquote_open", "table_open"}
_LIST_ENDS = {"bullet_list_close", "ordered_list_close"}


class _Piece:
    """A block as rich draws it, with a blank line added before (`lead`) or its own first
    blank line dropped (`drop`) so the pieces join as one document would."""

    def __init__(self, renderable: Any, lead: bool, drop: bool) -> None:
        self.renderable, self.lead, self.drop = renderable, lead, drop

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.segment import Segment

        lines = console.render_lines(self.renderable, options, pad=False)
        if self.drop and lines and not "".join(s.text for s in lines[0]).strip():
            lines = lines[1:]
        if self.lead:
            yield Segment.line()
        for line in lines:
            yield from line
            yield Segment.line()


class _LiveAnswer:
    """One answer being drawn on a terminal: finished blocks printed once above, the open block
    redrawn below them. Every draw happens under `lock`, from this thread as the answer
    arrives or from a ticker thread when it pauses (so the last words show at once), and the
    open block is read at the moment it is drawn (`_Open`): a finished block and the view
    after it go out in one write, and two draws never interleave their cursor moves."""

    FRAME = 1 / 12  # seconds between two redraws of the open block

    def __init__(self, console: Any) -> None:
        import time

        from rich.live import Live

        self.clock = time.monotonic
        self.console = console
        self.splitter = _splitter(console)
        self.drawn = _Drawn()
        self.lock = threading.Lock()
        self.closed = False
        self.dirty = False
        self.drawn_at = 0.0
        self.ready: list[Any] = []  # finished blocks not printed yet (the next frame prints)
        self.quiet = _NoEcho(sys.stdout)
        self.live = Live(
            _Open(self),
            console=console,
            auto_refresh=False,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
            vertical_overflow="crop",
        )
        self.done = threading.Event()
        with self.lock:
            self.live.start()
        self.ticker = threading.Thread(target=self._tick, name="brain-live", daemon=True)
        self.ticker.start()

    def view(self) -> list[Any]:
        """What the live region shows (called while drawing, under the lock): blocks finished
        since the last frame, then the open block as it stands."""
        block = None if self.closed else self.splitter.pending()
        return [*self.ready, *([] if block is None else [self.drawn.piece(block, keep=False)])]

    def feed(self, text: str) -> None:
        with self.lock:
            self.ready += [self.drawn.piece(b) for b in self.splitter.feed(text)]
            self.dirty = True
            if self.clock() - self.drawn_at >= self.FRAME:
                self._draw()

    def _draw(self) -> None:
        """One frame: blocks finished since the last one are printed (once, for good), and the
        open block is redrawn under them, in one write. At most FRAME apart, so a fast stream
        costs rich's drawing per frame, not per token."""
        if self.ready:
            from rich.console import Group

            ready, self.ready = self.ready, []
            self.console.print(Group(*ready))
        else:
            self.live.refresh()
        self.dirty, self.drawn_at = False, self.clock()

    def _tick(self) -> None:
        while not self.done.wait(self.FRAME):
            with self.lock:
                if self.dirty and not self.done.is_set():
                    self._draw()

    def paused(self) -> Any:
        """Stop drawing for a moment (a notice on stderr goes between)."""
        from contextlib import contextmanager

        @contextmanager
        def pause() -> Any:
            with self.lock:
                self.live.stop()
                try:
                    yield
                finally:
                    self.live.start()
                    self.dirty = True

        return pause()

    def close(self) -> None:
        try:
            self.done.set()
            with self.lock:
                self.ready += [self.drawn.piece(b) for b in self.splitter.end()]
                self.closed = True
                self._draw()
                self.live.stop()
        finally:
            self.quiet.restore()


class _Open:
    """The live view: whatever is open when rich draws it."""

    def __init__(self, answer: _LiveAnswer) -> None:
        self.answer = answer

    def __rich_console__(self, console: Any, options: Any) -> Any:
        yield from self.answer.view()


class _NoEcho:
    """While an answer is drawn the terminal does not echo keys: an echoed ^C (or any typed
    key) would add a line the live view does not know of, and a line would be printed twice.
    Keys typed meanwhile stay queued for the shell or the prompt. POSIX only; not done from the
    background (changing the terminal there would stop brain with SIGTTOU)."""

    def __init__(self, stream: Any) -> None:
        self.fd: int | None = None
        self.saved: Any = None
        if os.name != "posix":
            return
        try:
            import termios

            fd = stream.fileno()
            if os.tcgetpgrp(fd) != os.getpgrp():
                return
            saved = termios.tcgetattr(fd)
            quiet = list(saved)
            quiet[3] &= ~termios.ECHO
            termios.tcsetattr(fd, termios.TCSANOW, quiet)
            self.fd, self.saved = fd, saved
        except (OSError, ValueError, AttributeError, ImportError):
            return
        except Exception:  # termios.error
            return

    def restore(self) -> None:
        if self.saved is None:
            return
        import termios

        try:
            termios.tcsetattr(self.fd, termios.TCSANOW, self.saved)
        except Exception:  # the terminal went away
            pass
        self.saved = None


def _out(text: str) -> None:
    """Write to stdout; a reader that went away (`| head`) becomes PipeClosed, so the caller
    can keep what was said and brain can exit quietly (click would turn EPIPE into exit 1)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise PipeClosed("stdout was closed by its reader") from None


def _escape(text: str) -> str:
    """Text shown through rich's markup as it is (a `[bold]` in it stays text)."""
    from rich.markup import escape

    return escape(text)
