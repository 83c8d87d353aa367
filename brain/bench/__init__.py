"""`brain bench`: how fast (and, if asked, how good) each model is on the user's kind of work.

Owns the shipped benchmark prompts (prompts.toml, the overnight notes in material/, the judge's
instructions in judge.md), the measurement of streamed answers (measure.py), the optional
judgement by a model (judge.py) and the Markdown/SVG/JSON report (report.py). Imports no click
and no rich: progress goes to a callback, and the command draws it.
"""
