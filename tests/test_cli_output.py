"""What the CLI and the web server show people (issue 16 #9): aligned tables with Chinese labels,
numbers alike, nothing printed as None, lists that say when they are cut, server errors logged
to var/log/qiwang.log with a JSON 500 for the client."""
from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from pathlib import Path

import psycopg
import pytest
import requests
import sqlalchemy as sa
import waitress
from conftest import ROOT
from telemetry_support import conninfo

from app.cli.format import number, pad, shown, width


def run(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ROOT / "qiwang"), *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DATABASE_URL": db_url}, stdin=subprocess.DEVNULL)


def test_display_width_counts_cjk_as_two_columns() -> None:
    assert (width("铁东区"), width("abc"), width("管网 Network"), width("é"), width("e\u0301")) == (6, 3, 12, 1, 1)
    assert pad("铁东区", 10) + "|" == "铁东区    |"
    assert pad("12", 6, ">") == "    12"
    assert pad("很长的名字很长的名字", 4) == "很长的名字很长的名字"  # too wide: kept whole
    assert [number(1234567), number(1234.5, 1), number(0.5, 2), number(None)] == ["1,234,567", "1,234.5", "0.50", "—"]
    assert [shown(None, "never"), shown(12345), shown("x")] == ["never", "12,345", "x"]


def columns_of(line: str, *fields: str) -> list[int]:
    """Display column where each field starts in the line."""
    return [width(line[: line.index(f)]) for f in fields]


def test_stats_table_lines_up_with_chinese_labels(db_url: str) -> None:
    done = run(db_url, "stats")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.endswith(" km" + line.split(" km")[-1])
            and line.startswith("  ")]
    assert len(rows) > 10
    ends = {width(line[: line.index(" km")]) for line in rows}
    assert ends == {2 + 28 + 1 + 12}, rows  # every length ends in the same column, CJK labels or not
    assert any(re.search(r"[\u4e00-\u9fff]", line) for line in rows)
    assert {width(line) for line in rows if "of that material" not in line} == {2 + 28 + 1 + 12 + 3 + 1 + 10}
    for line in rows:  # thousands separators wherever a number reaches four digits
        for figure in re.findall(r"(?<![\d.,])\d{4,}(?![\d,])", line):
            pytest.fail(f"{figure} without separators in {line!r}")


def test_near_says_how_many_it_lists_and_limit_lists_more(db_url: str, engine: sa.Engine) -> None:
    with engine.connect() as conn:
        x, y = conn.execute(sa.text("SELECT ST_X(geom), ST_Y(geom) FROM valve ORDER BY id LIMIT 1")).one()
    full = json.loads(run(db_url, "near", "--at", f"{x},{y}", "--radius", "300", "--json").stdout)
    total = sum(full["counts"].values())
    assert total > 60 and len(full["features"]) == total  # --json: every feature
    done = run(db_url, "near", "--at", f"{x},{y}", "--radius", "300")
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 1 + 50 + 1
    assert lines[-1] == f"50 of {number(total)} shown; --limit N / --json for all"
    assert [line.split()[3] for line in lines[1:51]] == [f["code"] for f in full["features"][:50]]
    more = run(db_url, "near", "--at", f"{x},{y}", "--radius", "300", "--limit", "60").stdout.splitlines()
    assert len(more) == 1 + 60 + 1 and more[-1] == f"60 of {number(total)} shown; --limit N / --json for all"
    every = run(db_url, "near", "--at", f"{x},{y}", "--radius", "300", "--limit", str(total)).stdout.splitlines()
    assert len(every) == 1 + total  # nothing cut: nothing to say
    codes = [line.split()[3] for line in every[1:]]
    assert codes == [f["code"] for f in full["features"]]
    starts = {tuple(columns_of(line, line.split()[2], line.split()[3])) for line in every[1:]}
    assert len(starts) == 1  # layer and code columns line up


def test_outbox_status_never_prints_none(db_url: str) -> None:
    with psycopg.connect(conninfo(db_url)) as conn:
        conn.execute("DELETE FROM outbox")
    done = run(db_url, "outbox", "status")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "pending         0",
        "oldest pending  nothing pending",
        "last sent       never",
        "last error      none",
        "attempts        0",
    ]


def test_server_logs_tracebacks_to_its_log_and_answers_json_500(db_url: str, tmp_path: Path, monkeypatch,
                                                                 capfd: pytest.CaptureFixture[str], users) -> None:
    import app.cli.common

    log = tmp_path / "log" / "qiwang.log"
    monkeypatch.setattr(app.cli.common, "ERROR_LOG", log)
    web = app.cli.common.web_app(db_url, "http://127.0.0.1:1")

    def boom():  # an endpoint that fails as a bug would
        raise ZeroDivisionError("secret detail 42")

    web.add_url_rule("/map/boom", "boom", boom)   # under the map's family: a signed-in reader reaches it
    server = waitress.create_server(web, host="127.0.0.1", port=0, threads=2)
    threading.Thread(target=server.run, daemon=True).start()
    try:
        answer = requests.get(f"http://127.0.0.1:{server.effective_port}/map/boom?x=1", timeout=30,
                              headers=users["city_regulator"].headers)
        health = requests.get(f"http://127.0.0.1:{server.effective_port}/health", timeout=30)
    finally:
        server.close()
    assert answer.status_code == 500 and answer.headers["Content-Type"] == "application/json"
    body = answer.json()
    reference = re.fullmatch(r"unexpected error on the server, reference ([0-9a-f]{12}) in its log",
                             body["description"])[1]
    assert body == {"code": "InternalServerError", "description": body["description"]}
    assert "secret" not in answer.text and "Traceback" not in answer.text
    assert health.status_code == 200
    text = log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and 'raise ZeroDivisionError("secret detail 42")' in text
    assert f"error {reference}: GET /map/boom?x=1: ZeroDivisionError: secret detail 42" in text
    console = capfd.readouterr()
    assert "Traceback" not in console.out + console.err
    assert f"error {reference}: GET /map/boom?x=1" in console.err
