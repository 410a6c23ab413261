"""Export then import N pipes through a GeoPackage (default 100,000); print seconds and rows/s.

    .venv/bin/python bench/bench_import_export.py [--pipes 100000] [--seed 42] [--whole] [--keep]

Loads a demo city of N pipes into a scratch database `qiwang_bench_exchange` (embedded cluster, or
beside DATABASE_URL's database), exports its pipe layer to a GeoPackage, empties the network (the
divisions and enterprises stay, as in a real deployment) and imports the file back: nodes are
made from the pipes' from/to node codes (nodes by name, issue 19), then, in the same process and
from a copy of the file without those two fields, rebuilt by snapping the pipe ends (the baseline);
the ratio of the two is printed. With --whole, every default layer is exported and imported instead
(nodes, valves, customers, … named by code). The scratch database and the file are removed at the
end unless --keep.
"""
from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

import harness  # first: puts the checkout on sys.path
import pyogrio
import sqlalchemy as sa

from ingest.exporter import DEFAULT_LAYERS, export
from ingest.importer import import_file

DATABASE = "qiwang_bench_exchange"


def main() -> None:
    parser = harness.bench_arguments(__doc__, pipes=100_000, seed=42, keep="keep the scratch database and the file")
    parser.add_argument("--whole", action="store_true", help="every default layer, not only the pipes")
    args = parser.parse_args()

    with harness.demo_city(harness.ThrowawayDatabases(), DATABASE, args.pipes, args.seed, keep=args.keep) as url:
        folder = Path(tempfile.mkdtemp(prefix="qiwang_bench_"))
        out = folder / "pipes.gpkg"
        engine = sa.create_engine(url)
        try:
            exchange(engine, out, args.pipes, args.seed, list(DEFAULT_LAYERS) if args.whole else ["pipe"])
        finally:
            engine.dispose()
            if not args.keep:
                out.unlink(missing_ok=True)
                folder.rmdir()
            else:
                print(f"kept: database {DATABASE}, file {out}")


def exchange(engine: sa.Engine, out: Path, pipes: int, seed: int, layers: list[str]) -> None:
    """Export `layers` to the GeoPackage `out`, empty the network, import the file back (nodes by
    name), then again from a copy without node codes (snapping); print the figures."""
    export_s, result = harness.timed(lambda: export(engine, out, "gpkg", layers=layers))
    print(f"{pipes:,} pipes (seed {seed}); {len(layers)} layer(s), {sum(result.counts.values()):,} "
          f"features; GeoPackage {out.stat().st_size / 2**20:.0f} MB")
    print(f"{'step':<22}{'seconds':>10}{'features/s':>12}")
    print(f"{'export':<22}{export_s:>10.1f}{sum(result.counts.values()) / export_s:>12,.0f}")
    runs = [("import, nodes by name", out)]
    if layers == ["pipe"]:
        snapping = out.with_name("pipes_without_node_codes.gpkg")
        frame = pyogrio.read_dataframe(out, layer="pipe")
        pyogrio.write_dataframe(frame.drop(columns=["from_node_code", "to_node_code"]), snapping, layer="pipe")
        runs.append(("import, snapping", snapping))
    seconds = {}
    for label, path in runs:
        with engine.begin() as conn:  # an empty network; the registry (divisions, enterprises) stays
            conn.execute(sa.text(f"TRUNCATE {', '.join(dict.fromkeys([*layers, 'node']))} RESTART IDENTITY CASCADE"))
        seconds[label], report = harness.timed(partial(import_file, engine, path))
        features = sum(layer.features for layer in report.layers)
        print(f"{label:<22}{seconds[label]:>10.1f}{features / seconds[label]:>12,.0f}")
        pipe_layer = next(layer for layer in report.layers if layer.table == "pipe")
        print(f"  {pipe_layer.new_nodes:,} new nodes, {pipe_layer.snapped_ends:,} ends moved")
        if path != out:
            path.unlink()
    if len(seconds) == 2:
        print(f"nodes by name / snapping: {seconds['import, nodes by name'] / seconds['import, snapping']:.2f}×")


if __name__ == "__main__":
    main()
