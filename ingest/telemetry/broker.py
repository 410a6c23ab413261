"""A project-local mosquitto (Debian's package) for the demo and the tests, and MQTT URLs.

`QIWANG_MQTT_URL` (mqtt://host:port) points the ingest and the simulator at an existing broker;
without it `./qiwang demo` runs this one on 127.0.0.1. Its settings are the ones the ingest needs
to lose nothing: persistent sessions saved to disk (a restarted broker still holds what the ingest
has not acknowledged), and queues large enough to ride out a database outage at full rate while
the ingest holds back its acknowledgements.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from app.errors import QiwangError

MOSQUITTO = "/usr/sbin/mosquitto"
DEFAULT_URL = "mqtt://127.0.0.1:1883"

CONFIG = """\
listener {port} 127.0.0.1
allow_anonymous true
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


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


def parse_mqtt_url(url: str | None = None) -> BrokerAddress:
    """mqtt://host[:port] (QIWANG_MQTT_URL when not given; the local default otherwise)."""
    url = url or os.environ.get("QIWANG_MQTT_URL") or DEFAULT_URL
    parts = urlsplit(url)
    try:
        port = parts.port or 1883
    except ValueError:
        port = -1
    if parts.scheme != "mqtt" or not parts.hostname or not 0 < port < 65536:
        raise QiwangError(f"MQTT URL {url!r} is not mqtt://host[:port]")
    return BrokerAddress(parts.hostname, port)


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
    """mosquitto on 127.0.0.1:port with its persistence under `data_dir`; stop() saves it."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> BrokerAddress:
        return BrokerAddress("127.0.0.1", self.port)

    def start(self, timeout_s: float = 10.0) -> LocalBroker:
        if not Path(MOSQUITTO).exists():
            raise QiwangError(f"{MOSQUITTO} is missing; run ./qiwang, which installs Debian's mosquitto")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "mosquitto.conf"
        config.write_text(CONFIG.format(port=self.port, data_dir=self.data_dir))
        command = [MOSQUITTO, "-c", str(config)]
        if os.geteuid() == 0:
            # As root mosquitto drops to the 'mosquitto' user, which must then own its files.
            shutil.chown(self.data_dir, "mosquitto")
            for path in self.data_dir.iterdir():
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
                raise QiwangError(f"mosquitto did not start on port {self.port}: {error or 'see ' + str(self.data_dir)}")
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

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
