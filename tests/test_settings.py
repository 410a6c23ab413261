"""core.settings: one typed object from the environment and QIWANG_SETTINGS_FILE, checked once.

No database: the settings are plain data in, plain data out.
"""
from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from core.errors import InvalidInput
from core.settings import Settings, load_settings

pytestmark = pytest.mark.nodb

ROOT = Path(__file__).resolve().parent.parent


def refused(environ: dict[str, str]) -> InvalidInput:
    with pytest.raises(InvalidInput) as raised:
        load_settings(environ)
    return raised.value


def test_defaults_without_environment_or_file() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert (settings.database_url, settings.public_url, settings.mqtt_url, settings.regulator_url,
            settings.regulator_token) == (None, None, None, None, None)
    assert (settings.max_body_bytes, settings.statement_timeout, settings.process_statement_timeout,
            settings.work_mem) == (1_048_576, "15s", "120s", "32MB")
    assert (settings.cors_origins, settings.cors_api_origins, settings.jobs_retention_days) == ((), (), 7.0)
    assert settings.name_of("work_mem") == "QIWANG_WORK_MEM"
    assert settings.personal_data_key_file == ROOT / "var" / "keys" / "personal_data.json"


def test_a_relative_key_file_is_under_the_project_root() -> None:
    settings = load_settings({"QIWANG_PERSONAL_DATA_KEY_FILE": "secrets/keys.json"})
    assert settings.personal_data_key_file == ROOT / "secrets" / "keys.json"


# Every variable: as set in the environment, the field it fills and the value read from it.
VARIABLES = [
    ("DATABASE_URL", "postgresql://owner:pw@db/gas", "database_url", "postgresql://owner:pw@db/gas"),
    ("QIWANG_APP_DATABASE_URL", "postgresql://qiwang_app:pw@db/gas", "app_database_url",
     "postgresql://qiwang_app:pw@db/gas"),
    ("QIWANG_PUBLIC_URL", "https://gis.example.cn/qiwang", "public_url", "https://gis.example.cn/qiwang"),
    ("QIWANG_MQTT_URL", "mqtt://ingest:pw@broker:1884", "mqtt_url", "mqtt://ingest:pw@broker:1884"),
    ("QIWANG_REGULATOR_URL", "https://regulator.example.cn/in", "regulator_url", "https://regulator.example.cn/in"),
    ("QIWANG_REGULATOR_TOKEN", "s3cr3t-T0ken", "regulator_token", "s3cr3t-T0ken"),
    ("QIWANG_MAX_BODY_BYTES", "2048", "max_body_bytes", 2048),
    ("QIWANG_STATEMENT_TIMEOUT", "5s", "statement_timeout", "5s"),
    ("QIWANG_PROCESS_STATEMENT_TIMEOUT", "1min", "process_statement_timeout", "1min"),
    ("QIWANG_WORK_MEM", "64MB", "work_mem", "64MB"),
    ("QIWANG_CORS_ORIGINS", " https://map.example.cn/ ,http://localhost:8080", "cors_origins",
     ("https://map.example.cn", "http://localhost:8080")),
    ("QIWANG_CORS_API_ORIGINS", "", "cors_api_origins", ()),
    ("QIWANG_JOBS_RETENTION_DAYS", "0.5", "jobs_retention_days", 0.5),
    ("QIWANG_BASEMAP_URL", "https://t0.example/{z}/{x}/{y}?tk={key}", "basemap_url",
     "https://t0.example/{z}/{x}/{y}?tk={key}"),
    ("QIWANG_BASEMAP_KEY", "k", "basemap_key", "k"),
    ("QIWANG_BASEMAP_ATTRIBUTION", "© 天地图", "basemap_attribution", "© 天地图"),
    ("QIWANG_SESSION_IDLE_MINUTES", "10", "session_idle_minutes", 10.0),
    ("QIWANG_SESSION_MAX_HOURS", "8.5", "session_max_hours", 8.5),
    ("QIWANG_PASSWORD_MAX_AGE_DAYS", "30", "password_max_age_days", 30.0),
    ("QIWANG_TOKEN_DAYS", "1", "token_days", 1.0),
    ("QIWANG_AUTH_CACHE_SECONDS", "0", "auth_cache_seconds", 0.0),
    ("QIWANG_SCOPE_CACHE_SECONDS", "60", "scope_cache_seconds", 60.0),
    ("QIWANG_PERSONAL_DATA_KEY_FILE", "/etc/qiwang/personal_data.json", "personal_data_key_file",
     Path("/etc/qiwang/personal_data.json")),
]


def test_every_variable_is_read_and_converted() -> None:
    # a test knob among them is no setting: ignored
    settings = load_settings({"QIWANG_FUZZ_EXAMPLES": "5"} | {variable: text for variable, text, _, _ in VARIABLES})
    assert settings == Settings(**{field: value for _, _, field, value in VARIABLES})
    assert {f.name for f in fields(Settings)} - {"sources"} == {field for _, _, field, _ in VARIABLES}
    assert settings.name_of("regulator_token") == "QIWANG_REGULATOR_TOKEN"
    # Secrets (passwords in URLs, tokens, keys) stay out of logs and tracebacks.
    assert not re.search(r"pw|s3cr3t|basemap_key", repr(settings))


