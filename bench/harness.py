"""What the bench scripts share: their common options, the demo city's scratch database, step timings
with peak memory, and the summaries they print (median, p95, ratios against a baseline).

Imported first by every script (`import harness`): it puts the checkout's root on sys.path, so the
project's packages import when a script runs as ``.venv/bin/python bench/bench_x.py``.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import psutil
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from db import migrate  # noqa: E402  (importable once ROOT is on the path)
from db.scratch import ThrowawayDatabases  # noqa: E402

__all__ = ["ROOT", "Paired", "Steps", "Summary", "ThrowawayDatabases", "bench_account", "bench_arguments",
           "demo_city", "load_average", "pipes_in", "scratch_database", "timed"]

T = TypeVar("T")
U = TypeVar("U")


def _silent(_: str) -> None:
    pass


# -- options -------------------------------------------------------------------------------------

def bench_arguments(doc: str | None, *, pipes: int | None = None, seed: int | None = None,
                    reuse: str | None = None, keep: str | None = None,
                    pipes_help: str | None = None) -> argparse.ArgumentParser:
    """The options every bench spells alike; the script adds its own to the parser returned.

    Parameters
    ----------
    doc
        The script's docstring: its first line is the description.
    pipes, seed
        Defaults of --pipes (size of the demo city, pipes) and --seed (its generator's seed);
        None leaves the option out.
    reuse
        The scratch database's name: adds --reuse (keep it, and reuse it when it holds N pipes).
    keep
        Help of --keep (keep the scratch database, and whatever else the script names), or None.
    pipes_help
        Help of --pipes.
    """
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    if pipes is not None:
        parser.add_argument("--pipes", type=int, default=pipes, help=pipes_help)
    if seed is not None:
        parser.add_argument("--seed", type=int, default=seed)
    if reuse is not None:
        parser.add_argument("--reuse", action="store_true", help=f"keep/reuse {reuse} when it holds N pipes")
    if keep is not None:
        parser.add_argument("--keep", action="store_true", help=keep)
    return parser


# -- databases -----------------------------------------------------------------------------------

def pipes_in(url: str) -> int:
    """Pipes in the database at `url`; 0 when it does not exist or has no network schema."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM pipe")).scalar_one())
    except sa.exc.SQLAlchemyError:
        return 0
    finally:
        engine.dispose()


@contextmanager
def scratch_database(databases: ThrowawayDatabases, name: str, *, keep: bool = False) -> Iterator[str]:
    """Database `name` made afresh with the schema at head (its owner's URL); dropped at the end
    unless `keep`."""
    url = databases.migrated(name)
    try:
        yield url
    finally:
        if not keep:
            databases.drop(name)


@contextmanager
def demo_city(databases: ThrowawayDatabases, name: str, pipes: int, seed: int, *, reuse: bool = False,
              keep: bool = False, echo: Callable[[str], None] = print) -> Iterator[str]:
    """Database `name` holding the demo city of `pipes` pipes generated with `seed` (its owner's URL).

    With `reuse`, a database of that name already holding exactly `pipes` pipes is used (a 1M-pipe
    city takes minutes to load; its schema is brought to head) and kept at the end; otherwise it is
    made afresh, migrated and loaded, `echo` told the load time (s), and dropped at the end unless
    `reuse` or `keep`.
    """
    if not (reuse and pipes_in(databases.url(name)) == pipes):
        seconds: list[float] = []

        def load(engine: sa.Engine) -> None:
            from demo.city import load_demo

            start = time.perf_counter()
            load_demo(engine, pipes=pipes, seed=seed, echo=_silent)
            seconds.append(time.perf_counter() - start)

        databases.migrated(name, load)
        echo(f"demo city of {pipes:,} pipes (seed {seed}) loaded in {seconds[0]:.1f} s")
    else:
        migrate.upgrade(databases.url(name), "head")  # kept from an earlier run: bring its schema up to date
    try:
        yield databases.url(name)
    finally:
        if not (reuse or keep):
            databases.drop(name)


