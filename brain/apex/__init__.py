"""The Apex side, written and checked from brain's task table.

`catalog` holds the providers and deployments Apex can route to (with their free-tier limits
as data), `render` turns the task table plus the catalog into the files Apex runs (LiteLLM
config.yaml, .env.example, docker-compose.yml, a Windows scheduled-task script, a systemd
unit), and `check` asks every route a tiny question and reports who answered (the smoke test
and the fallback drill). None of these import click or rich; brain/commands/apex.py is the
command line around them.
"""