def test_the_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "qiwang.toml"
    path.write_text('public_url = "https://file.example.cn"\nmax_body_bytes = 4096\n'
                    'cors_origins = ["https://a.example.cn", "https://b.example.cn"]\njobs_retention_days = 30\n'
                    'work_mem = "16MB"\n', encoding="utf-8")
    settings = load_settings({"QIWANG_SETTINGS_FILE": str(path), "QIWANG_WORK_MEM": "8MB", "QIWANG_PUBLIC_URL": ""})
    assert (settings.public_url, settings.max_body_bytes, settings.cors_origins, settings.jobs_retention_days,
            settings.work_mem) == ("https://file.example.cn", 4096, ("https://a.example.cn", "https://b.example.cn"),
                                   30.0, "8MB")
    assert settings.name_of("max_body_bytes") == f"{path}: max_body_bytes"
    assert settings.name_of("work_mem") == "QIWANG_WORK_MEM"          # set in both: the environment's
    assert settings.name_of("public_url") == f"{path}: public_url"    # set but empty: not set


BAD_VALUES = [
    ("QIWANG_MAX_BODY_BYTES", "1k", "'1k' is not a number of bytes (at least 1024)"),
    ("QIWANG_MAX_BODY_BYTES", "1023", "'1023' is not a number of bytes (at least 1024)"),
    ("QIWANG_CORS_ORIGINS", "https://ok.example.cn,*", "'*' is not an origin (scheme://host[:port], no wildcard)"),
    ("QIWANG_CORS_API_ORIGINS", "https://a.example.cn/path",
     "'https://a.example.cn/path' is not an origin (scheme://host[:port], no wildcard)"),
    ("QIWANG_PUBLIC_URL", "gis.example.cn", "'gis.example.cn' is not an http:// or https:// URL"),
    ("QIWANG_REGULATOR_URL", "ftp://regulator", "'ftp://regulator' is not an http:// or https:// URL"),
    ("QIWANG_REGULATOR_TOKEN", "two words", "must be printable, without spaces"),
    ("QIWANG_REGULATOR_TOKEN", "line\nbreak", "must be printable, without spaces"),
    ("QIWANG_JOBS_RETENTION_DAYS", "0", "'0' is not a positive number of days"),
    ("QIWANG_JOBS_RETENTION_DAYS", "nan", "'nan' is not a positive number of days"),
    ("QIWANG_JOBS_RETENTION_DAYS", "a week", "'a week' is not a positive number of days"),
    ("QIWANG_SESSION_IDLE_MINUTES", "0", "'0' is not a positive number of minutes"),
    ("QIWANG_AUTH_CACHE_SECONDS", "-1", "'-1' is not a non-negative number of seconds"),
    ("QIWANG_PERSONAL_DATA_KEY_FILE", " ", "' ' is not a file path"),
]


@pytest.mark.parametrize(("variable", "value", "reason"), BAD_VALUES)
def test_a_bad_variable_is_named_with_the_reason(variable: str, value: str, reason: str) -> None:
    error = refused({variable: value})
    assert (error.field, error.reason) == (variable, reason)
    assert str(error) == f"{variable}: {reason}"


@pytest.mark.parametrize(("text", "reason"), [
    ("max_body_bytes = true", "True is not a number of bytes (at least 1024)"),
    ("max_body_bytes = 100", "100 is not a number of bytes (at least 1024)"),
    ('cors_origins = "https://a.example.cn"', None),    # one origin as text: accepted as in the environment
    ("cors_origins = [1]", "[1] is not a list of origins"),
    ("public_url = 5", "5 is not text"),
    ("jobs_retention_days = -1", "-1 is not a positive number of days"),
])
def test_a_bad_file_value_names_the_file_and_key(tmp_path: Path, text: str, reason: str | None) -> None:
    path = tmp_path / "qiwang.toml"
    path.write_text(text + "\n", encoding="utf-8")
    key = text.split(" ")[0]
    if reason is None:
        assert load_settings({"QIWANG_SETTINGS_FILE": str(path)}).cors_origins == ("https://a.example.cn",)
        return
    assert str(refused({"QIWANG_SETTINGS_FILE": str(path)})) == f"{path}: {key}: {reason}"


def test_an_unreadable_or_unknown_file_content_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    assert str(refused({"QIWANG_SETTINGS_FILE": str(missing)})) == (
        f"QIWANG_SETTINGS_FILE: cannot read {missing}: No such file or directory")
    broken = tmp_path / "broken.toml"
    broken.write_text("work_mem = \n", encoding="utf-8")
    assert str(refused({"QIWANG_SETTINGS_FILE": str(broken)})) == (
        f"{broken}: not TOML: Invalid value (at line 1, column 12)")
    typo = tmp_path / "typo.toml"
    typo.write_text('work_memory = "64MB"\n', encoding="utf-8")
    error = refused({"QIWANG_SETTINGS_FILE": str(typo)})
    assert error.field == f"{typo}: work_memory"
    assert error.reason.startswith("unknown setting (known: database_url, app_database_url, public_url, ")


def test_every_setting_is_documented_in_the_module_docstring() -> None:
    import core.settings

    doc = core.settings.__doc__ or ""
    for f in fields(Settings):
        if f.name != "sources":
            assert re.search(rf"^{f.name} +{f.metadata['env']} ", doc, re.M), f.name


def test_settings_are_read_only_in_core_settings() -> None:
    """One source of truth: no other module of the application reads the environment for settings."""
    allowed = {
        "core/settings.py",
        # Not settings: the test runner decides whether to start the embedded cluster as the tests'
        # own fixtures do (by DATABASE_URL).
        "app/cli/main.py",
    }
    readers = {str(path.relative_to(ROOT)) for folder in ("core", "db", "network_analysis", "spatial", "ingest",
                                                          "telemetry", "demo", "emergency", "app")
               for path in (ROOT / folder).rglob("*.py")
               if re.search(r"os\.environ|os\.getenv|getenv\(|envvar=", path.read_text(encoding="utf-8"))}
    assert readers <= allowed, sorted(readers - allowed)
