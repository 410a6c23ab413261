"""Alarm handling over HTTP (/api/alarms): steps in order by the signed-in dispatcher, refusals, the record.

Alarms are raised by the real ingest pipeline (real PostgreSQL: the readings go through the checks,
the rules and the store exactly as from MQTT); the steps go through the real web app over HTTP,
signed in with Bearer tokens (tests/signed_in.py). The handling record names the signed-in account
("display name (name)", or the name when the account has no other), never a name the client typed;
only dispatchers take steps, and only on alarms of their enterprise (row-level security).
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

import psycopg
import pytest
import requests
import sqlalchemy as sa
from signed_in import ENTERPRISE_A, ENTERPRISE_B, ensure_account, password_of
from sqlalchemy.pool import NullPool
from telemetry_support import conninfo, devices, raise_alarms

from accounts import store
from core.errors import Conflict, InvalidInput, NotFound
from telemetry import alarms

if TYPE_CHECKING:   # not imported at run time: pytest would try to collect a class named Test…
    from signed_in import TestAccount

DISPATCHER_OF = {ENTERPRISE_A: "a_dispatcher", ENTERPRISE_B: "b_dispatcher"}
VIEWER_OF = {ENTERPRISE_A: "a_viewer", ENTERPRISE_B: "b_viewer"}
OTHER_ENTERPRISE = {ENTERPRISE_A: ENTERPRISE_B, ENTERPRISE_B: ENTERPRISE_A}


class Alarm(NamedTuple):
    code: str
    state: str
    active: bool
    enterprise: str


def alarm_of(info: str, device_code: str) -> Alarm:
    """The device's newest alarm."""
    with psycopg.connect(info) as conn:
        row = conn.execute("SELECT code, state, cleared_at IS NULL, enterprise_code FROM alarm "
                           "WHERE device_code = %s ORDER BY id DESC LIMIT 1", (device_code,)).fetchone()
    assert row is not None, f"no alarm on {device_code}"
    return Alarm(*row)


@pytest.fixture(scope="module")
def two_alarms(db_url: str) -> dict[str, Alarm]:
    """An active leak alarm (30 %LEL) on one sentry, a cleared one (30 then 2 %LEL) on another."""
    info = conninfo(db_url)
    active, cleared = devices(info, limit=40)[-2:]      # sentries the other tests of this DB leave alone
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    raise_alarms(info, [(active, t0, {"ch4_lel": 30.0}),
                        (cleared, t0, {"ch4_lel": 30.0}), (cleared, t0 + timedelta(minutes=1), {"ch4_lel": 2.0})])
    found = {"active": alarm_of(info, active[2]), "cleared": alarm_of(info, cleared[2])}
    assert {a.enterprise for a in found.values()} <= set(DISPATCHER_OF)
    return found


