"""Signing in, and who every request acts as: the web app's authentication and authorisation.

Every request but the login page, static assets and the health check is authenticated, by one of:

- ``Authorization: Basic`` with an account name and its password or one of its API tokens (QGIS
  authcfg Basic, GDAL ``GDAL_HTTP_AUTH=BASIC`` + ``GDAL_HTTP_USERPWD``, OWSLib);
- ``Authorization: Bearer <token>`` (scripts);
- the ``qiwang_session`` cookie of the login page (the map), HttpOnly, SameSite=Lax, Secure behind
  https; every state-changing request of a session carries its CSRF token (``X-CSRF-Token`` header
  or ``csrf_token`` form field), else 403.

No credentials or wrong ones: 401 with ``WWW-Authenticate`` (a browser page is sent to the login
page instead). Then the permissions table (accounts/permissions.py) decides by the account's roles
(403 otherwise), and every transaction of the request acts as the account's database role
(db/acting.py), where row-level security keeps it to its scope.
"""
from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, g, jsonify, redirect, render_template, request

from accounts import credentials, permissions, store
from accounts.store import Account
from app.http_errors import error_response, response_for
from core.errors import Forbidden, QiwangError, Unauthenticated
from core.settings import Settings
from core.ttl_cache import TtlCache
from db import acting

SESSION_COOKIE = "qiwang_session"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Reached without signing in.
PUBLIC_PREFIXES = ("/login", "/health", "/favicon.ico", "/map/static/", "/map/vendor/", "/ogc/static/")
# Reached while the password must be changed.
PASSWORD_CHANGE_PATHS = ("/login/password", "/logout", "/api/session")
CHALLENGE = 'Basic realm="Qiwang", charset="UTF-8"'


def now() -> datetime:
    """The time of the request (a module function, so that tests can move the clock)."""
    return datetime.now(UTC)


def csrf_token(session_id: str) -> str:
    """The CSRF token of a web session: derived from the cookie, which another site's page cannot read."""
    return credentials.digest("csrf:" + session_id).hex()[:32]


