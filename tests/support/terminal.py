"""A real pseudo-terminal running brain, read through a terminal emulator (pyte).

prompt-toolkit redraws only the cells that change, so the raw byte stream does not contain
"local" when the toolbar flips from "apex" to "local"; the emulated screen does. Tests wait
for text on the screen as a person would see it. `scrollback()` is what a person scrolling
back would read: the lines that went off the top of the screen, then the screen.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pexpect
import pyte


class _Screen(pyte.Screen):
    reply: Any = None

    def write_process_input(self, data: str) -> None:
        if self.reply is not None:
            self.reply(data)


class _HistoryScreen(pyte.HistoryScreen):
    """A screen that keeps what scrolls off its top (a terminal's scrollback)."""

    reply: Any = None

    def write_process_input(self, data: str) -> None:
        if self.reply is not None:
            self.reply(data)


class Terminal:
    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: str,
        rows: int = 40,
        cols: int = 120,
        scrollback: int = 0,
    ) -> None:
        env = dict(env)
        env.setdefault("TERM", "xterm-256color")
        env.setdefault("COLUMNS", str(cols))
        env.setdefault("LINES", str(rows))
        self.child = pexpect.spawn(
            argv[0],
            argv[1:],
            env=env,
            cwd=cwd,
            dimensions=(rows, cols),
            encoding="utf-8",
            codec_errors="replace",
        )
        self.screen: Any = (
            _HistoryScreen(cols, rows, history=scrollback) if scrollback else _Screen(cols, rows)
        )
        # Answer device queries as a real terminal does: prompt-toolkit asks where the cursor
        # is (CPR) before it draws the bottom toolbar.
        self.screen.reply = self.child.send
        self.stream = pyte.Stream(self.screen)
        self.transcript = ""  # everything received, for failure messages
        self.eof = False

    def pump(self, timeout: float = 0.1) -> None:
        if self.eof:
            time.sleep(timeout)
            return
        try:
            data = self.child.read_nonblocking(65536, timeout=timeout)
        except pexpect.TIMEOUT:
            return
        except pexpect.EOF:
            self.eof = True
            return
        self.transcript += data
        self.stream.feed(data)

    def display(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def scrollback(self) -> list[str]:
        """Every line a person could scroll back to, then the screen (trailing blanks cut)."""
        columns = self.screen.columns
        gone = [
            "".join(line[x].data for x in range(columns)).rstrip()
            for line in getattr(self.screen, "history", None).top
        ]
        lines = gone + [line.rstrip() for line in self.screen.display]
        while lines and not lines[-1]:
            lines.pop()
        return lines

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait until `pattern` (a regex) is on the screen; fail showing the screen."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.display())
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{pattern!r} did not appear on the screen within {timeout} s.\n"
                    f"--- screen ---\n{self.display()}\n--- end ---\n"
                    f"--- last bytes ---\n{self.transcript[-600:]!r}"
                )
            self.pump(0.05)

    def until(self, predicate: Any, what: str, timeout: float = 20.0) -> None:
        """Keep reading the terminal until `predicate()` holds (e.g. a fake got a request)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"waited {timeout} s for {what}.\n--- screen ---\n{self.display()}\n--- end ---"
                )
            self.pump(0.05)

    def send(self, text: str) -> None:
        self.child.send(text)

    def line(self, text: str) -> None:
        """Type `text` and press Enter."""
        self.child.send(text)
        self.child.send("\r")

    def ready(self, timeout: float = 20.0) -> None:
        """Wait until brain prompts again. The toolbar is drawn only while it does, and keys
        typed before (in the terminal's cooked mode) can be lost: Ctrl-D is, for one."""
        self.wait_for(r"task: \S+\s+backend: .*mode: \w+", timeout)

    def quit(self, timeout: float = 20.0) -> int:
        """Ctrl-D at the prompt; the exit status."""
        self.ready(timeout)
        self.send("\x04")
        return self.wait_exit(timeout)

    def wait_exit(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self.pump(0.1)
        self.child.expect(pexpect.EOF, timeout=max(deadline - time.monotonic(), 1))
        self.child.close()
        status = self.child.exitstatus
        if status is None:
            raise AssertionError(f"brain ended by signal {self.child.signalstatus}")
        return status

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
