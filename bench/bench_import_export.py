"""Export then import N pipes through a GeoPackage (default 100,000); print seconds and rows/s.

    .venv/bin/python bench/bench_import_export.py [--pipes 100000] [--seed 42] [--whole] [--keep]

Loads a demo city of N pipes into a scratch database `qiwang_bench_exchange` (embedded cluster, or
beside DATABASE_URL's database), exports its pipe layer to a GeoPackage, empties the network (the
divisions and enterprises stay, as in a real deployment) and imports the file back: nodes are
rebuilt from the pipe ends. With --whole, every default layer is exported and imported instead
(nodes, valves, customers, … named by code). The scratch database and the file are removed at the
end unless --keep.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import ThrowawayDatabases

from db import migrate
from demo.city import load_demo
from ingest.exporter import DEFAULT_LAYERS, export
from ingest.importer import import_file

DATABASE = "qiwang_bench_exchange"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipes", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--whole", action="store_true", help="every default layer, not only the pipes")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database and the file")
    args = parser.parse_args()

    databases = ThrowawayDatabases()
    url = databases.create(DATABASE)
    migrate.upgrade(url)
    engine = sa.create_engine(url)
    folder = Path(tempfile.mkdtemp(prefix="qiwang_bench_"))
    out = folder / "pipes.gpkg"
    try:
        load_demo(engine, pipes=args.pipes, seed=args.seed, echo=lambda _: None)
        started = time.perf_counter()
        layers = list(DEFAULT_LAYERS) if args.whole else ["pipe"]
        result = export(engine, out, "gpkg", layers=layers)
        export_s = time.perf_counter() - started
        with engine.begin() as conn:  # an empty network; the registry (divisions, enterprises) stays
            conn.execute(sa.text(f"TRUNCATE {', '.join(dict.fromkeys([*layers, 'node']))} RESTART IDENTITY CASCADE"))
        started = time.perf_counter()
        report = import_file(engine, out)
        import_s = time.perf_counter() - started
        features = sum(layer.features for layer in report.layers)
        pipes = next(layer for layer in report.layers if layer.table == "pipe")
        print(f"{args.pipes:,} pipes (seed {args.seed}); {len(layers)} layer(s), {sum(result.counts.values()):,} "
              f"features; GeoPackage {out.stat().st_size / 2**20:.0f} MB")
        print(f"{'step':<10}{'seconds':>10}{'features/s':>12}")
        print(f"{'export':<10}{export_s:>10.1f}{sum(result.counts.values()) / export_s:>12,.0f}")
        print(f"{'import':<10}{import_s:>10.1f}{features / import_s:>12,.0f}")
        if pipes.nodes_by_code:
            print("import took the pipes' nodes by code from the node layer")
        else:
            print(f"import built {pipes.new_nodes:,} nodes, snapped {pipes.snapped_ends:,} ends")
    finally:
        engine.dispose()
        if not args.keep:
            out.unlink(missing_ok=True)
            folder.rmdir()
            databases.drop(DATABASE)
        else:
            print(f"kept: database {DATABASE}, file {out}")


if __name__ == "__main__":
    main()
