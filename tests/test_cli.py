"""The real ./qiwang, run as a user would: errors are one line, never a traceback."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def qiwang(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | env
    return subprocess.run(
        [str(ROOT / "qiwang"), *args], cwd=ROOT, env=environ, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=300,
    )


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("qiwang: error: ")
    return lines[0]


def test_unknown_command_is_one_line_exit_2() -> None:
    line = assert_one_line_error(qiwang("no-such-thing"), 2)
    assert "no such command 'no-such-thing'" in line
    assert "./qiwang --help" in line


def test_bad_pipes_value_names_the_option() -> None:
    for value in ("abc", "-5", "299", "3000001"):
        line = assert_one_line_error(qiwang("load-demo", "--pipes", value), 2)
        assert "--pipes" in line, value


def test_bad_seed_names_the_option() -> None:
    line = assert_one_line_error(qiwang("load-demo", "--seed", "-1"), 2)
    assert "--seed" in line


def test_malformed_database_url_is_one_clear_line() -> None:
    line = assert_one_line_error(qiwang("migrate", DATABASE_URL="postgresql://u@h:abc/db"), 1)
    assert line == "qiwang: error: DATABASE_URL is not a database URL: 'postgresql+psycopg://u@h:abc/db'"


def test_unreachable_database_is_one_line_exit_1() -> None:
    done = qiwang("migrate", DATABASE_URL="postgresql://nobody@127.0.0.1:1/nothing")
    line = assert_one_line_error(done, 1)
    expected = "qiwang: error: cannot reach the database at postgresql+psycopg://nobody@127.0.0.1:1/nothing: "
    assert line.startswith(expected)


def test_password_is_masked_in_errors() -> None:
    done = qiwang("migrate", DATABASE_URL="postgres://nobody:s3cret@127.0.0.1:1/nothing")
    line = assert_one_line_error(done, 1)
    assert "s3cret" not in line and "***" in line


def test_non_postgres_url_is_refused() -> None:
    line = assert_one_line_error(qiwang("db", "url", DATABASE_URL="sqlite:///x.db"), 1)
    assert "PostgreSQL" in line


def test_db_url_embedded() -> None:
    done = qiwang("db", "url")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert url.startswith("postgresql+psycopg://qiwang_app@/qiwang?host=/")  # the application role


def test_db_url_normalises_database_url() -> None:
    for given in ("postgres://u@db.example:5433/gas", "postgresql://u@db.example:5433/gas"):
        done = qiwang("db", "url", DATABASE_URL=given)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "postgresql+psycopg://u@db.example:5433/gas"


def test_reset_of_external_database_needs_yes() -> None:
    line = assert_one_line_error(qiwang("db", "reset", DATABASE_URL="postgresql://u@127.0.0.1:1/gas"), 1)
    assert "--yes" in line


def test_version() -> None:
    done = qiwang("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("qiwang, version ")


def test_test_command_keeps_pytest_exit_code() -> None:
    """pytest's 5 (no tests collected) must stay a failure for CI."""
    done = qiwang("test", "-q", "tests/test_cli.py", "-k", "no_test_has_this_name")
    assert done.returncode == 5, done.stdout + done.stderr


def test_a_bad_setting_stops_any_command_in_one_line() -> None:
    line = assert_one_line_error(qiwang("db", "status", QIWANG_MAX_BODY_BYTES="12"), 1)
    assert line == "qiwang: error: QIWANG_MAX_BODY_BYTES: '12' is not a number of bytes (at least 1024)"


def test_database_url_from_the_settings_file(tmp_path: Path) -> None:
    """The file's database_url is used, named by file and key when wrong; DATABASE_URL wins over it."""
    settings = tmp_path / "qiwang.toml"
    settings.write_text('database_url = "postgres://u@db.example:5433/gas"\n', encoding="utf-8")
    done = qiwang("db", "url", QIWANG_SETTINGS_FILE=str(settings))
    assert (done.returncode, done.stdout) == (0, "postgresql+psycopg://u@db.example:5433/gas\n"), done.stderr
    done = qiwang("db", "url", QIWANG_SETTINGS_FILE=str(settings), DATABASE_URL="postgresql://v@other/gas")
    assert (done.returncode, done.stdout) == (0, "postgresql+psycopg://v@other/gas\n"), done.stderr
    settings.write_text('database_url = "sqlite:///x.db"\n', encoding="utf-8")
    line = assert_one_line_error(qiwang("db", "url", QIWANG_SETTINGS_FILE=str(settings)), 1)
    assert line == (f"qiwang: error: {settings}: database_url must point at PostgreSQL with PostGIS "
                    "(postgresql://...), not sqlite://")


def test_serve_refuses_to_log_in_as_the_owner(db_url: str) -> None:
    """An external DATABASE_URL alone (no QIWANG_APP_DATABASE_URL) would serve as the owner: refused
    before listening."""
    line = assert_one_line_error(qiwang("serve", "--port", "1", DATABASE_URL=db_url), 1)
    assert line.startswith("qiwang: error: the web server would log in as ")
    assert line.endswith("Set QIWANG_APP_DATABASE_URL to a login of qiwang_app (e.g. ALTER ROLE qiwang_app LOGIN "
                         "PASSWORD '…' as the owner, then postgresql://qiwang_app:…@host/db)")
