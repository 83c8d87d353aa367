"""The digest that gathers its own material (DESIGN.md, "Digest that gathers its own material").

- `sources`: `[[digest.sources]]` gathered since the last digest (glob, command, url), each
  part labelled with its source; "since the last digest" is remembered per source in the
  store's `state` table.
- `parts`: material longer than the answering backend's context, digested in parts that each
  fit, then the parts' notes digested together (every request through brain.exchange.ask).
- `schedule`: the scheduler entry (cron, systemd user timer, launchd, Task Scheduler) that runs
  `brain digest` every morning.

Knows nothing of click or rich; `brain/commands/digest.py` is the command.
"""
