"""A project-local mosquitto (Debian's package) for the demo and the tests, and MQTT URLs.

The mqtt_url setting (`QIWANG_MQTT_URL`, mqtt://[user:password@]host:port; core.settings) points
the ingest and the simulator at an existing broker; without it `./qiwang demo` runs this one on
127.0.0.1. Its settings are the ones the ingest needs to lose nothing: persistent sessions saved to
disk (a restarted broker still holds what the ingest has not acknowledged), and queues large enough
to ride out a database outage at full rate while the ingest holds back its acknowledgements.

Nobody connects anonymously. Accounts (`credentials.json` in the broker's directory, mode 0600;
mosquitto gets PBKDF2-SHA512 hashes in `passwd` and the rights in `acl`):
- `qiwang-ingest`, the service account: reads everything under `qiwang/` (so that messages on
  topics outside the scheme are quarantined, not lost) and alone publishes the alarm feed;
- `qiwang-replay` (`./qiwang quarantine replay`): publishes telemetry of any enterprise;
- `qiwang-dispatch`: reads the alarm feed (dispatch screens, paging);
- one account per gateway, publishing only under the prefixes of its enterprises,
  `qiwang/{enterprise_code}/…` (never their alarm feed); "+" for a head-end serving any.
mosquitto drops what an account may not publish (MQTT 3.1.1 cannot tell the publisher).
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from core.errors import InvalidInput, QiwangError
from telemetry.health import ComponentHealth

log = logging.getLogger("qiwang.mqtt")

MOSQUITTO = "/usr/sbin/mosquitto"
DEFAULT_URL = "mqtt://127.0.0.1:1883"

CONFIG = """\
listener {port} 127.0.0.1
allow_anonymous false
password_file {data_dir}/passwd
acl_file {data_dir}/acl
persistence true
persistence_location {data_dir}/
autosave_interval 30
# Unacknowledged messages the broker lets one client hold, and messages it queues beyond them.
max_inflight_messages 1000
max_queued_messages 2000000
max_queued_bytes 0
log_dest file {data_dir}/mosquitto.log
log_type error
log_type warning
log_type notice
"""


INGEST_USER = "qiwang-ingest"
REPLAY_USER = "qiwang-replay"
DISPATCH_USER = "qiwang-dispatch"
ANY_ENTERPRISE = "+"
PBKDF2_ITERATIONS = 101        # mosquitto_passwd's own default ($7$: PBKDF2-HMAC-SHA512, 12-byte salt)


@dataclass(frozen=True)
class BrokerAddress:
    """Where a broker listens, and the account to connect with (None: anonymous)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """mqtt://[user@]host:port — never with the password (it goes to logs and screens)."""
        user = f"{self.username}@" if self.username else ""
        return f"mqtt://{user}{self.host}:{self.port}"

    def authenticate(self, client: object) -> None:
        """Give a paho client this address's credentials (before it connects)."""
        if self.username is not None:
            client.username_pw_set(self.username, self.password)  # type: ignore[attr-defined]


def parse_mqtt_url(url: str | None = None, field: str | None = None) -> BrokerAddress:
    """The broker address of an MQTT URL.

    Parameters
    ----------
    url
        ``mqtt://[user:password@]host[:port]`` (port 1883 when left out); None: DEFAULT_URL.
    field
        Where the URL came from (``--broker``, ``QIWANG_MQTT_URL``), named in the error.

    Raises
    ------
    InvalidInput
        When `url` is no MQTT URL; the message never shows the password.
    """
    url = url or DEFAULT_URL
    parts = urlsplit(url)
    try:
        port = parts.port or 1883
    except ValueError:
        port = -1
    if parts.scheme != "mqtt" or not parts.hostname or not 0 < port < 65536:
        raise InvalidInput(field, f"MQTT URL {parts._replace(netloc=parts.hostname or '').geturl()!r} is not "
                           "mqtt://[user:password@]host[:port]")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return BrokerAddress(parts.hostname, port, username, password)


