"""brain.blocks and the drawing in brain.render: an answer drawn block by block, as it
arrives in pieces of any size, looks like the whole answer drawn at once by rich; the block
still arriving never outgrows its budget; the terminal gets no control sequences."""

from __future__ import annotations

import io
import random

import pytest
from rich.console import Console
from rich.markdown import Markdown

from brain.blocks import Splitter
from brain.render import _Drawn, clean, money

DOCS = {
    "paragraphs": "Hello there.\nsecond line\n\nNext para.\n\n\nThird.\n",
    "loose list": "- a\n\n- b\n\n- c\n",
    "tight list then text": "- a\n- b\n- c\n\ntext after\n",
    "ordered, loose": "1. one\n\n2. two\n\n3. three\n",
    "rules": "para\n\n---\n\nnext\n\n***\n- x\n",
    "headings": "# H1\ntext\n## H2\n\nmore\n### H3\n- item\n",
    "fences": "Intro:\n```python\ndef f():\n\n    return 1\n```\nafter\n\n~~~\nraw\n~~~\n",
    "quotes": "> quoted\n> more\n\n> second\n\nend\n",
    "table": "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\nafter\n",
    "list with a fence": "- item\n\n  continued\n\n  ```\n  code\n\n  more\n  ```\n- next\n",
    "indented code": "para\n\n    code block\n    more\n\nafter\n",
    "setext": "Title\n=====\n\nSub\n---\ntext\n",
    "no final newline": "just text without newline",
    "long list": "".join(f"- item {i}\n" for i in range(40)),
    "long ordered list": "".join(f"{i}. item {i}\n" for i in range(1, 40)),
    "long fence": "```python\n" + "".join(f"x{i} = {i}\n" for i in range(40)) + "```\nafter\n",
    "unclosed fence": "```\n" + "".join(f"line {i}\n" for i in range(40)),
}


def console() -> Console:
    return Console(file=io.StringIO(), width=60, height=24, color_system=None)


def whole(doc: str) -> str:
    c = console()
    c.print(Markdown(doc))
    return c.file.getvalue()  # type: ignore[attr-defined]


def streamed(doc: str, seed: int, budget: int = 12) -> str:
    c, drawn, splitter = console(), _Drawn(), Splitter(budget=budget, width=60)
    rnd, i, blocks = random.Random(seed), 0, []
    while i < len(doc):
        n = rnd.randint(1, 12)
        blocks += splitter.feed(doc[i : i + n])
        i += n
    for block in [*blocks, *splitter.end()]:
        c.print(drawn.piece(block))
    return c.file.getvalue()  # type: ignore[attr-defined]


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


@pytest.mark.parametrize("name", DOCS)
def test_block_by_block_looks_like_the_whole_answer(name: str) -> None:
    doc = DOCS[name]
    for seed in range(4):
        assert lines(streamed(doc, seed)) == lines(whole(doc)), f"{name}, seed {seed}"


def test_the_open_block_stays_within_its_budget() -> None:
    # Whatever comes (a 200-line list, a 200-line fence, a paragraph with no blank line, a
    # line that never ends), what is still open and redrawn stays within the budget.
    doc = (
        "".join(f"- item {i} " + "word " * (i % 30) + "\n" for i in range(200))
        + "\n```\n"
        + "".join(f"code line {i}\n" for i in range(200))
        + "```\n\n"
        + "".join(f"a hard-wrapped paragraph line {i}\n" for i in range(200))
        + "\n"
        + "x " * 20000
    )
    splitter = Splitter(budget=10, width=60)
    worst = 0
    for i in range(0, len(doc), 7):
        splitter.feed(doc[i : i + 7])
        block = splitter.pending()
        if block is not None:
            rows = sum(max(1, -(-len(line) // 56)) for line in block.text.split("\n"))
            worst = max(worst, rows)
    assert worst <= 10 + 2  # the budget, plus a table header or the line that tipped it
    rest = splitter.end()
    assert rest and splitter.pending() is None


def test_a_table_cut_for_size_keeps_its_header() -> None:
    doc = "| a | b |\n|---|---|\n" + "".join(f"| {i} | {i * i} |\n" for i in range(30))
    splitter = Splitter(budget=8, width=60)
    blocks = splitter.feed(doc) + splitter.end()
    assert len(blocks) > 2
    assert all(b.text.startswith("| a | b |\n|---|---|") for b in blocks)


def test_clean_shows_control_sequences_instead_of_obeying_them() -> None:
    hostile = "ok\x1b]0;pwned\x07 \x1b]52;c;aGk=\x07 \x1b[2J\x9b31m\x08\x7f\r\nnext\tcol"
    shown = clean(hostile)
    assert not any(ord(c) < 0x20 and c not in "\n\t" for c in shown)
    assert not any(0x7F <= ord(c) <= 0x9F for c in shown)
    assert shown.startswith("ok␛]0;pwned␇ ␛]52;c;aGk=␇ ␛[2J")
    assert shown.endswith("\nnext\tcol")


@pytest.mark.parametrize(
    ("usd", "shown"),
    [(0, "$0"), (0.0123, "$0.0123"), (4.2e-7, "$0.00000042"), (1.5, "$1.5000")],
)
def test_money_never_shows_a_cost_as_zero(usd: float, shown: str) -> None:
    assert money(usd) == shown