def _basic(header: str) -> tuple[str, str]:
    try:
        name, _, secret = base64.b64decode(header, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthenticated("Authorization: not Basic base64(name:password)") from None
    if not name or not secret:
        raise Unauthenticated("Authorization: an account name and a password or token are needed")
    return name, secret


class Authenticator:
    """Finds the account of a request (see the module docstring), as role qiwang_auth."""

    def __init__(self, engine: sa.Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        # Verified Basic credentials for a few seconds: argon2 (64 MiB, ~0.1 s) on every tile request
        # of a QGIS session would cost more than the tile. A hit is still checked against the account's
        # auth_version and disabled flag, so a disabled account or a changed password is refused at once.
        self.cache: TtlCache[bytes, Account] = TtlCache(settings.auth_cache_seconds)

    def _in_auth_role(self, work: Any) -> Any:
        """Run `work(conn)` in a transaction as qiwang_auth; a sign-in failure is raised after the
        commit, so that failed attempts are counted (and lock the account) all the same."""
        with acting.acting_as(acting.AUTH_ROLE), self.engine.begin() as conn:
            try:
                return work(conn)
            except Unauthenticated as exc:
                failure = exc
        raise failure

    def identify(self) -> tuple[Account, str, str | None]:
        """(account, how: basic / bearer / session, session id or None); Unauthenticated otherwise."""
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        at, addr = now(), request.remote_addr
        if scheme.lower() == "basic":
            name, secret = _basic(value.strip())
            if credentials.parse_token(secret):
                found = self._in_auth_role(lambda c: store.sign_in_with_token(c, secret, at))
                if found.name != name:
                    raise Unauthenticated("this API token belongs to another account")
                return found, "basic", None
            return self._password(name, secret, at, addr), "basic", None
        if scheme.lower() == "bearer":
            return self._in_auth_role(lambda c: store.sign_in_with_token(c, value.strip(), at)), "bearer", None
        if header:
            raise Unauthenticated("Authorization: Basic or Bearer are understood")
        session_id = request.cookies.get(SESSION_COOKIE)
        if session_id:
            idle = timedelta(minutes=self.settings.session_idle_minutes)
            absolute = timedelta(hours=self.settings.session_max_hours)
            found = self._in_auth_role(lambda c: store.session_account(c, session_id, at, idle, absolute))
            return found, "session", session_id
        raise Unauthenticated("sign in: HTTP Basic (account and password or API token), a Bearer token, "
                              "or the login page /login")

    def _password(self, name: str, password: str, at: datetime, addr: str | None) -> Account:
        key = credentials.digest(f"{name}\0{password}")
        cached = self.cache.get(key)
        if cached is not None:
            current = self._in_auth_role(lambda c: c.execute(sa.text(
                "SELECT auth_version, disabled_at IS NOT NULL, coalesce(locked_until > :now, false) "
                "FROM auth.account WHERE id = :id"), {"id": cached.id, "now": at}).first())
            if current is not None and tuple(current) == (cached.auth_version, False, False):
                return cached
        found = self._in_auth_role(lambda c: store.sign_in_with_password(c, name, password, at, addr))
        self.cache.put(key, found)
        return found


def _challenge(exc: Unauthenticated) -> Response:
    wants_page = request.method == "GET" and "text/html" in request.headers.get("Accept", "") \
        and "Authorization" not in request.headers
    if wants_page:
        target = quote(request.full_path.rstrip("?"), safe="/")   # the whole query comes back too
        return redirect(f"/login?next={target}", 303)  # type: ignore[return-value]
    answer = response_for(exc)
    answer.headers["WWW-Authenticate"] = CHALLENGE
    return answer


def _safe_next(target: str | None) -> str:
    """Only a path of this site (no scheme, no host, no //): an open redirect would help phishing."""
    if not target or not target.startswith("/") or target.startswith("//") or urlsplit(target).netloc:
        return "/map/"
    return target


def install_auth(app: Flask, engine: sa.Engine, settings: Settings) -> None:
    """Authenticate and authorise every request of `app`, and make it act as the signed-in account.

    Parameters
    ----------
    app
        The Flask app (after its body-size and cross-site hooks, which answer first).
    engine
        The app's engine (its login is the authenticator, qiwang_app).
    settings
        Timeouts of sessions, password age, the credentials cache, the request's database limits.
    """
    authenticator = Authenticator(engine, settings)
    secure_cookie = (settings.public_url or "").startswith("https://")

    @app.before_request
    def authenticate() -> Response | None:
        g.account = None
        if request.method == "OPTIONS" or request.path.startswith(PUBLIC_PREFIXES):
            return None
        try:
            account, how, session_id = authenticator.identify()
        except Unauthenticated as exc:
            return _challenge(exc)
        g.account, g.session_id = account, session_id
        if how == "session" and request.method in UNSAFE:
            sent = request.headers.get(CSRF_HEADER) or request.form.get("csrf_token", "")
            if not credentials.same(sent.encode(), csrf_token(session_id or "").encode()):
                return error_response(403, "Forbidden", f"{CSRF_HEADER}: missing or wrong (a signed-in page "
                                                        "sends the token of GET /api/session)")
        if not request.path.startswith(PASSWORD_CHANGE_PATHS):
            try:
                store.must_act_first(account, now(), settings.password_max_age_days)
            except Forbidden as exc:
                if how == "session" and request.method == "GET":
                    return redirect("/login/password", 303)  # type: ignore[return-value]
                return response_for(exc)
        ok, rule = permissions.allowed(account.duties, request.method, request.path)
        if not ok:
            what = rule.family if rule else f"{request.method} {request.path}"
            need = ", ".join(sorted(rule.duties)) if rule else "no role"
            return error_response(403, "Forbidden", f"role: {account.name} ({', '.join(account.duties)}) may not "
                                                    f"use {what} (needs {need})")
        timeout = settings.process_statement_timeout if request.path.startswith("/ogc/processes/") \
            else settings.statement_timeout
        g.acting = acting.enter(account.db_role, statement_timeout=timeout, work_mem=settings.work_mem,
                                qiwang__request_id=uuid.uuid4().hex,
                                qiwang__client_addr=request.remote_addr or "")
        return None

    @app.teardown_request
    def stop_acting(exc: BaseException | None) -> None:
        token = g.pop("acting", None)
        if token is not None:
            acting.leave(token)

    @app.after_request
    def vary(response: Response) -> Response:
        # Answers depend on who asks: no shared cache may give one account's answer to another.
        response.vary.update(("Authorization", "Cookie"))
        if response.cache_control.public:
            response.cache_control.public = False
            response.cache_control.private = True
        return response

    app.register_blueprint(_login_blueprint(authenticator, settings, secure_cookie))


def _login_blueprint(authenticator: Authenticator, settings: Settings, secure_cookie: bool) -> Blueprint:
    pages = Blueprint("login", __name__)

    @pages.get("/login")
    def login_page() -> str:
        return render_template("login.html", next=_safe_next(request.args.get("next")), error=None)

    @pages.post("/login")
    def login() -> Response | tuple[str, int]:
        name, password = request.form.get("name", "").strip(), request.form.get("password", "")
        target = _safe_next(request.form.get("next"))
        at = now()
        try:
            found = authenticator._in_auth_role(
                lambda c: store.sign_in_with_password(c, name, password, at, request.remote_addr))
            session_id = authenticator._in_auth_role(lambda c: store.open_session(c, found, at, request.remote_addr))
        except Unauthenticated as exc:
            return render_template("login.html", next=target, error=str(exc), name=name), 401
        answer = redirect("/login/password" if found.must_change_password else target, 303)
        answer.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="Lax", secure=secure_cookie,
                          path="/")
        return answer  # type: ignore[return-value]

    @pages.get("/login/password")
    def password_page() -> str | Response:
        if g.get("account") is None and not request.cookies.get(SESSION_COOKIE):
            return redirect("/login", 303)  # type: ignore[return-value]
        return render_template("password.html", error=None)

    @pages.post("/login/password")
    def change_password() -> Response | tuple[str, int]:
        try:
            found, how, session_id = authenticator.identify()
        except Unauthenticated:
            return redirect("/login", 303)  # type: ignore[return-value]
        sent = request.form.get("csrf_token", "")
        if how == "session" and not credentials.same(sent.encode(), csrf_token(session_id or "").encode()):
            return render_template("password.html", error="csrf_token: missing or wrong; reload the page"), 403
        current, new = request.form.get("current", ""), request.form.get("new", "")
        at = now()
        try:
            authenticator._in_auth_role(lambda c: store.sign_in_with_password(c, found.name, current, at,
                                                                              request.remote_addr))
            if new != request.form.get("repeat", ""):
                raise QiwangError("the two new passwords differ")
            with acting.acting_as(acting.AUTH_ROLE), authenticator.engine.begin() as conn:
                changed = store.set_password(conn, found.name, new, at)
                fresh = store.open_session(conn, changed, at, request.remote_addr)
        except Unauthenticated:
            return render_template("password.html", error="current password: wrong"), 401
        except QiwangError as exc:
            return render_template("password.html", error=str(exc)), 400
        answer = redirect("/map/", 303)
        answer.set_cookie(SESSION_COOKIE, fresh, httponly=True, samesite="Lax", secure=secure_cookie, path="/")
        return answer  # type: ignore[return-value]

    @pages.post("/logout")
    def logout() -> Response:
        session_id = g.get("session_id")
        if session_id:
            authenticator._in_auth_role(lambda c: store.end_session(c, session_id, now()))
        answer = redirect("/login", 303)
        answer.delete_cookie(SESSION_COOKIE, path="/")
        return answer  # type: ignore[return-value]

    @pages.get("/api/session")
    def session() -> Response:
        found: Account = g.account
        body = {"name": found.name, "display_name": found.display_name, "roles": list(found.duties),
                "enterprise_code": found.enterprise_code, "admin_code": found.admin_code,
                "must_change_password": found.must_change_password}
        if g.get("session_id"):
            body["csrf_token"] = csrf_token(g.session_id)
        return jsonify(body)

    return pages
