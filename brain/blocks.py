"""Where a streamed Markdown answer can be cut into blocks, so that each finished block is drawn
once and only the block still arriving is redrawn (brain.render).

Owns the cutting rules, and nothing about drawing. What must stay true:
- Each piece of text is looked at a bounded number of times: the cost per token does not grow
  with the answer (a 4 MB answer costs per token what a 4 KB one does; bench/render_cost.py).
- A block is cut where Markdown itself ends one, so the blocks drawn one by one look like the
  whole answer drawn at once: at a blank line followed by a line that is not indented (an
  indented one may continue a list item), before a fence or a heading, after a heading, and
  after a closing fence. Inside a fence nothing is cut for blank lines.
- The block still arriving stays smaller than `budget` screen rows (estimated at `width`
  columns): past that its finished lines are cut off as a `joined` block (drawn with no gap
  before it). A fenced code block cut so carries its language on (`code`); a table its header.
No rich, no terminal: plain text in, blocks out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r"^( *)(`{3,}|~{3,})([^`]*)$")
_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")


@dataclass
class Code:
    """A part of a fenced code block that was cut for size: its lines are code in `lexer`."""

    lexer: str
    first: bool  # the part that opens the block (drawn with the top margin)
    last: bool  # the part that closes it (drawn with the bottom margin)


@dataclass
class Block:
    text: str  # Markdown source, or the code itself when `code` is set
    joined: bool = False  # the rest of the block before it, cut for size: no gap between
    code: Code | None = None


class Splitter:
    """Feed the answer as it arrives; get back the blocks it finished."""

    def __init__(self, budget: int = 20, width: int = 80) -> None:
        self.budget = max(3, budget)
        self.width = max(20, width - 4)
        self._lines: list[str] = []  # finished lines of the open block
        self._rows = 0  # their estimated height on the screen
        self._partial = ""  # the line still arriving
        self._blank = False  # a blank line came after the open block's last line
        self._heading = False  # the last line was an ATX heading
        self._fence: tuple[str, int, str] | None = None  # (char, length, lexer) when inside one
        self._code: Code | None = None  # the open block is a code part after a cut
        self._table_head: list[str] = []  # header and rule of a table the open block holds
        self._joined = False  # the open block continues one cut for size

    # ----- in -----------------------------------------------------------------------------
    def feed(self, text: str) -> list[Block]:
        done: list[Block] = []
        start = 0
        while True:
            end = text.find("\n", start)
            if end < 0:
                break
            line, self._partial = self._partial + text[start:end], ""
            self._line(line, done)
            start = end + 1
        self._partial += text[start:]
        if len(self._partial) > self.budget * self.width:
            self._cut_partial(done)
        return done

    def end(self) -> list[Block]:
        """The answer is complete: the open block, finished."""
        done: list[Block] = []
        if self._partial:
            line, self._partial = self._partial, ""
            self._line(line, done)
        if self._code is not None:  # a fence cut for size that never closed
            self._code.last = True
        if self._lines or self._code is not None:
            done.append(self._take())
        self._fence = None
        return done

    def pending(self) -> Block | None:
        """The open block as it stands (for the live view); None when there is none."""
        lines = [*self._lines, self._partial] if self._partial else list(self._lines)
        if not any(line.strip() for line in lines):
            return None
        if self._code is not None:
            return Block("\n".join(lines), self._joined, Code(self._code.lexer, False, True))
        return Block("\n".join([*self._head(), *lines]), self._joined)

    # ----- the rules ----------------------------------------------------------------------
    def _line(self, line: str, done: list[Block]) -> None:
        if self._fence is not None:
            self._add(line)
            if self._is_closing(line):
                self._fence = None
                if self._code is not None:
                    self._code.last = True
                    self._lines.pop()  # the closing fence itself is not code
                done.append(self._take())
            elif self._rows > self.budget:
                self._cut_code(done)
            return
        if not line.strip():
            self._blank = bool(self._lines)
            return
        fence = _FENCE.match(line)
        if self._lines and self._starts_block(line, fence is not None):
            done.append(self._take())
        if self._blank:
            self._add("")
            self._blank = False
        self._add(line)
        self._heading = bool(_HEADING.match(line))
        if (
            "|" in line
            and len(self._lines) > 1
            and "|" in self._lines[-2]
            and _TABLE_RULE.match(line)
        ):
            self._table_head = self._lines[-2:]
        if fence is not None:
            self._fence = (fence.group(2)[0], len(fence.group(2)), fence.group(3).strip())
        elif self._rows > self.budget:
            self._cut(done)

    def _starts_block(self, line: str, is_fence: bool) -> bool:
        if self._blank and not line[0].isspace():
            return True
        if self._heading:
            return True
        return (is_fence and not line[0].isspace()) or bool(_HEADING.match(line))

    def _is_closing(self, line: str) -> bool:
        if self._fence is None and self._code is None:
            return False
        char, length, _ = self._fence or ("`", 3, "")
        found = _FENCE.match(line.strip())
        return bool(found and found.group(2)[0] == char and len(found.group(2)) >= length) and (
            not found.group(3).strip()
        )

    def _add(self, line: str) -> None:
        self._lines.append(line)
        self._rows += max(1, -(-len(line) // self.width))

    def _head(self) -> list[str]:
        """A table cut for size repeats its header, so each part still draws as a table."""
        return self._table_head if self._joined and self._table_head else []

    def _take(self) -> Block:
        if self._code is not None:
            block = Block("\n".join(self._lines), self._joined, self._code)
        else:
            block = Block("\n".join([*self._head(), *self._lines]), self._joined)
        self._lines, self._rows, self._blank, self._heading = [], 0, False, False
        self._code, self._joined, self._table_head = None, False, []
        return block

    def _cut(self, done: list[Block]) -> None:
        """The open block is taller than the budget: its lines so far are finished; what
        follows joins them with no gap (a table carries its header on)."""
        head = self._table_head
        done.append(self._take())
        self._joined, self._table_head = True, head

    def _cut_code(self, done: list[Block]) -> None:
        """A fenced code block taller than the budget: its lines so far become a code part."""
        assert self._fence is not None
        if self._code is None:  # the first part: drop the opening fence line
            self._code = Code(self._fence[2].partition(" ")[0] or "text", True, False)
            self._lines.pop(0)
        code = self._code
        done.append(self._take())
        self._code, self._joined = Code(code.lexer, False, False), True

    def _cut_partial(self, done: list[Block]) -> None:
        """One line longer than the whole budget (no newline for a long while): end the line
        at its last space, so the live view never holds more than the budget."""
        cut = self._partial.rfind(" ", 0, self.budget * self.width)
        cut = cut + 1 if cut > 0 else self.budget * self.width
        line, self._partial = self._partial[:cut].rstrip(" "), self._partial[cut:]
        self._line(line, done)
        if self._fence is not None:
            if self._code is not None or len(self._lines) > 1:
                self._cut_code(done)
        elif self._lines:
            self._cut(done)
