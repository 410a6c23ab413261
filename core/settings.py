"""The deployment's settings: one typed object, read once from the environment and an optional file.

`load_settings()` reads them when a process starts (the app factory, a CLI command, the telemetry
service); everything else is handed the `Settings` object instead of reading ``os.environ``. The
file, named by ``QIWANG_SETTINGS_FILE``, is TOML with the keys below (lower case, no prefix); an
environment variable that is set and not empty wins over the file. A bad value is refused at start
with `core.errors.InvalidInput` naming the variable (``QIWANG_MAX_BODY_BYTES``) or the file and
key (``/etc/qiwang.toml: max_body_bytes``) and the reason.

==========================  ==================================  ==============  ====================
file key                    environment variable                type            default
==========================  ==================================  ==============  ====================
database_url                DATABASE_URL                        URL             none: the embedded
                                                                                cluster under ./var
app_database_url            QIWANG_APP_DATABASE_URL             URL             database_url
public_url                  QIWANG_PUBLIC_URL                   http(s) URL     the served address
mqtt_url                    QIWANG_MQTT_URL                     mqtt:// URL     none: a local
                                                                                mosquitto (demo),
                                                                                mqtt://127.0.0.1:1883
regulator_url               QIWANG_REGULATOR_URL                http(s) URL     none: no outbox
regulator_token             QIWANG_REGULATOR_TOKEN              text            none
max_body_bytes              QIWANG_MAX_BODY_BYTES               integer, bytes  1048576 (≥ 1024)
statement_timeout           QIWANG_STATEMENT_TIMEOUT            PG duration     15s
process_statement_timeout   QIWANG_PROCESS_STATEMENT_TIMEOUT    PG duration     120s
work_mem                    QIWANG_WORK_MEM                     PG memory       32MB
cors_origins                QIWANG_CORS_ORIGINS                 origins         none
cors_api_origins            QIWANG_CORS_API_ORIGINS             origins         none
jobs_retention_days         QIWANG_JOBS_RETENTION_DAYS          number, days    7
basemap_url                 QIWANG_BASEMAP_URL                  URL template    none: no basemap
basemap_key                 QIWANG_BASEMAP_KEY                  text            none
basemap_attribution         QIWANG_BASEMAP_ATTRIBUTION          text            none
session_idle_minutes        QIWANG_SESSION_IDLE_MINUTES         number, min     30
session_max_hours           QIWANG_SESSION_MAX_HOURS            number, h       12
password_max_age_days       QIWANG_PASSWORD_MAX_AGE_DAYS        number, days    90
token_days                  QIWANG_TOKEN_DAYS                   number, days    90
auth_cache_seconds          QIWANG_AUTH_CACHE_SECONDS           number, s       5 (0: no cache)
scope_cache_seconds         QIWANG_SCOPE_CACHE_SECONDS          number, s       300 (0: no cache)
personal_data_key_file      QIWANG_PERSONAL_DATA_KEY_FILE       path            ./var/keys/
                                                                                personal_data.json
==========================  ==================================  ==============  ====================

- database_url: the PostgreSQL + PostGIS database (postgres:// or postgresql://), used as the
  owner by migrations and bulk loads; app_database_url: the login of role ``qiwang_app`` that the
  web server, the ingest and the analyses use (db/engine.py).
- public_url: where clients reach the web app; links in OGC API documents are absolute.
- mqtt_url: ``mqtt://[user:password@]host[:port]`` of the broker the ingest and the simulator use.
- regulator_url: the regulator's endpoint the outbox posts to (telemetry/outbox.py);
  regulator_token: sent with every batch as ``Authorization: Bearer <token>``. Only from the
  environment or the file, never a command-line option (it would show in ``ps``).
- max_body_bytes: largest HTTP request body; larger ones get 413 before they are read.
- statement_timeout, process_statement_timeout, work_mem: PostgreSQL limits (``15s``, ``2min``,
  ``64MB``: PostgreSQL's own syntax, checked by PostgreSQL when the app starts) of every
  transaction an HTTP request opens; process_statement_timeout for synchronous process execution.
- cors_origins: origins (``scheme://host[:port]``; comma-separated in the environment, a list of
  strings in the file) allowed to read /ogc and /styles cross-origin; cors_api_origins: the same
  for /api (alarm handling).
- jobs_retention_days: how long asynchronous process jobs and their result files are kept (days,
  fractions allowed).
- basemap_url: raster tile URL template of the map's basemap ({z}, {x}, {y}; ``{key}`` is
  replaced by basemap_key); basemap_attribution: the credit line shown on the map.

- session_idle_minutes, session_max_hours: a web session ends after this long without a request,
  and this long after its login whatever happens (GB/T 22239 level 2: 30 min and 12 h).
- password_max_age_days: a password older than this must be changed before anything else.
- token_days: how long a new API token lasts unless `user token --expires` says otherwise.
- auth_cache_seconds: how long a verified password or token is trusted without checking again
  (argon2 on every tile request of a QGIS session would cost more than the tile); a disabled
  account or a revoked token is refused at once all the same (accounts/store.py).
- scope_cache_seconds: how long the extents and counts of what one account sees (the collections'
  bboxes, the landing page's counts: an exact scan under its row-level security) are reused.
- personal_data_key_file: the keyring (JSON, mode 0600) of the SM4 keys that seal ID numbers and
  phone numbers at rest and of the HMAC-SM3 key of their blind indexes (accounts/personal_data.py).
  Outside the database by design: a dump of the database without this file tells no number. The
  default and a relative path are under the project root (the checkout). `./qiwang migrate` (and
  the first load or import) creates it when missing; `./qiwang keys rotate` replaces its SM4 key.
  Back it up apart from the database's backups: either alone tells nothing, both together all.

Test knobs (QIWANG_FUZZ_EXAMPLES) are the tests' own business and not settings.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.errors import InvalidInput

SETTINGS_FILE_VARIABLE = "QIWANG_SETTINGS_FILE"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PERSONAL_DATA_KEY_FILE = PROJECT_ROOT / "var" / "keys" / "personal_data.json"


@dataclass(frozen=True)
class Settings:
    """The deployment's settings (see the module docstring for each one's meaning and unit).

    `sources` says where each value that is not a default came from, for messages about it:
    use `name_of`.
    """

    database_url: str | None = field(default=None, repr=False, metadata={"env": "DATABASE_URL"})
    app_database_url: str | None = field(default=None, repr=False, metadata={"env": "QIWANG_APP_DATABASE_URL"})
    public_url: str | None = field(default=None, metadata={"env": "QIWANG_PUBLIC_URL"})
    mqtt_url: str | None = field(default=None, repr=False, metadata={"env": "QIWANG_MQTT_URL"})
    regulator_url: str | None = field(default=None, metadata={"env": "QIWANG_REGULATOR_URL"})
    regulator_token: str | None = field(default=None, repr=False, metadata={"env": "QIWANG_REGULATOR_TOKEN"})
    max_body_bytes: int = field(default=1024 * 1024, metadata={"env": "QIWANG_MAX_BODY_BYTES"})
    statement_timeout: str = field(default="15s", metadata={"env": "QIWANG_STATEMENT_TIMEOUT"})
    process_statement_timeout: str = field(default="120s", metadata={"env": "QIWANG_PROCESS_STATEMENT_TIMEOUT"})
    work_mem: str = field(default="32MB", metadata={"env": "QIWANG_WORK_MEM"})
    cors_origins: tuple[str, ...] = field(default=(), metadata={"env": "QIWANG_CORS_ORIGINS"})
    cors_api_origins: tuple[str, ...] = field(default=(), metadata={"env": "QIWANG_CORS_API_ORIGINS"})
    jobs_retention_days: float = field(default=7.0, metadata={"env": "QIWANG_JOBS_RETENTION_DAYS"})
    basemap_url: str | None = field(default=None, metadata={"env": "QIWANG_BASEMAP_URL"})
    basemap_key: str | None = field(default=None, repr=False, metadata={"env": "QIWANG_BASEMAP_KEY"})
    basemap_attribution: str | None = field(default=None, metadata={"env": "QIWANG_BASEMAP_ATTRIBUTION"})
    session_idle_minutes: float = field(default=30.0, metadata={"env": "QIWANG_SESSION_IDLE_MINUTES"})
    session_max_hours: float = field(default=12.0, metadata={"env": "QIWANG_SESSION_MAX_HOURS"})
    password_max_age_days: float = field(default=90.0, metadata={"env": "QIWANG_PASSWORD_MAX_AGE_DAYS"})
    token_days: float = field(default=90.0, metadata={"env": "QIWANG_TOKEN_DAYS"})
    auth_cache_seconds: float = field(default=5.0, metadata={"env": "QIWANG_AUTH_CACHE_SECONDS"})
    scope_cache_seconds: float = field(default=300.0, metadata={"env": "QIWANG_SCOPE_CACHE_SECONDS"})
    personal_data_key_file: Path = field(default=DEFAULT_PERSONAL_DATA_KEY_FILE,
                                         metadata={"env": "QIWANG_PERSONAL_DATA_KEY_FILE"})
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def name_of(self, key: str) -> str:
        """How to name setting `key` in a message: the variable or ``file: key`` it came from
        (the environment variable when it has its default).

        Parameters
        ----------
        key
            A field name of `Settings`, e.g. ``"work_mem"``.
        """
        return self.sources.get(key) or _ENV[key]


_MIN_BODY_BYTES = 1024
_MAX_BODY_DIGITS = 12


def _text(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"{raw!r} is not text")
    return raw


def _body_bytes(raw: Any) -> int:
    # Text from the environment, an integer from the file: the same rule for both.
    value = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    if isinstance(raw, str) and re.fullmatch(rf"[0-9]{{1,{_MAX_BODY_DIGITS}}}", raw):
        value = int(raw)
    if value is None or not _MIN_BODY_BYTES <= value < 10**_MAX_BODY_DIGITS:
        raise ValueError(f"{raw!r} is not a number of bytes (at least {_MIN_BODY_BYTES})")
    return value


def _origins(raw: Any) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(o, str) for o in items):
        raise ValueError(f"{raw!r} is not a list of origins")
    origins = tuple(o.strip().rstrip("/") for o in items if o.strip())
    for origin in origins:
        if origin == "*" or not re.fullmatch(r"https?://[^/\s]+", origin):
            raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], no wildcard)")
    return origins


def _http_url(raw: Any) -> str:
    url = _text(raw).strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{raw!r} is not an http:// or https:// URL")
    return url


def _token(raw: Any) -> str:
    token = _text(raw)
    # A header value: whitespace or control characters would end or split it.
    if not token.isprintable() or any(c.isspace() for c in token):
        raise ValueError("must be printable, without spaces")
    return token


def _number(raw: Any) -> float:
    try:
        return float(raw) if isinstance(raw, str | int | float) and not isinstance(raw, bool) else math.nan
    except ValueError:
        return math.nan


def _positive(unit: str, zero_allowed: bool = False) -> Callable[[Any], float]:
    def parse(raw: Any) -> float:
        value = _number(raw)
        if not (math.isfinite(value) and (value > 0 or (zero_allowed and value == 0))):
            raise ValueError(f"{raw!r} is not a {'non-negative' if zero_allowed else 'positive'} number of {unit}")
        return value

    return parse


_days = _positive("days")


def _key_file(raw: Any) -> Path:
    text = _text(raw).strip()
    if not text or "\0" in text:
        raise ValueError(f"{raw!r} is not a file path")
    path = Path(text).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


# How each setting's raw value (text from the environment, a TOML value from the file) is checked
# and converted. The database and MQTT URLs are checked by their owners (db.engine,
# telemetry.broker), which name the setting with Settings.name_of; the PostgreSQL durations and
# sizes by PostgreSQL itself when the app starts (app.limits).
_PARSE: dict[str, Callable[[Any], Any]] = {
    "database_url": _text, "app_database_url": _text, "public_url": _http_url, "mqtt_url": _text,
    "regulator_url": _http_url, "regulator_token": _token, "max_body_bytes": _body_bytes,
    "statement_timeout": _text, "process_statement_timeout": _text, "work_mem": _text,
    "cors_origins": _origins, "cors_api_origins": _origins, "jobs_retention_days": _days,
    "basemap_url": _text, "basemap_key": _text, "basemap_attribution": _text,
    "session_idle_minutes": _positive("minutes"), "session_max_hours": _positive("hours"),
    "password_max_age_days": _days, "token_days": _days, "auth_cache_seconds": _positive("seconds", True),
    "scope_cache_seconds": _positive("seconds", True),
    "personal_data_key_file": _key_file,
}
_ENV = {f.name: f.metadata["env"] for f in fields(Settings) if "env" in f.metadata}
assert set(_PARSE) == set(_ENV), "every setting needs its check"


def _read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise InvalidInput(SETTINGS_FILE_VARIABLE, f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(path, f"not TOML: {exc}") from None
    unknown = sorted(set(document) - set(_ENV))
    if unknown:
        raise InvalidInput(f"{path}: {unknown[0]}", f"unknown setting (known: {', '.join(_ENV)})")
    return document


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings from `environ` (default: the process's environment) and the file it names.

    Parameters
    ----------
    environ
        Environment variables; ``QIWANG_SETTINGS_FILE`` in it names an optional TOML file. A
        variable that is set and not empty wins over the file's key.

    Returns
    -------
    Settings
        Checked and converted; `Settings.sources` records where each given value came from.

    Raises
    ------
    InvalidInput
        For an unreadable file, an unknown key in it or a bad value; `field` names the variable or
        ``file: key``.
    """
    env = os.environ if environ is None else environ
    raw: dict[str, tuple[Any, str]] = {}
    path = env.get(SETTINGS_FILE_VARIABLE, "").strip()
    if path:
        raw |= {key: (value, f"{path}: {key}") for key, value in _read_file(str(Path(path))).items()}
    raw |= {key: (env[name], name) for key, name in _ENV.items() if env.get(name)}
    values: dict[str, Any] = {}
    for key, (value, source) in raw.items():
        try:
            values[key] = _PARSE[key](value)
        except ValueError as exc:
            raise InvalidInput(source, str(exc)) from None
    return Settings(**values, sources={key: source for key, (_, source) in raw.items()})
