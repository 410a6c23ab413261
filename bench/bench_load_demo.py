"""Generate and load a demo city of N pipes (default 1,000,000); print time and peak memory per step.

    .venv/bin/python bench/bench_load_demo.py [--pipes 1000000] [--seed 42] [--keep]

Runs against a scratch database `qiwang_bench` in the embedded cluster (or beside DATABASE_URL's
database), dropped at the end unless --keep. Peak memory is the resident set of this Python process
(sampled every 20 ms) and of the PostgreSQL backend serving the load.
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import psutil
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import ThrowawayDatabases

from db import migrate
from demo.city import load_demo


class Steps:
    """Wall time and peak RSS between successive progress messages."""

    def __init__(self, backend_pid: int | None = None) -> None:
        self.me = psutil.Process()
        self.backend = psutil.Process(backend_pid) if backend_pid else None
        self.rows: list[tuple[str, float, float, float]] = []
        self.label, self.start = "start", time.perf_counter()
        self.peak_py = self.peak_pg = 0.0
        self.total_start = self.start
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_py = max(self.peak_py, self.me.memory_info().rss)
            if self.backend:
                try:
                    self.peak_pg = max(self.peak_pg, self.backend.memory_info().rss)
                except psutil.Error:
                    pass
            time.sleep(0.02)

    def mark(self, next_label: str) -> None:
        now = time.perf_counter()
        self.rows.append((self.label, now - self.start, self.peak_py / 2**20, self.peak_pg / 2**20))
        self.label, self.start = next_label, now
        self.peak_py = self.me.memory_info().rss
        self.peak_pg = 0.0

    def report(self) -> None:
        self._stop.set()
        print(f"{'step':<44}{'seconds':>9}{'peak RSS python MB':>20}{'peak RSS postgres MB':>22}")
        for label, seconds, py, pg in self.rows:
            print(f"{label[:44]:<44}{seconds:>9.1f}{py:>20.0f}{pg:>22.0f}")
        print(f"{'total':<44}{sum(r[1] for r in self.rows):>9.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipes", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    databases = ThrowawayDatabases()
    url = databases.create("qiwang_bench")
    migrate.upgrade(url)
    engine = sa.create_engine(url, pool_size=1, max_overflow=0)
    with engine.connect() as conn:
        backend = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    steps = Steps(backend if psutil.pid_exists(backend) else None)  # same pooled connection does the load
    steps.label = "generate: street grid and network topology"
    counts = load_demo(engine, pipes=args.pipes, seed=args.seed, echo=lambda msg: steps.mark(_step_name(msg)))
    steps.mark("end")
    print(f"demo city: {args.pipes:,} pipes, seed {args.seed}; rows: " +
          ", ".join(f"{t} {n:,}" for t, n in counts.items() if n > 100))
    steps.report()
    engine.dispose()
    if not args.keep:
        databases.drop("qiwang_bench")


def _step_name(message: str) -> str:
    if message.startswith("grid"):
        return "generate: attributes, geometry, customers"
    if message.startswith("copy "):
        return message.split(":")[0]
    if message.startswith("rebuild"):
        return "rebuild indexes, unique keys, foreign keys"
    if message == "analyze":
        return "analyze + commit"
    return message


if __name__ == "__main__":
    main()