def person(db_url: str, name: str, display_name: str, enterprise: str) -> TestAccount:
    """A dispatcher of `enterprise` whose person's name differs from the account's name."""
    engine = sa.create_engine(db_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            try:
                store.account(conn, name)
            except NotFound:
                store.add_account(conn, name, ("dispatcher",), enterprise=enterprise, display_name=display_name,
                                  password=password_of(name), created_by="operator:tests", now=datetime.now(UTC))
    finally:
        engine.dispose()
    return ensure_account(db_url, name, ("dispatcher",), enterprise=enterprise)


def step(base: str, code: str, action: str, account: TestAccount | None, **body) -> requests.Response:
    """POST a step as `account` (None: anonymous)."""
    return requests.post(f"{base}/api/alarms/{code}/{action}", json=body,
                         headers=account.headers if account else {}, timeout=30)


def handling_record(base: str, code: str, account: TestAccount | None) -> requests.Response:
    return requests.get(f"{base}/api/alarms/{code}/record", headers=account.headers if account else {}, timeout=30)


def snapshot(db_url: str, code: str) -> tuple:
    """What a refused step must leave as it was (read as the owner): the alarm's state and step
    times, its events, and the number of events of every alarm."""
    with psycopg.connect(conninfo(db_url)) as conn:
        row = conn.execute(
            "SELECT a.state, a.acknowledged_at, a.dispatched_at, a.resolved_at, a.closed_at, "
            "       (SELECT array_agg(e.id ORDER BY e.id) FROM alarm_event e WHERE e.alarm_id = a.id), "
            "       (SELECT count(*) FROM alarm_event) "
            "FROM alarm a WHERE a.code = %s", (code,)).fetchone()
    assert row is not None, f"no alarm {code}"
    return row


def test_the_whole_lifecycle_over_http_with_its_record(live_server, db_url: str, users, two_alarms) -> None:
    base, alarm = live_server.url, two_alarms["cleared"]
    assert (alarm.state, alarm.active) == ("raised", False)
    wang = person(db_url, "alarm_wang", "王调度", alarm.enterprise)
    li = person(db_url, "alarm_li", "李抢修", alarm.enterprise)
    plain = users[DISPATCHER_OF[alarm.enterprise]]     # display name = account name
    # (step, account, `by` sent or None, note, actor recorded); `by` may be sent if it names the account
    steps = [("acknowledge", wang, "王调度", "已电话确认", "王调度 (alarm_wang)"),
             ("dispatch", plain, None, "派抢修一队", plain.name),
             ("resolve", li, "alarm_li", "阀井通风, 复测 0 %LEL", "李抢修 (alarm_li)"),
             ("close", wang, None, None, "王调度 (alarm_wang)")]
    for action, account, by, note, actor in steps:
        answer = step(base, alarm.code, action, account, note=note, **({"by": by} if by else {}))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["code"] == alarm.code and body["state"] == {
            "acknowledge": "acknowledged", "dispatch": "dispatched", "resolve": "resolved", "close": "closed"}[action]
        assert (body["record"][-1]["actor"], body["record"][-1]["note"]) == (actor, note)
    with psycopg.connect(conninfo(db_url)) as conn:
        row = conn.execute("SELECT state, acknowledged_at <= dispatched_at AND dispatched_at <= resolved_at "
                           "AND resolved_at <= closed_at FROM alarm WHERE code = %s", (alarm.code,)).fetchone()
    assert row == ("closed", True)

    # the record, read by a viewer of the alarm's enterprise and by the city's regulator
    for reader in (users[VIEWER_OF[alarm.enterprise]], users["city_regulator"]):
        record = handling_record(base, alarm.code, reader)
        assert record.status_code == 200, record.text
        doc = record.json()
        assert doc["intact"] is True
        assert [(e["action"], e["actor"]) for e in doc["events"]] == [
            ("raised", "ingest"), ("cleared", "ingest"), ("acknowledged", "王调度 (alarm_wang)"),
            ("dispatched", plain.name), ("resolved", "李抢修 (alarm_li)"), ("closed", "王调度 (alarm_wang)")]
        assert [e["note"] for e in doc["events"][2:]] == [note for _, _, _, note, _ in steps]
    # another enterprise's viewer does not see that the alarm exists
    hidden = handling_record(base, alarm.code, users[VIEWER_OF[OTHER_ENTERPRISE[alarm.enterprise]]])
    assert (hidden.status_code, hidden.json()) == (404, {"code": "NotFound", "description": f"no alarm {alarm.code}"})

    # a closed alarm takes no further step
    again = step(base, alarm.code, "close", wang)
    assert again.status_code == 409
    assert again.json() == {"code": "Conflict",
                            "description": f"alarm {alarm.code} is closed: 'close' needs it resolved"}


def test_by_naming_someone_else_is_403_and_changes_nothing(live_server, db_url: str, users, two_alarms) -> None:
    alarm = two_alarms["active"]
    dispatcher = users[DISPATCHER_OF[alarm.enterprise]]
    before = snapshot(db_url, alarm.code)
    for by in ("王调度", "b_dispatcher" if dispatcher.name == "a_dispatcher" else "a_dispatcher"):
        answer = step(live_server.url, alarm.code, "acknowledge", dispatcher, by=by, note="冒名")
        assert (answer.status_code, answer.json()) == (403, {
            "code": "Forbidden",
            "description": f"by: the step is taken by the signed-in account {dispatcher.name}, not {by!r}"})
    assert snapshot(db_url, alarm.code) == before


@pytest.mark.parametrize("who", ["viewer", "district_regulator", "auditor"])
def test_accounts_without_the_dispatcher_role_are_403_and_change_nothing(live_server, db_url: str, users,
                                                                         two_alarms, who: str) -> None:
    alarm = two_alarms["active"]
    account = users[VIEWER_OF[alarm.enterprise] if who == "viewer" else who]
    duties = {"viewer": "viewer", "district_regulator": "regulator", "auditor": "auditor"}[who]
    before = snapshot(db_url, alarm.code)
    answer = step(live_server.url, alarm.code, "acknowledge", account, note="x")
    assert (answer.status_code, answer.json()) == (403, {
        "code": "Forbidden",
        "description": f"role: {account.name} ({duties}) may not use alarm steps (needs dispatcher)"})
    assert snapshot(db_url, alarm.code) == before


def test_a_dispatcher_of_another_enterprise_finds_no_such_alarm(live_server, db_url: str, users,
                                                                two_alarms) -> None:
    alarm = two_alarms["active"]
    outsider = users[DISPATCHER_OF[OTHER_ENTERPRISE[alarm.enterprise]]]
    before = snapshot(db_url, alarm.code)
    for body, description in (({}, f"no alarm {alarm.code}"),
                              ({"enterprise": alarm.enterprise},
                               f"no alarm {alarm.code} in enterprise {alarm.enterprise}")):
        answer = step(live_server.url, alarm.code, "acknowledge", outsider, **body)
        assert (answer.status_code, answer.json()) == (404, {"code": "NotFound", "description": description})
    record = handling_record(live_server.url, alarm.code, outsider)
    assert (record.status_code, record.json()) == (404, {"code": "NotFound", "description": f"no alarm {alarm.code}"})
    assert snapshot(db_url, alarm.code) == before


def test_anonymous_requests_are_401_and_change_nothing(live_server, db_url: str, two_alarms) -> None:
    alarm = two_alarms["active"]
    before = snapshot(db_url, alarm.code)
    for answer in (step(live_server.url, alarm.code, "acknowledge", None, by="王调度"),
                   handling_record(live_server.url, alarm.code, None)):
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == 'Basic realm="Qiwang", charset="UTF-8"'
        assert answer.json() == {"code": "Unauthorized", "description": (
            "sign in: HTTP Basic (account and password or API token), a Bearer token, or the login page /login")}
    assert snapshot(db_url, alarm.code) == before


def test_nul_in_the_alarm_code_is_400(live_server, users) -> None:
    signed = users["a_dispatcher"].headers
    for r in (requests.post(f"{live_server.url}/api/alarms/BJ1%00/acknowledge", json={"note": "x"}, headers=signed,
                            timeout=30),
              requests.get(f"{live_server.url}/api/alarms/BJ1%00/record", headers=signed, timeout=30)):
        assert (r.status_code, r.json()) == (400, {"code": "InvalidParameterValue",
                                                   "description": "code: contains a NUL character"})


_OBJECT_EXPECTED = 'body: a JSON object is expected, e.g. {"note": "…"}'
# (body, status, description): the body as a whole, then field by field. PostgreSQL text holds
# neither NUL nor lone surrogates (both valid JSON escapes): 400, not 500. The fields are checked
# before `by` is compared with the account (then "x" would be 403).
BAD_BODIES = [
    *[(body, 400, _OBJECT_EXPECTED) for body in (b"", b"[1, 2]")],
    (b"{not json", 400, 'body: not JSON; send {"note": "…"}'),
    (b"\xff\xfe{\x00}", 400, "body: not UTF-8"),
    (b'{"by\\u0000": "x"}', 400, "body: contains a NUL character"),
    *[(body, 400, f"{field}: a string is expected, not {kind}")
      for body, field, kind in ((b'{"by": 7}', "by", "int"), (b'{"by": "x", "note": ["a"]}', "note", "list"))],
    (b'{"by": "x", "actor": "y"}', 400, "actor: unknown field (accepted: by, note, enterprise)"),
    (b'{"by": "' + b"x" * 101 + b'"}', 400, "by: longer than 100 characters"),
    (b'{"enterprise": "NOPE"}', 404, "no alarm {code} in enterprise NOPE"),
    (b'{"by": "x\\u0000y"}', 400, "by: contains a NUL character"),
    *[(body, 400, f"{field}: contains a lone UTF-16 surrogate (not valid Unicode)")
      for body, field in ((b'{"by": "\\ud800"}', "by"), (b'{"by": "x", "note": "\\udfff"}', "note"))],
]


@pytest.mark.parametrize(("body", "status", "description"), BAD_BODIES)
def test_bad_bodies_name_the_field_and_change_nothing(live_server, db_url: str, users, two_alarms, body: bytes,
                                                      status: int, description: str) -> None:
    alarm = two_alarms["active"]     # still raised: a body let through would acknowledge it
    before = snapshot(db_url, alarm.code)
    answer = requests.post(f"{live_server.url}/api/alarms/{alarm.code}/acknowledge", data=body,
                           headers={"Content-Type": "application/json",
                                    **users[DISPATCHER_OF[alarm.enterprise]].headers}, timeout=30)
    assert answer.status_code == status
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["description"] == description.replace("{code}", alarm.code)
    assert snapshot(db_url, alarm.code) == before


def test_unknown_alarms_and_methods(live_server, users) -> None:
    base, dispatcher = live_server.url, users["a_dispatcher"]
    missing = step(base, "BJ19000101999999", "acknowledge", dispatcher)
    assert (missing.status_code, missing.json()) == (404, {"code": "NotFound",
                                                           "description": "no alarm BJ19000101999999"})
    record = handling_record(base, "BJ19000101999999", dispatcher)
    assert (record.status_code, record.json()["description"]) == (404, "no alarm BJ19000101999999")
    wrong = requests.get(f"{base}/api/alarms/BJ19000101999999/acknowledge", headers=dispatcher.headers, timeout=30)
    assert wrong.status_code == 405 and wrong.json()["code"] == "MethodNotAllowed"
    # other paths keep their own answers (the OGC API has its own 404)
    assert requests.get(f"{base}/ogc/collections/nowhere", headers=dispatcher.headers,
                        timeout=30).json()["code"] == "NotFound"


def test_unknown_actions_and_paths_are_404_for_a_dispatcher(live_server, users) -> None:
    base, dispatcher = live_server.url, users["a_dispatcher"]
    bogus = step(base, "BJ19000101999999", "delete", dispatcher)
    assert (bogus.status_code, bogus.json()) == (404, {
        "code": "NotFound",
        "description": "action: 'delete' is not a step; use one of acknowledge, dispatch, resolve, close"})
    nowhere = requests.post(f"{base}/api/alarms/BJ19000101999999/acknowledge/now", json={},
                            headers=dispatcher.headers, timeout=30)
    assert (nowhere.status_code, nowhere.json()["code"]) == (404, "NotFound")


def test_steps_out_of_order_and_closing_an_active_alarm_are_refused(live_server, db_url: str, users,
                                                                    two_alarms) -> None:
    base, alarm = live_server.url, two_alarms["active"]
    assert alarm.active
    dispatcher = users[DISPATCHER_OF[alarm.enterprise]]
    skipped = step(base, alarm.code, "dispatch", dispatcher)
    assert skipped.status_code == 409
    assert skipped.json()["description"] == f"alarm {alarm.code} is raised: 'dispatch' needs it acknowledged"
    for action in ("acknowledge", "dispatch", "resolve"):
        assert step(base, alarm.code, action, dispatcher).status_code == 200
    closing = step(base, alarm.code, "close", dispatcher)
    assert closing.status_code == 409
    assert closing.json()["description"] == (
        f"alarm {alarm.code} is still active (its value has not cleared): it cannot be closed")
    with psycopg.connect(conninfo(db_url)) as conn:
        assert conn.execute("SELECT state, closed_at FROM alarm WHERE code = %s", (alarm.code,)).fetchone() == (
            "resolved", None)
        assert [tuple(r) for r in conn.execute(
            "SELECT e.action, e.actor FROM alarm_event e JOIN alarm a ON a.id = e.alarm_id WHERE a.code = %s "
            "ORDER BY e.id", (alarm.code,))] == [("raised", "ingest"), ("acknowledged", dispatcher.name),
                                                 ("dispatched", dispatcher.name), ("resolved", dispatcher.name)]


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