def password_hash(password: str, salt: bytes | None = None) -> str:
    """A mosquitto 2 password_file hash ($7$: PBKDF2-HMAC-SHA512), as mosquitto_passwd writes it."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def acl_text(gateways: Mapping[str, Iterable[str]]) -> str:
    """mosquitto's acl_file: the service accounts' rights, then each gateway's prefixes."""
    lines = [f"user {INGEST_USER}", "topic read qiwang/#", "topic write qiwang/+/alarms/#", "",
             f"user {REPLAY_USER}", "topic write qiwang/#", "topic deny qiwang/+/alarms/#", "",
             f"user {DISPATCH_USER}", "topic read qiwang/+/alarms/#", ""]
    for name, enterprises in gateways.items():
        lines.append(f"user {name}")
        for enterprise in enterprises:
            lines += [f"topic write qiwang/{enterprise}/#", f"topic deny qiwang/{enterprise}/alarms/#"]
        lines.append("")
    return "\n".join(lines)


def _account_name(name: str) -> str:
    if not name or any(c in name for c in " \t\n:#+/") or not name.isprintable():
        raise QiwangError(f"MQTT account name {name!r} must be printable, without spaces, ':', '/', '+' or '#'")
    return name


def _enterprise_prefix(code: str) -> str:
    if code != ANY_ENTERPRISE and not (len(code) == 10 and code.isascii() and code.isdigit()):
        raise QiwangError(f"gateway enterprise {code!r} is not a 10-digit enterprise code or '+'")
    return code


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def is_listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def mosquitto_can_write(directory: Path) -> bool:
    """Can mosquitto write its persistence file in `directory`?

    Started as root, mosquitto drops to the 'mosquitto' user: a directory below a parent closed to
    that user (pytest's /tmp/pytest-of-root, a home such as /root) starts fine but silently keeps
    no sessions across a restart — every message the broker held would be lost.
    """
    if os.geteuid() != 0:
        return os.access(directory, os.W_OK | os.X_OK)
    command = ["runuser", "-u", "mosquitto", "--", "test", "-w", str(directory), "-a", "-x", str(directory)]
    try:
        return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True).returncode == 0
    except FileNotFoundError:  # no runuser: util-linux is essential on Debian, so this is odd
        return False


