"""`--judge ROUTE`: a model on Apex scores each answer against the prompt's rubric.

This is a model's opinion, not a measurement; the report labels it so. The judge reads the
first successful answer of each prompt and target, at temperature 0, and must reply with a
JSON object (judge.md); anything else is recorded as "the judge did not answer in the
expected form", with the start of what it said.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from brain.backends.base import Backend
from brain.bench.measure import OK, BenchResult, Judgement
from brain.bench.prompts import judge_instructions
from brain.errors import BrainError


def judge_all(
    result: BenchResult,
    endpoint: Backend,
    route: str,
    *,
    on_progress: Callable[[int, int, str], None] = lambda _d, _t, _l: None,
) -> list[Judgement]:
    firsts: dict[tuple[str, str], Any] = {}
    for run in result.runs:
        if run.status == OK:
            firsts.setdefault((run.prompt, run.target), run)
    prompts = {p.name: p for p in result.prompts}
    cells = {(c.prompt.name, c.target.label): c for c in result.cells}
    out = []
    for i, ((prompt_name, target), run) in enumerate(firsts.items()):
        on_progress(i, len(firsts), f"judging {prompt_name} · {target}")
        cell = cells[(prompt_name, target)]
        out.append(
            judge_one(
                endpoint,
                route,
                system=cell.messages[0]["content"],
                user=cell.messages[1]["content"],
                answer=run.answer,
                rubric=prompts[prompt_name].rubric,
                judgement=Judgement(prompt_name, target, run.run, route),
            )
        )
    on_progress(len(firsts), len(firsts), "judged")
    return out


def judge_one(
    endpoint: Backend,
    route: str,
    *,
    system: str,
    user: str,
    answer: str,
    rubric: str,
    judgement: Judgement,
) -> Judgement:
    from brain import backends
    from brain.secrets import redact

    content = (
        f"## The task's instructions\n{system.strip()}\n\n"
        f"## The input\n{user.strip()}\n\n"
        f"## The answer to grade\n{answer.strip()}\n\n"
        f"## Rubric\n{rubric.strip()}\n"
    )
    try:
        reply = backends.chat(
            endpoint,
            route,
            [
                {"role": "system", "content": judge_instructions().strip()},
                {"role": "user", "content": content},
            ],
            temperature=0.0,
            max_tokens=400,
        )
    except BrainError as exc:
        judgement.error = f"the judge could not answer: {redact(exc.message)}"
        return judgement
    judgement.judge_model = reply.model
    parsed = parse_verdict(reply.text)
    if parsed is None:
        snippet = " ".join(reply.text.split())[:160]
        judgement.error = f"the judge did not answer in the expected form: {snippet!r}"
        return judgement
    judgement.scores, judgement.overall, judgement.note = parsed
    return judgement


def parse_verdict(text: str) -> tuple[dict[str, int], int | None, str] | None:
    """The judge's JSON object, found even inside a ```json fence or after a preamble."""
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        try:
            data, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("scores"), dict):
            continue
        scores = {str(k): s for k, v in data["scores"].items() if (s := _score(v)) is not None}
        if scores:
            return scores, _score(data.get("overall")), str(data.get("note") or "")[:300]
    return None


def _score(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and 1 <= value <= 5:
        return round(value)
    if isinstance(value, str) and value.strip().isdigit() and 1 <= int(value) <= 5:
        return int(value)
    return None