def bench_account(url: str, name: str, duties: tuple[str, ...] = ("regulator",), *, enterprise: str | None = None,
                  division: str | None = "210300") -> tuple[str, str]:
    """An account of the bench's database (made once; the city's regulator by default, who sees the
    whole demo city) and a new API token for it: (its database role, the token). The servers the
    benches start need one: every request is signed in (issue 18)."""
    from demo.accounts import signed_in_account

    account, token = signed_in_account(url, name, duties, enterprise=enterprise,
                                       division=None if enterprise else division, token_days=1,
                                       created_by="operator:bench")
    return account.db_role, token


# -- measuring -----------------------------------------------------------------------------------

def timed(call: Callable[[], T]) -> tuple[float, T]:
    """Wall time of one call (s) and what it returned."""
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def load_average() -> str:
    """The machine's load averages, for the start and end lines of a bench (others share the cores)."""
    return "load average {:.2f}, {:.2f}, {:.2f} (1, 5, 15 min)".format(*os.getloadavg())


class Steps:
    """Wall time and peak RSS between successive progress messages.

    Parameters
    ----------
    backend_pid
        A PostgreSQL backend whose resident set is sampled too (the one doing the work), or None.
    """

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
        """End the current step and start `next_label`."""
        now = time.perf_counter()
        self.rows.append((self.label, now - self.start, self.peak_py / 2**20, self.peak_pg / 2**20))
        self.label, self.start = next_label, now
        self.peak_py = self.me.memory_info().rss
        self.peak_pg = 0.0

    def report(self) -> None:
        """Stop sampling and print the table: seconds and peak RSS (MB) per step, and the total."""
        self._stop.set()
        print(f"{'step':<44}{'seconds':>9}{'peak RSS python MB':>20}{'peak RSS postgres MB':>22}")
        for label, seconds, py, pg in self.rows:
            print(f"{label[:44]:<44}{seconds:>9.1f}{py:>20.0f}{pg:>22.0f}")
        print(f"{'total':<44}{sum(r[1] for r in self.rows):>9.1f}")


@dataclass(frozen=True)
class Summary:
    """Median, p95 (linear interpolation between ranks), p99, min, max and mean of measurements.

    Build one with `Summary.of(seconds)` for latencies in ms, or `Summary.of(values, scale=1,
    unit="readings/s")` for other figures.
    """

    n: int
    median: float
    p95: float
    p99: float
    min: float
    max: float
    mean: float
    unit: str = "ms"

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray, *, scale: float = 1000.0, unit: str = "ms") -> Summary:
        """Summary of `values` multiplied by `scale` (default: seconds to milliseconds)."""
        a = np.asarray(values, dtype=float) * scale
        return cls(n=len(a), median=float(np.median(a)), p95=float(np.percentile(a, 95)),
                   p99=float(np.percentile(a, 99)), min=float(a.min()), max=float(a.max()), mean=float(a.mean()),
                   unit=unit)

    def text(self, **formats: str) -> str:
        """The statistics named, in that order, with their format specs: ``text(median="7.1f",
        p95="7.1f")`` gives ``'median    12.3 ms   p95    20.1 ms'``."""
        return "   ".join(f"{stat} {getattr(self, stat):{spec}} {self.unit}" for stat, spec in formats.items())


@dataclass
class Paired:
    """Our code and a baseline timed on the same inputs in this same process, one right after the
    other: whatever the machine's load does at the time weighs on both, so their ratio holds even
    when the absolute figures drift from one run to the next.
    """

    ours: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)

    def time(self, ours: Callable[[], T], baseline: Callable[[], U], *, swap: bool = False) -> tuple[T, U]:
        """Time one call of each (ours first, or the baseline first with `swap`); returns both results."""
        if swap:
            baseline_s, theirs = timed(baseline)
            ours_s, mine = timed(ours)
        else:
            ours_s, mine = timed(ours)
            baseline_s, theirs = timed(baseline)
        self.ours.append(ours_s)
        self.baseline.append(baseline_s)
        return mine, theirs

    def ratio(self, stat: str = "median") -> float:
        """How many times longer the baseline takes: its `stat` over ours ("mean": the throughput
        ratio, ours over the baseline's, as both ran the same number of calls)."""
        return float(getattr(Summary.of(self.baseline), stat) / getattr(Summary.of(self.ours), stat))