def project_broker_dir(project_root: Path) -> Path:
    """var/mosquitto of the project, or /var/tmp/qiwang-<hash>/mosquitto when mosquitto cannot reach it."""
    local = project_root / "var" / "mosquitto"
    try:
        local.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(local, "mosquitto")
        if mosquitto_can_write(local):
            return local
    except (OSError, LookupError):
        pass
    digest = hashlib.sha1(str(project_root.resolve()).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"qiwang-{digest}" / "mosquitto"


class LocalBroker:
    """mosquitto on 127.0.0.1:port with its persistence under `data_dir`; stop() saves it.

    `gateways`: account name → the enterprise codes it publishes for ("+": any). Passwords are
    made once and kept in `credentials.json` (0600), so that a restart keeps every account."""

    def __init__(self, data_dir: Path, port: int | None = None,
                 gateways: Mapping[str, Iterable[str]] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.gateways = {_account_name(name): [_enterprise_prefix(code) for code in codes]
                         for name, codes in (gateways or {}).items()}
        self.process: subprocess.Popen[bytes] | None = None
        self.health = ComponentHealth("mosquitto",
                                      alive=lambda: self.process is not None and self.process.poll() is None)
        self._credentials: dict[str, str] = {}

    @property
    def address(self) -> BrokerAddress:
        """The broker without an account (anonymous: refused)."""
        return BrokerAddress("127.0.0.1", self.port)

    def account(self, username: str) -> BrokerAddress:
        """The broker with one of its accounts (the service accounts or a gateway)."""
        if not self._credentials:
            self._write_accounts()
        if username not in self._credentials:
            raise QiwangError(f"the local broker has no MQTT account {username!r} "
                              f"(accounts: {', '.join(sorted(self._credentials))})")
        return BrokerAddress("127.0.0.1", self.port, username, self._credentials[username])

    @property
    def ingest(self) -> BrokerAddress:
        return self.account(INGEST_USER)

    @property
    def credentials_file(self) -> Path:
        return self.data_dir / "credentials.json"

    def _write_accounts(self) -> None:
        """credentials.json (kept passwords, new ones for new accounts), passwd and acl."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            kept = json.loads(self.credentials_file.read_text())
        except (OSError, ValueError):
            kept = {}
        names = [INGEST_USER, REPLAY_USER, DISPATCH_USER, *self.gateways]
        self._credentials = {name: kept.get(name) or secrets.token_urlsafe(24) for name in names}
        descriptor = os.open(self.credentials_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            os.fchmod(out.fileno(), 0o600)
            json.dump(self._credentials, out, indent=1)
        for name, text in (("passwd", "".join(f"{user}:{password_hash(password)}\n"
                                              for user, password in self._credentials.items())),
                           ("acl", acl_text(self.gateways))):
            path = self.data_dir / name
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as out:
                os.fchmod(out.fileno(), 0o600)
                out.write(text)

    def start(self, timeout_s: float = 10.0) -> LocalBroker:
        if not Path(MOSQUITTO).exists():
            raise QiwangError(f"{MOSQUITTO} is missing; run ./qiwang, which installs Debian's mosquitto")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "mosquitto.conf"
        config.write_text(CONFIG.format(port=self.port, data_dir=self.data_dir))
        self._write_accounts()
        command = [MOSQUITTO, "-c", str(config)]
        if os.geteuid() == 0:
            # As root mosquitto drops to the 'mosquitto' user, which must then own its files
            # (but not the plain-text credentials: those are ours alone).
            shutil.chown(self.data_dir, "mosquitto")
            for path in self.data_dir.iterdir():
                if path != self.credentials_file:
                    shutil.chown(path, "mosquitto")
        if not mosquitto_can_write(self.data_dir):
            raise QiwangError(
                f"mosquitto cannot write its sessions to {self.data_dir} (as root it runs as the 'mosquitto' "
                "user, and a parent directory is closed to that user): a restarted broker would lose every "
                "message it held. Give it a directory that user can reach (e.g. under /var/tmp).")
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while not is_listening("127.0.0.1", self.port):
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace").strip() if self.process.stderr else ""
                raise QiwangError(f"mosquitto did not start on port {self.port}: "
                                  f"{error or 'see ' + str(self.data_dir)}")
            if time.monotonic() > deadline:
                self.stop()
                raise QiwangError(f"mosquitto did not listen on port {self.port} within {timeout_s:.0f} s")
            time.sleep(0.05)
        return self

    @property
    def persistence_file(self) -> Path:
        """Where mosquitto saves sessions and the messages it holds (written at stop and every 30 s)."""
        return self.data_dir / "mosquitto.db"

    def stop(self) -> None:
        """Stop gracefully: mosquitto writes its persistence file (sessions, queued messages) on SIGTERM."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def supervise(self, stop: threading.Event, every_s: float = 1.0) -> None:
        """Until `stop`: reap mosquitto when it exits (no zombie), report it, and start it again
        on the same port and persistence (sessions and held messages survive)."""
        while not stop.wait(every_s):
            process = self.process
            if process is None or process.poll() is None:
                continue
            error = process.stderr.read().decode(errors="replace").strip()[-300:] if process.stderr else ""
            self.health.failed(f"mosquitto exited with status {process.returncode}" + (f": {error}" if error else ""))
            self.process = None
            try:
                self.start()
                self.health.restarted()
            except QiwangError as exc:
                log.error("mosquitto could not be restarted: %s; trying again", exc)

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
