"""Alarm handling over HTTP (/api/alarms): steps in order by a named person, refusals, the record.

Alarms are raised by the real ingest pipeline (real PostgreSQL: the readings go through the checks,
the rules and the store exactly as from MQTT); the steps go through the real web app over HTTP.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import requests
from telemetry_support import conninfo, devices, raise_alarms

from core.errors import Conflict, InvalidInput, NotFound
from telemetry import alarms


def alarm_of(info: str, device_code: str) -> tuple[str, str, bool]:
    """(code, state, active) of the device's newest alarm."""
    with psycopg.connect(info) as conn:
        return conn.execute("SELECT code, state, cleared_at IS NULL FROM alarm WHERE device_code = %s "
                            "ORDER BY id DESC LIMIT 1", (device_code,)).fetchone()


@pytest.fixture(scope="module")
def two_alarms(db_url: str) -> dict[str, tuple[str, str, bool]]:
    """An active leak alarm (30 %LEL) on one sentry, a cleared one (30 then 2 %LEL) on another."""
    info = conninfo(db_url)
    active, cleared = devices(info, limit=40)[-2:]      # sentries the other tests of this DB leave alone
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    raise_alarms(info, [(active, t0, {"ch4_lel": 30.0}),
                        (cleared, t0, {"ch4_lel": 30.0}), (cleared, t0 + timedelta(minutes=1), {"ch4_lel": 2.0})])
    return {"active": alarm_of(info, active[2]), "cleared": alarm_of(info, cleared[2])}


def step(base: str, code: str, action: str, **body) -> requests.Response:
    return requests.post(f"{base}/api/alarms/{code}/{action}", json=body, timeout=30)


def test_the_whole_lifecycle_over_http_with_its_record(live_server, db_url: str, two_alarms) -> None:
    base, (code, state, active) = live_server.url, two_alarms["cleared"]
    assert (state, active) == ("raised", False)
    people = [("acknowledge", "王调度", "已电话确认"), ("dispatch", "王调度", "派抢修一队"),
              ("resolve", "李抢修", "阀井通风, 复测 0 %LEL"), ("close", "王调度", None)]
    for action, person, note in people:
        answer = step(base, code, action, by=person, note=note)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["code"] == code and body["state"] == {"acknowledge": "acknowledged", "dispatch": "dispatched",
                                                          "resolve": "resolved", "close": "closed"}[action]
        assert body["record"][-1]["actor"] == person and body["record"][-1]["note"] == note
    with psycopg.connect(conninfo(db_url)) as conn:
        row = conn.execute("SELECT state, acknowledged_at <= dispatched_at AND dispatched_at <= resolved_at "
                           "AND resolved_at <= closed_at FROM alarm WHERE code = %s", (code,)).fetchone()
    assert row == ("closed", True)

    record = requests.get(f"{base}/api/alarms/{code}/record", timeout=30)
    assert record.status_code == 200
    doc = record.json()
    assert doc["intact"] is True
    assert [(e["action"], e["actor"]) for e in doc["events"]] == [
        ("raised", "ingest"), ("cleared", "ingest"), ("acknowledged", "王调度"),
        ("dispatched", "王调度"), ("resolved", "李抢修"), ("closed", "王调度")]
    assert [e["note"] for e in doc["events"][2:]] == [note for _, _, note in people]

    # a closed alarm takes no further step
    again = step(base, code, "close", by="王调度")
    assert again.status_code == 409
    assert again.json() == {"code": "Conflict", "description": f"alarm {code} is closed: 'close' needs it resolved"}


def test_steps_out_of_order_and_closing_an_active_alarm_are_refused(live_server, db_url: str, two_alarms) -> None:
    base, (code, _, active) = live_server.url, two_alarms["active"]
    assert active
    skipped = step(base, code, "dispatch", by="王调度")
    assert skipped.status_code == 409
    assert skipped.json()["description"] == f"alarm {code} is raised: 'dispatch' needs it acknowledged"
    for action in ("acknowledge", "dispatch", "resolve"):
        assert step(base, code, action, by="王调度").status_code == 200
    closing = step(base, code, "close", by="王调度")
    assert closing.status_code == 409
    assert closing.json()["description"] == (
        f"alarm {code} is still active (its value has not cleared): it cannot be closed")
    with psycopg.connect(conninfo(db_url)) as conn:
        assert conn.execute("SELECT state, closed_at FROM alarm WHERE code = %s", (code,)).fetchone() == (
            "resolved", None)
        assert [a for (a,) in conn.execute(
            "SELECT e.action FROM alarm_event e JOIN alarm a ON a.id = e.alarm_id WHERE a.code = %s ORDER BY e.id",
            (code,))] == ["raised", "acknowledged", "dispatched", "resolved"]


def test_nul_in_the_alarm_code_is_400(live_server) -> None:
    for r in (requests.post(f"{live_server.url}/api/alarms/BJ1%00/acknowledge", json={"by": "x"}, timeout=30),
              requests.get(f"{live_server.url}/api/alarms/BJ1%00/record", timeout=30)):
        assert (r.status_code, r.json()) == (400, {"code": "InvalidParameterValue",
                                                   "description": "code: contains a NUL character"})


