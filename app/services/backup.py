"""Consistent backups of the database: SQLite's online backup, or pg_dump for PostgreSQL.

SQLite: the backup API copies the pages of a consistent snapshot while the app keeps working
(WAL included), unlike copying the file. PostgreSQL: `pg_dump` in its custom format (one
snapshot, restored with `pg_restore`). The backup holds ciphertexts and blind indexes only;
it is readable with the same PII keys, which are kept apart from it.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess  # noqa: S404 - pg_dump, with arguments we build
from pathlib import Path

from sqlalchemy.engine import make_url


class BackupFailed(Exception):
    """The backup could not be written (the message names no password)."""


def write(database_url: str, destination: Path) -> Path:
    """Write a consistent backup of `database_url` to `destination`; return it."""
    url = make_url(database_url)
    destination.parent.mkdir(parents=True, exist_ok=True)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise BackupFailed("an in-memory database has nothing to back up")
        _sqlite(Path(url.database), destination)
    elif url.get_backend_name() == "postgresql":
        _pg_dump(database_url, destination)
    else:
        raise BackupFailed(f"no backup for {url.get_backend_name()}")
    return destination


def _sqlite(source: Path, destination: Path) -> None:
    if not source.exists():
        raise BackupFailed("the SQLite database file does not exist")
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as live, sqlite3.connect(destination) as copy:
        live.backup(copy, pages=1024)  # in steps: writers are not held off for the whole copy


def _pg_dump(database_url: str, destination: Path) -> None:
    program = shutil.which("pg_dump")
    if program is None:
        raise BackupFailed("pg_dump is not installed")
    url = make_url(database_url)
    # libpq takes a plain postgresql:// URI; the password goes in its environment, not argv.
    plain = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    env = {"PGPASSWORD": url.password or "", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(  # noqa: S603 - fixed program, no shell
        [program, "--format=custom", "--no-owner", f"--file={destination}", f"--dbname={plain}"],
        env=env,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise BackupFailed(f"pg_dump failed with exit status {done.returncode}")
