"""The project-local PostgreSQL + PostGIS cluster used when no DATABASE_URL is given.

It lives under ./var/, listens on a Unix socket only (so several checkouts never collide on a TCP
port) and runs as the `postgres` system user when we are root, because PostgreSQL refuses root.

Only the service users get in: the socket and its directory are 0700 (the kernel refuses every
other OS user before PostgreSQL sees them), and pg_hba.conf allows nothing but `local … peer` with
an ident map naming the OS user that runs Qiwang (and `postgres`, the cluster's own account) and
the database roles it may use: `qiwang` (the superuser, for migrations and administration) and
`qiwang_app` (what the application connects as: the authenticator of migration 0016), and the
accounts given a database login (`user add --db-login`, members of qiwang_db_login), by password
(SCRAM), with their own scope.
Peer authentication needs no secret that could leak (the kernel says who is on the other end of
the socket), so URLs stay free of passwords.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from core.errors import QiwangError

PG_ROOT = Path("/usr/lib/postgresql")
MIN_PG_MAJOR = 15
PORT = 5432
SUPERUSER = "qiwang"
APP_ROLE = "qiwang_app"   # created by migration 0011
DATABASE = "qiwang"
IDENT_MAP = "qiwang"
# sun_path holds 107 bytes; the socket file is "<dir>/.s.PGSQL.5432".
MAX_SOCKET_DIR = 107 - len(f"/.s.PGSQL.{PORT}")

# Bulk-load tuning for a 2-core, 24 GB machine; fsync stays on. Written to qiwang.conf, which
# postgresql.conf includes, so changing it here reaches existing clusters at their next start.
TUNING = {
    "shared_buffers": "1GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "1GB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "synchronous_commit": "off",
    "max_connections": "100",
    "listen_addresses": "''",
    "port": str(PORT),
    "unix_socket_permissions": "0700",
}
# Run in a database about to be dropped: its accounts' roles go with it (migration 0016).
DROP_ACCOUNT_ROLES = """
    DO $$ BEGIN
        IF to_regclass('auth.account') IS NOT NULL THEN
            PERFORM auth.drop_account_role(db_role) FROM auth.account;
        END IF;
    END $$"""

PG_HBA = f"""# Written by Qiwang (db/cluster.py) at each start: Unix socket; the service's own logins peer with
# the ident map; accounts with a database login (qiwang user add --db-login) by their password;
# everyone else peer, which the ident map refuses. The first line comes first because qiwang_app,
# through the account roles it may switch to, is a member of qiwang_db_login too.
# TYPE  DATABASE  USER                  METHOD
local   all       {SUPERUSER},{APP_ROLE}      peer map={IDENT_MAP}
local   all       +qiwang_db_login      scram-sha-256
local   all       all                   peer map={IDENT_MAP}
"""


def _pg_bin() -> Path:
    """The bin dir of the highest installed PostgreSQL major version >= 15."""
    majors = sorted(
        (int(p.name) for p in PG_ROOT.glob("*") if p.name.isdigit() and (p / "bin" / "pg_ctl").exists()),
        reverse=True,
    )
    if not majors or majors[0] < MIN_PG_MAJOR:
        raise QiwangError(
            f"no PostgreSQL >= {MIN_PG_MAJOR} server under {PG_ROOT}; "
            "run ./qiwang, which installs postgresql-15 and PostGIS"
        )
    return PG_ROOT / str(majors[0]) / "bin"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


class EmbeddedCluster:
    """Create, start, stop and reset the cluster; hand out SQLAlchemy URLs for its databases."""

    def __init__(self, project_root: Path) -> None:
        self.project_root = project_root.resolve()
        self.as_postgres = os.geteuid() == 0
        self.base_dir, self.relocated_because = self._choose_base()
        self.data_dir = self.base_dir / "pgdata"
        self.socket_dir = self.base_dir / "run"
        self.log_file = self.base_dir / "log" / "postgresql.log"

    # -- where the cluster lives ---------------------------------------------------------------

    def _choose_base(self) -> tuple[Path, str | None]:
        """./var, or /var/tmp/qiwang-<hash> when postgres cannot reach ./var or the socket path is too long."""
        base = self.project_root / "var"
        fallback = Path("/var/tmp") / f"qiwang-{hashlib.sha1(str(self.project_root).encode()).hexdigest()[:12]}"
        if len(str(base / "run")) > MAX_SOCKET_DIR:
            return fallback, f"the socket path under {base} would exceed the Unix limit of 107 bytes"
        if self.as_postgres and not self._postgres_can_enter(self.project_root):
            return fallback, f"the postgres user cannot enter {self.project_root}"
        return base, None

    @staticmethod
    def _postgres_can_enter(directory: Path) -> bool:
        try:
            command = ["runuser", "-u", "postgres", "--", "test", "-x", str(directory)]
            return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True).returncode == 0
        except FileNotFoundError:  # no runuser: util-linux is essential on Debian, so this is odd
            return False

    def _postgres_ids(self) -> tuple[int, int]:
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            raise QiwangError(
                "the postgres system user does not exist; run ./qiwang, which installs postgresql-15"
            ) from None
        return entry.pw_uid, entry.pw_gid

    def _prepare_dirs(self) -> None:
        """Make var/ dirs; as root, hand the data, socket and log files to postgres."""
        try:
            for directory in (self.base_dir, self.log_file.parent, self.socket_dir):
                directory.mkdir(parents=True, exist_ok=True)
            self.base_dir.chmod(0o755)  # postgres must traverse it even under a strict umask
            self.socket_dir.chmod(0o700)  # no other OS user reaches the socket
            self.data_dir.mkdir(mode=0o700, exist_ok=True)
            self.log_file.touch(exist_ok=True)
            self.log_file.chmod(0o600)
            if self.as_postgres:
                uid, gid = self._postgres_ids()
                for path in (self.data_dir, self.socket_dir, self.log_file):
                    os.chown(path, uid, gid)
        except OSError as exc:
            raise QiwangError(f"cannot prepare {self.base_dir}: {exc.strerror}: {exc.filename}") from None

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Serialise slow-path work (initdb, start, stop) between concurrent qiwang processes."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        with open(self.base_dir / "cluster.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    # -- running the server binaries -----------------------------------------------------------

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(_pg_bin() / args[0]), *args[1:]]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        # cwd: postgres may not be allowed into the caller's cwd (e.g. /root).
        return subprocess.run(command, cwd=self.base_dir, capture_output=True, text=True, stdin=subprocess.DEVNULL)

    def _append_log(self, title: str, output: str) -> None:
        with open(self.log_file, "a") as log:
            log.write(f"--- qiwang: {title}\n{output}\n")

    def _initdb(self) -> None:
        done = self._run(
            "initdb", "-D", str(self.data_dir), "--auth=peer", f"--username={SUPERUSER}",
            "--encoding=UTF8", "--locale=C.UTF-8",
        )
        self._append_log("initdb", done.stdout + done.stderr)
        if done.returncode != 0:
            raise QiwangError(f"initdb failed: {_last_line(done.stderr or done.stdout)} (see {self.log_file})")
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# Qiwang: db/cluster.py writes qiwang.conf at each start\ninclude 'qiwang.conf'\n")

    def _write_tuning(self) -> None:
        settings = {**TUNING, "unix_socket_directories": "'" + str(self.socket_dir).replace("'", "''") + "'"}
        path = self.data_dir / "qiwang.conf"
        path.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        if self.as_postgres:
            os.chown(path, *self._postgres_ids())

    def service_users(self) -> list[str]:
        """OS users allowed in: whoever runs Qiwang, and postgres when the cluster runs as it."""
        users = [pwd.getpwuid(os.geteuid()).pw_name]
        if self.as_postgres:
            users.append("postgres")
        return users

    def _write_auth(self) -> bool:
        """pg_hba.conf and pg_ident.conf as they must be; True when either changed."""
        ident = "# Written by Qiwang (db/cluster.py): OS user → database roles it may log in as.\n"
        ident += "".join(f"{IDENT_MAP}  {user}  {role}\n" for user in self.service_users()
                         for role in (SUPERUSER, APP_ROLE))
        changed = False
        for name, text in (("pg_hba.conf", PG_HBA), ("pg_ident.conf", ident)):
            path = self.data_dir / name
            try:
                if path.read_text() == text:
                    continue
            except OSError:
                pass
            path.write_text(text)
            path.chmod(0o600)
            if self.as_postgres:
                os.chown(path, *self._postgres_ids())
            changed = True
        return changed

    def _secure_running(self) -> None:
        """A cluster started before the socket was closed: close the directory, reload pg_hba."""
        try:
            self.socket_dir.chmod(0o700)
            changed = self._write_auth()
        except OSError as exc:
            raise QiwangError(f"cannot secure {self.data_dir}: {exc.strerror}: {exc.filename}") from None
        if changed:
            done = self._run("pg_ctl", "reload", "-D", str(self.data_dir))
            if done.returncode != 0:
                raise QiwangError(f"PostgreSQL did not reload pg_hba.conf: {_last_line(done.stderr)}")

    def running_pid(self) -> int | None:
        """PID of the postmaster serving our data dir, or None.

        A postmaster.pid whose PID is dead or now belongs to another process (after a crash or
        reboot) counts as not running: the live postmaster always has the data dir as its cwd.
        """
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except (OSError, ValueError):
            return None
        return pid if cwd == self.data_dir.resolve() else None

    def _start(self) -> None:
        # Lock files left by a crash whose PID now belongs to another process of the postgres user
        # (or to the dying postmaster) make PostgreSQL refuse to start; running_pid() has just
        # said that no postmaster serves this data dir, so they are stale.
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)
        (self.socket_dir / f".s.PGSQL.{PORT}.lock").unlink(missing_ok=True)
        done = self._run("pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60")
        if done.returncode != 0:
            reason = _last_line(self.log_file.read_text(errors="replace")) if self.log_file.exists() else ""
            raise QiwangError(f"PostgreSQL did not start: {reason or _last_line(done.stderr)} (see {self.log_file})")

    # -- connections -----------------------------------------------------------------------------

    def _connect(self, database: str) -> psycopg.Connection:
        try:
            return psycopg.connect(
                host=str(self.socket_dir), port=PORT, user=SUPERUSER, dbname=database,
                autocommit=True, connect_timeout=3,
            )
        except psycopg.OperationalError as exc:
            raise QiwangError(
                f"cannot connect to the embedded cluster in {self.socket_dir}: "
                f"{_last_line(str(exc))} (is it up? ./qiwang db up)"
            ) from None

    def url(self, database: str = DATABASE, role: str = SUPERUSER) -> str:
        """SQLAlchemy URL (psycopg 3 over the Unix socket) for one database of the cluster.

        `role`: SUPERUSER (migrations, bulk loads, administration) or APP_ROLE (the application).
        """
        return f"postgresql+psycopg://{role}@/{database}?host={quote(str(self.socket_dir), safe='/')}"

    # -- public operations -----------------------------------------------------------------------

    def up(self) -> None:
        """Initialise and start the cluster and its `qiwang` database; a quick no-op when all is up."""
        if self.running_pid() is not None:
            with self._lock():
                self._secure_running()
            try:
                self._connect(DATABASE).close()
                return
            except QiwangError:
                pass  # running but the database is missing or the server is still starting
        with self._lock():
            self._prepare_dirs()
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            if self.running_pid() is None:
                self._write_tuning()
                self._write_auth()
                self._start()
            else:
                self._secure_running()
            self.create_database(DATABASE)

    def down(self) -> None:
        """Stop the server (fast shutdown: open sessions are rolled back); no-op when stopped."""
        with self._lock():
            if self.running_pid() is None:
                return
            done = self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60")
            if done.returncode != 0:
                raise QiwangError(f"PostgreSQL did not stop: {_last_line(done.stderr)} (see {self.log_file})")

    def reset(self) -> None:
        """Throw the whole cluster away and make a fresh one."""
        self.down()
        with self._lock():
            try:
                shutil.rmtree(self.data_dir, ignore_errors=False)
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise QiwangError(f"cannot delete {self.data_dir}: {exc.strerror}: {exc.filename}") from None
        self.up()

    def status(self) -> str:
        """A few lines for people: state, where the files are, the URL."""
        if not (self.data_dir / "PG_VERSION").exists():
            state = "not created yet (./qiwang db up creates it)"
        else:
            pid = self.running_pid()
            state = f"running (pid {pid})" if pid else "stopped (./qiwang db up starts it)"
        lines = [
            f"embedded PostgreSQL: {state}",
            f"data dir: {self.data_dir}",
            f"log:      {self.log_file}",
            f"url:      {self.url(role=APP_ROLE)}  (the application; admin: {self.url()})",
        ]
        if self.relocated_because:
            lines.append(f"note:     the cluster lives under {self.base_dir} because {self.relocated_because}")
        return "\n".join(lines)

    def create_database(self, name: str) -> str:
        """Create database `name` with PostGIS if it does not exist yet; returns its URL."""
        with self._connect("postgres") as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                except psycopg.errors.DuplicateDatabase:
                    pass  # another process created it meanwhile
        with self._connect(name) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            # The application's login exists from the start, so `./qiwang db url` works at once;
            # migration 0011 gives it its limits and grants.
            conn.execute(sql.SQL("DO $$ BEGIN IF to_regrole({role}) IS NULL THEN CREATE ROLE {ident} LOGIN; "
                                 "END IF; END $$").format(role=sql.Literal(APP_ROLE), ident=sql.Identifier(APP_ROLE)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name` if it exists, ending its open connections first, and the roles of
        its accounts (they belong to the cluster, not to the database)."""
        with self._connect("postgres") as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            with self._connect(name) as conn:
                conn.execute(DROP_ACCOUNT_ROLES)
        with self._connect("postgres") as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
