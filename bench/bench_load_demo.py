"""Generate and load a demo city of N pipes (default 1,000,000); print time and peak memory per step.

    .venv/bin/python bench/bench_load_demo.py [--pipes 1000000] [--seed 42] [--keep]

Runs against a scratch database `qiwang_bench` in the embedded cluster (or beside DATABASE_URL's
database), dropped at the end unless --keep. Peak memory is the resident set of this Python process
(sampled every 20 ms) and of the PostgreSQL backend serving the load.
"""
from __future__ import annotations

import harness  # first: puts the checkout on sys.path
import psutil
import sqlalchemy as sa

from demo.city import load_demo

DATABASE = "qiwang_bench"


def main() -> None:
    parser = harness.bench_arguments(__doc__, pipes=1_000_000, seed=42, keep="keep the scratch database")
    args = parser.parse_args()

    with harness.scratch_database(harness.ThrowawayDatabases(), DATABASE, keep=args.keep) as url:
        engine = sa.create_engine(url, pool_size=1, max_overflow=0)
        with engine.connect() as conn:
            backend = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        steps = harness.Steps(backend if psutil.pid_exists(backend) else None)  # same pooled connection loads
        steps.label = "generate: street grid and network topology"
        counts = load_demo(engine, pipes=args.pipes, seed=args.seed, echo=lambda msg: steps.mark(_step_name(msg)))
        steps.mark("end")
        print(f"demo city: {args.pipes:,} pipes, seed {args.seed}; rows: " +
              ", ".join(f"{t} {n:,}" for t, n in counts.items() if n > 100))
        steps.report()
        engine.dispose()


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
