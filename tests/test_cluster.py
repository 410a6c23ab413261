"""The embedded PostgreSQL cluster, for real: the project's own, and a throwaway one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from db.cluster import EmbeddedCluster

ROOT = Path(__file__).resolve().parent.parent


def qiwang(*args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run(
        [str(ROOT / "qiwang"), *args], cwd=ROOT, env=environ, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=300,
    )


def scalar(url: str, query: str) -> object:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query)).scalar()
    finally:
        engine.dispose()


def test_db_up_then_status_says_running() -> None:
    up = qiwang("db", "up")
    assert up.returncode == 0, up.stderr
    status = qiwang("db", "status")
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("embedded PostgreSQL: running (pid ")


def test_url_connects_with_postgis() -> None:
    url = qiwang("db", "url").stdout.strip()
    assert str(scalar(url, "SELECT postgis_full_version()")).startswith("POSTGIS=")
    assert scalar(url, "SHOW listen_addresses") == ""


@pytest.fixture
def throwaway(tmp_path: Path) -> Iterator[EmbeddedCluster]:
    """A second cluster in its own project root; removed afterwards."""
    cluster = EmbeddedCluster(tmp_path)
    yield cluster
    cluster.down()
    shutil.rmtree(cluster.base_dir, ignore_errors=True)


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_throwaway_cluster_lifecycle(throwaway: EmbeddedCluster) -> None:
    cluster = throwaway
    assert "not created yet" in cluster.status()
    cluster.up()
    assert cluster.running_pid() is not None
    assert str(cluster.data_dir) in cluster.status()
    if cluster.relocated_because:  # as root, pytest's tmp dir is closed to the postgres user
        assert cluster.relocated_because in cluster.status()

    # A database of its own, with PostGIS, reachable by URL, and dropped while a session is open.
    url = cluster.create_database("scratch")
    assert scalar(url, "SELECT PostGIS_Lib_Version()")
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
        cluster.drop_database("scratch")
        with pytest.raises(sa.exc.OperationalError, match="terminating connection"):
            conn.execute(sa.text("SELECT 1"))
    engine.dispose()
    assert scalar(cluster.url("postgres"), "SELECT count(*) FROM pg_database WHERE datname = 'scratch'") == 0

    # A crash leaves a postmaster.pid behind; after a reboot its PID may belong to some other
    # process of the same user. Neither may block the next start.
    pid = cluster.running_pid()
    assert pid is not None
    children = [child.pid for child in psutil.Process(pid).children()]  # before they are re-parented
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    for child in children:
        wait_gone(child)
    owner = "postgres" if cluster.as_postgres else None
    impostor = subprocess.Popen(["sleep", "120"], user=owner)
    try:
        pid_file = cluster.data_dir / "postmaster.pid"
        lines = pid_file.read_text().split("\n")
        pid_file.write_text("\n".join([str(impostor.pid), *lines[1:]]))
        assert cluster.running_pid() is None
        assert "stopped" in cluster.status()
        cluster.up()
        assert cluster.running_pid() not in (None, impostor.pid)
        assert scalar(cluster.url(), "SELECT 1") == 1
    finally:
        impostor.kill()
        impostor.wait()

    # reset gives an empty cluster again.
    cluster.create_database("gone_after_reset")
    cluster.reset()
    assert scalar(cluster.url("postgres"), "SELECT count(*) FROM pg_database WHERE datname = 'gone_after_reset'") == 0

    cluster.down()
    assert cluster.running_pid() is None
    assert "stopped" in cluster.status()


@pytest.fixture
def project_copy(tmp_path: Path) -> Iterator[Path]:
    """A checkout of its own (the app package copied: it finds its project root from its own path;
    the rest linked), so `qiwang test` there runs a cluster of its own."""
    root = tmp_path / "checkout"
    root.mkdir()
    shutil.copytree(ROOT / "app", root / "app", ignore=shutil.ignore_patterns("__pycache__"))
    # Every other top-level package linked: the shared venv's editable install would otherwise
    # import them from the main checkout, not from the one under test.
    for name in ("core", "db", "network_analysis", "spatial", "ingest", "telemetry", "demo", "emergency", "migrations",
                 "alembic.ini", "data"):
        (root / name).symlink_to(ROOT / name)
    (root / "tests").mkdir()
    yield root
    cluster = EmbeddedCluster(root)
    cluster.down()
    shutil.rmtree(cluster.base_dir, ignore_errors=True)


def run_test_command(root: Path, test: str) -> subprocess.CompletedProcess[str]:
    (root / "tests" / "test_inner.py").write_text(test)
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "app", "test", "-q", "-p", "no:cacheprovider",
                           "tests/test_inner.py"], cwd=root, env={**environ, "PYTHONPATH": str(root)},
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)


INNER_TEST = """
from pathlib import Path
from db.cluster import EmbeddedCluster

def test_the_cluster_runs_during_the_tests():
    assert EmbeddedCluster(Path(__file__).resolve().parent.parent).running_pid() is not None
"""


def test_qiwang_test_stops_the_cluster_it_started(project_copy: Path) -> None:
    cluster = EmbeddedCluster(project_copy)
    assert cluster.running_pid() is None
    done = run_test_command(project_copy, INNER_TEST)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert cluster.running_pid() is None  # started for the tests, stopped after them

    # a failing suite stops it too, and passes pytest's exit code on
    done = run_test_command(project_copy, "def test_fails():\n    assert False\n")
    assert done.returncode == 1 and "1 failed" in done.stdout
    assert cluster.running_pid() is None

    # one that was running before (a demo, a developer's session) stays up
    cluster.up()
    pid = cluster.running_pid()
    done = run_test_command(project_copy, INNER_TEST)
    assert done.returncode == 0, done.stdout + done.stderr
    assert cluster.running_pid() == pid