_OBJECT_EXPECTED = 'body: a JSON object is expected, e.g. {"by": "name", "note": "…"}'
_UNNAMED = "by: the person taking the step must be named"
# (body, status, description): the body as a whole, then field by field. PostgreSQL text holds
# neither NUL nor lone surrogates (both valid JSON escapes): 400, not 500.
BAD_BODIES = [
    *[(body, 400, _OBJECT_EXPECTED) for body in (b"", b"[1, 2]")],
    (b"{not json", 400, 'body: not JSON; send {"by": "name", "note": "…"}'),
    (b"\xff\xfe{\x00}", 400, "body: not UTF-8"),
    (b'{"by\\u0000": "x"}', 400, "body: contains a NUL character"),
    *[(body, 400, _UNNAMED) for body in (b'{"note": "x"}', b'{"by": "   "}')],
    *[(body, 400, f"{field}: a string is expected, not {kind}")
      for body, field, kind in ((b'{"by": 7}', "by", "int"), (b'{"by": "x", "note": ["a"]}', "note", "list"))],
    (b'{"by": "x", "actor": "y"}', 400, "actor: unknown field (accepted: by, note, enterprise)"),
    (b'{"by": "' + b"x" * 101 + b'"}', 400, "by: longer than 100 characters"),
    (b'{"by": "x", "enterprise": "NOPE"}', 404, "no alarm {code} in enterprise NOPE"),
    (b'{"by": "x\\u0000y"}', 400, "by: contains a NUL character"),
    *[(body, 400, f"{field}: contains a lone UTF-16 surrogate (not valid Unicode)")
      for body, field in ((b'{"by": "\\ud800"}', "by"), (b'{"by": "x", "note": "\\udfff"}', "note"))],
]


@pytest.mark.parametrize(("body", "status", "description"), BAD_BODIES)
def test_bad_bodies_name_the_field_and_change_nothing(live_server, db_url: str, two_alarms, body: bytes,
                                                      status: int, description: str) -> None:
    code = two_alarms["active"][0]
    with psycopg.connect(conninfo(db_url)) as conn:
        before = conn.execute("SELECT state, (SELECT count(*) FROM alarm_event) FROM alarm WHERE code = %s",
                              (code,)).fetchone()
    answer = requests.post(f"{live_server.url}/api/alarms/{code}/acknowledge", data=body,
                           headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == status
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["description"] == description.replace("{code}", code)
    with psycopg.connect(conninfo(db_url)) as conn:
        assert conn.execute("SELECT state, (SELECT count(*) FROM alarm_event) FROM alarm WHERE code = %s",
                            (code,)).fetchone() == before


def test_unknown_alarms_actions_and_methods(live_server) -> None:
    base = live_server.url
    missing = step(base, "BJ19000101999999", "acknowledge", by="王调度")
    assert (missing.status_code, missing.json()) == (404, {"code": "NotFound",
                                                           "description": "no alarm BJ19000101999999"})
    bogus = step(base, "BJ19000101999999", "delete", by="王调度")
    assert bogus.status_code == 404
    assert bogus.json()["description"] == ("action: 'delete' is not a step; use one of acknowledge, dispatch, resolve, "
                                           "close")
    record = requests.get(f"{base}/api/alarms/BJ19000101999999/record", timeout=30)
    assert (record.status_code, record.json()["description"]) == (404, "no alarm BJ19000101999999")
    wrong = requests.get(f"{base}/api/alarms/BJ19000101999999/acknowledge", timeout=30)
    assert wrong.status_code == 405 and wrong.json()["code"] == "MethodNotAllowed"
    nowhere = requests.post(f"{base}/api/alarms/BJ19000101999999/acknowledge/now", json={"by": "x"}, timeout=30)
    assert (nowhere.status_code, nowhere.json()["code"]) == (404, "NotFound")
    # other paths keep their own answers (the OGC API has its own 404)
    assert requests.get(f"{base}/ogc/collections/nowhere", timeout=30).json()["code"] == "NotFound"


def test_lifecycle_errors_are_of_the_error_family(db_url: str, two_alarms) -> None:
    """What the HTTP answers rest on: telemetry.alarms raises core.errors classes, the field named."""
    code = two_alarms["active"][0]
    at = datetime.now(UTC)
    with psycopg.connect(conninfo(db_url)) as conn:
        with pytest.raises(InvalidInput) as caught:
            alarms.advance(conn, code, "escalate", "王调度", None, at)
        assert (caught.value.field, str(caught.value)) == (
            "action", "action: must be one of acknowledge, dispatch, resolve, close, not 'escalate'")
        with pytest.raises(InvalidInput) as caught:
            alarms.advance(conn, code, "acknowledge", "  ", None, at)
        assert (caught.value.field, caught.value.reason) == ("actor", "the person taking the step must be named")
        with pytest.raises(NotFound, match=r"^no alarm BJ19000101999999$"):
            alarms.advance(conn, "BJ19000101999999", "acknowledge", "王调度", None, at)
        with pytest.raises(Conflict, match="'dispatch' needs it acknowledged"):  # raised, or resolved later on
            alarms.advance(conn, code, "dispatch", "王调度", None, at)
        conn.rollback()
