"""A `command` source against a real PostgreSQL (the seed's TP3 deltas): `psql` for the rows
changed since the last digest, and `brain digest` sends exactly those.

The server is Debian's `postgresql` package, started here in a temporary directory as an
unprivileged user (initdb refuses root; as root the test runs it as `nobody`), on a free port,
and stopped after. Without it the test skips and says what to install.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fakes import FakeApex


def _bin_dir() -> Path | None:
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(found) / "initdb").exists() and (Path(found) / "pg_ctl").exists():
            return Path(found)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


@dataclass
class Postgres:
    bin: Path
    port: int

    def psql_argv(self) -> list[str]:
        psql = self.bin / "psql" if (self.bin / "psql").exists() else Path("psql")
        return [str(psql), "-X", "-At", "-h", "127.0.0.1", "-p", str(self.port), "-U", "brain"]

    def sql(self, statement: str) -> str:
        done = subprocess.run(
            [*self.psql_argv(), "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c", statement],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed; to run this test: apt-get install -y postgresql")
    root = Path(tempfile.mkdtemp(prefix="brain-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb will not run as root: run the server as nobody
        import pwd

        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        # runuser lives in /usr/sbin, which a plain user's PATH (or `env -i`) may lack
        runuser = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
        if runuser is None:
            pytest.skip("PostgreSQL refuses to run as root and runuser (util-linux) is absent")
        as_user = [runuser, "-u", "nobody", "--"]
    data, log, port = root / "data", root / "server.log", _free_port()

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*as_user, *argv], capture_output=True, text=True, timeout=120)

    done = run(
        str(bin_dir / "initdb"),
        "-D",
        str(data),
        "-U",
        "brain",
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
    )
    assert done.returncode == 0, done.stderr
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    done = run(
        str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start"
    )
    assert done.returncode == 0, done.stderr + (log.read_text() if log.exists() else "")
    try:
        yield Postgres(bin_dir, port)
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_psql_source_sends_exactly_the_rows_changed_since_the_last_digest(
    postgres: Postgres, apex: FakeApex, brain, write_config
) -> None:
    postgres.sql(
        "CREATE TABLE tasks (id serial PRIMARY KEY, title text NOT NULL,"
        " updated_at timestamptz NOT NULL);"
        "INSERT INTO tasks (title, updated_at) VALUES"
        " ('order pH strips', now() - interval '2 hours'),"
        " ('call Sam re field trip', now() - interval '20 hours'),"
        " ('grade essays', now() - interval '30 minutes'),"
        " ('OLD book the bus', now() - interval '3 days'),"
        " ('OLD rubric draft', now() - interval '26 hours');"
    )
    query = (
        "SELECT to_json(t) FROM tasks t WHERE updated_at >= '$BRAIN_DIGEST_SINCE' "
        "ORDER BY updated_at"
    )
    command = " ".join(postgres.psql_argv()) + f' -d postgres -c "{query}"'
    write_config(f"[[digest.sources]]\nname = \"tp3\"\ncommand = '''{command}'''\n")
    apex.answer("daily_digest", ["TP3: three tasks moved"])

    r = brain("digest")
    assert r.code == 0, r.stderr
    assert r.stdout == "TP3: three tasks moved\n"
    user = apex.requests[-1]["messages"][1]["content"]
    rows = user.split("--- tp3 ---\n", 1)[1].strip().splitlines()
    assert [row.split('"title":"')[1].split('"')[0] for row in rows] == [
        "call Sam re field trip",
        "order pH strips",
        "grade essays",
    ]
    assert "OLD" not in user
    assert "tp3 (command `" in r.stderr and "first digest: 24 h back" in r.stderr

    # Nothing changed since: no model is asked.
    r = brain("digest")
    assert r.code == 0 and r.stdout == "" and len(apex.requests) == 1, r.stderr
    assert "nothing new to digest" in r.stderr

    # One row changes: only it is sent.
    postgres.sql(
        "UPDATE tasks SET title = 'OLD book the bus (now booked)', updated_at = now()"
        " WHERE title = 'OLD book the bus'"
    )
    r = brain("digest")
    assert r.code == 0 and len(apex.requests) == 2, r.stderr
    user = apex.requests[-1]["messages"][1]["content"]
    rows = user.split("--- tp3 ---\n", 1)[1].strip().splitlines()
    assert len(rows) == 1 and "now booked" in rows[0]
    assert "(the last digest)" in r.stderr
