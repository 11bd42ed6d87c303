"""The embedded SQLite store: one file, WAL mode (readers never block on the loader)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from npistack.errors import StoreError
from npistack.storage.base import SqlStore
from npistack.storage.schema import history_ddl

_AS_TUPLE = itemgetter(slice(None))  # row[:]: a (named or plain) tuple as a plain tuple
MAP_ALL = 1 << 40  # a memory map over the whole file (SQLite lowers it to its own maximum)


class SqliteStore(SqlStore):
    dialect = "sqlite"

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.read_only = read_only
        self._seen = {}
        self._log_growing = threading.Event()  # set while log_room grows the WAL
        # What this open created (a new file and the folders above it), for ``remove_if_unused``.
        self._created_dirs: list[Path] = []
        self.created = False
        if self.path.is_dir():
            raise StoreError(f"cannot open SQLite store {self.path}: it is a folder, not a database file")
        try:
            if read_only:
                if not self.path.exists():
                    raise StoreError(
                        f"no store at {self.path} (run `npistack ingest` or `npistack demo` first)"
                    )
                self.conn = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
                )
            else:
                for parent in (self.path.parent, *self.path.parent.parents):
                    if parent.exists():
                        break
                    self._created_dirs.append(parent)
                self.created = not self.path.exists()
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=30
                )
                self.conn.execute("PRAGMA journal_mode=WAL")
            # A file that is not a database opens; its first read fails (DatabaseError).
            self.conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            self.conn.execute("PRAGMA busy_timeout=30000")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA cache_size=-262144")  # 256 MiB page cache
            self.conn.execute("PRAGMA temp_store=FILE")
            # Readers map the file (fast lookups); a writer does not, so a load's RSS stays small. The
            # whole file: a load writes the indexes last, so they sit at its end (past 1.5 GB in a 1M
            # store), and an unmapped page costs a system call and a copy. SQLite caps the map at its
            # SQLITE_MAX_MMAP_SIZE (2 GB in common builds); pages past it are read as usual.
            self.conn.execute(f"PRAGMA mmap_size={MAP_ALL if read_only else 0}")
            if not read_only:
                # Checkpoint every ~64 MB of WAL rather than every 4 MB: a load commits once per block,
                # and each checkpoint fsyncs.
                self.conn.execute("PRAGMA wal_autocheckpoint=16384")
        except sqlite3.DatabaseError as e:
            with contextlib.suppress(Exception):
                self.conn.close()
            if "not a database" in str(e) or "malformed" in str(e):
                raise StoreError(
                    f"cannot open SQLite store {self.path}: the file is not a SQLite database; point"
                    " -d / NPISTACK_DATABASE_URL at an npistack store, or at a new file to create one"
                ) from None
            raise StoreError(f"cannot open SQLite store {self.path}: {e}") from None
        except OSError as e:
            raise StoreError(f"cannot open SQLite store {self.path}: {e.strerror or e}") from None
        if not read_only:
            self.ensure_schema()

    def remove_if_unused(self) -> bool:
        """Close this store and delete it, when this open created it and no load has succeeded in
        it (a failed first ingest leaves nothing behind); True when it was deleted."""
        if not self.created or self.read_only:
            return False
        try:
            used = bool(
                self._query("SELECT 1 FROM loads WHERE status <> 'failed' LIMIT 1")
                or self._query("SELECT 1 FROM webhook_subscriptions LIMIT 1")
            )
        except StoreError:
            used = True  # cannot tell: keep it
        if used:
            return False
        self.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.path}{suffix}").unlink()
        for folder in self._created_dirs:  # innermost first; only if still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        return True

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def write_behind(self, every: float = 0.25) -> Iterator[None]:
        """Flush the WAL and the database file to disk every ``every`` seconds while a large
        transaction runs and commits: its WAL frames go to disk while it computes, and its
        checkpoint's copies while it copies, instead of all at the fsyncs of the checkpoint.
        Only when the bytes reach the disk changes, not what is durable when. The WAL is left
        alone while ``log_room`` grows it: its zeros are overwritten by frames soon after, and
        written to disk once, as frames."""
        stop = threading.Event()

        def flush() -> None:
            fds: dict[str, int] = {}
            try:
                while not stop.wait(every):
                    for path in (f"{self.path}-wal", str(self.path)):
                        if path.endswith("-wal") and self._log_growing.is_set():
                            continue
                        with contextlib.suppress(OSError):
                            if path not in fds:
                                fds[path] = os.open(path, os.O_RDONLY)
                            os.fdatasync(fds[path])
            finally:
                for fd in fds.values():
                    os.close(fd)

        thread = threading.Thread(target=flush, name="npistack-write-behind", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    @contextlib.contextmanager
    def log_room(self, nbytes: int) -> Iterator[None]:
        """Grow the WAL to about ``nbytes`` with zeros, in a thread at the lowest priority, while a
        large transaction computes and writes.

        Why: a WAL frame is a 24-byte header and a page, so every frame written past the end of
        the file covers file blocks partly, and the file system first allocates and zeroes each
        new block; a frame written over a block that exists is a copy only. On the 2-core
        machine, a 35k-row weekly apply writes ~770 MB of frames: appended, that was ~1.5 s of the
        writing thread (perf: ``__pi_memset`` under ``pwrite64``), over grown room ~0.4 s. Reserved
        blocks (``fallocate``) cost less to make but ~0.2 s more at the commit, when the file system
        marks them written. At the lowest priority the thread takes what the transform's processes
        leave, then the core the single-threaded writes leave idle, ahead of them.

        Safe while SQLite writes frames: the zeros are appended (``O_APPEND``: each write lands at
        the end of the file as it is at that instant, under the file's lock), so they never cover
        a byte SQLite wrote, and what lies after the last valid frame SQLite ignores (zeros fail
        the frame checksum), as with a WAL file it reuses. The WAL is not flushed meanwhile
        (``write_behind``): its zeros are overwritten by frames soon after. At most the database
        file's size, and half the free disk space; an error only loses the speed-up. SQLite
        deletes the WAL when the last connection closes."""
        wal = f"{self.path}-wal"
        stop = threading.Event()
        try:
            nbytes = min(nbytes, self.path.stat().st_size, shutil.disk_usage(self.path.parent).free // 2)
        except OSError:
            nbytes = 0

        def grow() -> None:
            if sys.platform == "linux":  # where a thread has its own nice value (not macOS)
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            try:
                with contextlib.suppress(OSError):
                    fd = os.open(wal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                    try:
                        zeros = bytes(1 << 20)
                        while not stop.is_set() and (size := os.fstat(fd).st_size) < nbytes:
                            os.write(fd, zeros[: nbytes - size])
                    finally:
                        os.close(fd)
            finally:
                self._log_growing.clear()

        thread = threading.Thread(target=grow, name="npistack-wal-room", daemon=True)
        if nbytes > 0:
            self._log_growing.set()
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread.is_alive():
                thread.join()

    @contextlib.contextmanager
    def mapped_reads(self, size: int = MAP_ALL) -> Iterator[None]:
        """Map the file for reads during an incremental load (SQLite caps the map at its
        ``SQLITE_MAX_MMAP_SIZE``, 2 GB in common builds): a weekly bundle's reads touch pages all
        over the store, and a mapped page costs a memory access where ``pread`` costs a system call
        and a copy (0.6-0.8 s of a 35k-row weekly on a 1M store, docs/benchmarks.md). Writes still
        go to the WAL. The mapped pages are the OS's file cache, shared, not the process's memory;
        outside loads the writer maps nothing, so a long-lived writer's RSS stays small."""
        self.conn.execute(f"PRAGMA mmap_size={size}")
        try:
            yield
        finally:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("PRAGMA mmap_size=0")

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> Any:
        try:
            return self.conn.execute(sql, params)
        except sqlite3.Error as e:
            raise StoreError(f"SQLite error: {e}") from e

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                raise StoreError(f"{self.path} is not an npistack store (or has no schema yet)") from None
            raise StoreError(f"SQLite error: {e}") from e

    def _stream(
        self, sql: str, params: Sequence[Any] = (), batch: int = 5000
    ) -> Iterator[list[tuple[Any, ...]]]:
        cur = self.conn.execute(sql, params)
        while rows := cur.fetchmany(batch):
            yield rows

    def _exec_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            self.conn.executemany(sql, rows)
        except sqlite3.Error as e:
            raise StoreError(f"SQLite error: {e}") from e

    def _bulk_insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        marks = ",".join("?" * len(columns))
        # sqlite3 binds an exact tuple through its fast path and a named tuple (records' row types)
        # as a generic sequence, item by item: 6.2 against 3.7 us for an 11-column row. ``row[:]``
        # makes the plain tuple in C (0.2 us; an exact tuple is returned as it is).
        self.conn.executemany(
            f"INSERT INTO {table} ({','.join(columns)}) VALUES ({marks})", map(_AS_TUPLE, rows)
        )

    def _begin(self) -> None:
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def _insert_returning_id(self, sql: str, params: Sequence[Any]) -> int:
        cur = self._exec(sql, params)
        return int(cur.lastrowid)

    def _table_exists(self, name: str) -> bool:
        return bool(self._query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))

    # SQLite has one writer at a time; a second loader is refused by the owner check below.
    def _acquire_load_lock(self, load_id: int) -> None:
        pass

    def _release_load_lock(self) -> None:
        pass

    def _other_load_alive(self, owner: str) -> bool:
        host, _, pid = owner.rpartition(":")
        if not pid.isdigit() or int(pid) == os.getpid():
            return False
        import socket

        if host and host != socket.gethostname():
            return True  # cannot check another machine: assume alive
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _after_swap(self) -> None:
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.execute("PRAGMA optimize")

    def _app_ddl(self) -> list[str]:
        return [
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            """CREATE TABLE IF NOT EXISTS loads (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                kind TEXT NOT NULL, status TEXT NOT NULL, source TEXT NOT NULL, release_date TEXT,
                checksum TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT,
                rows_read INTEGER NOT NULL DEFAULT 0, rows_loaded INTEGER NOT NULL DEFAULT 0,
                rows_quarantined INTEGER NOT NULL DEFAULT 0, files TEXT NOT NULL DEFAULT '[]',
                timings TEXT NOT NULL DEFAULT '{}', message TEXT, is_current INTEGER NOT NULL DEFAULT 0)""",
            """CREATE TABLE IF NOT EXISTS quarantine (
                load_id INTEGER NOT NULL REFERENCES loads(id), file TEXT NOT NULL, line INTEGER NOT NULL,
                reason TEXT NOT NULL, raw TEXT NOT NULL)""",
            "CREATE INDEX IF NOT EXISTS ix_quarantine_load ON quarantine (load_id, file, line)",
            *history_ddl("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER", "REAL"),
        ]

    def _data_ddl(self, prefix: str) -> list[str]:
        p = prefix
        return [
            f"""CREATE TABLE {p}providers (npi INTEGER NOT NULL, entity_type INTEGER, status TEXT NOT NULL,
                last_updated TEXT, primary_taxonomy TEXT, practice_state TEXT)""",
            f"CREATE TABLE {p}provider_docs (npi INTEGER NOT NULL, doc TEXT NOT NULL)",
            f"""CREATE TABLE {p}provider_names (npi INTEGER NOT NULL, entity_type INTEGER NOT NULL,
                name_type TEXT NOT NULL, name_key TEXT NOT NULL, first_key TEXT NOT NULL)""",
            f"""CREATE TABLE {p}provider_taxonomies (npi INTEGER NOT NULL, slot INTEGER NOT NULL, code TEXT NOT NULL,
                license_key TEXT NOT NULL, license_state TEXT NOT NULL, is_primary INTEGER NOT NULL)""",
            f"""CREATE TABLE {p}provider_locations (npi INTEGER NOT NULL, purpose TEXT NOT NULL, seq INTEGER NOT NULL,
                city_key TEXT NOT NULL, state TEXT NOT NULL, zip5 TEXT NOT NULL, cell INTEGER, lat REAL, lon REAL,
                postal TEXT NOT NULL, country TEXT NOT NULL)""",
            f"""CREATE TABLE {p}provider_extras (npi INTEGER NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL,
                doc TEXT NOT NULL)""",
            f"CREATE TABLE {p}provider_name_keys (klass INTEGER NOT NULL, name_key TEXT NOT NULL)",
        ]
