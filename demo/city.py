"""The demo city: a plausible, deterministic part of Anshan (鞍山) at any size.

Layout (local metres, x east, y north, before a gentle warp and rotation into the storage CRS, the
schema's choice: EPSG:4550 in the migrations):

- A grid of blocks `BLOCK_W` × `BLOCK_H` between streets; four districts as west-to-east strips
  (铁西, 铁东, 立山, 千山). Two enterprises: one serves the first three districts, the other 千山,
  each with a network of its own; a park column separates them.
- A railway (长大铁路) runs north-south through one block column and a large river (运粮河)
  east-west through one block row: mains cross both, with valves on both banks.
- Per enterprise: a gate station (门站, high-pressure source) outside the city; a high-pressure line
  to a high/sub-high regulator station; sub-high mains along every `SUB_HIGH_EVERY`-th street with
  sub-high/medium regulator stations; a medium-pressure mesh along every street; in every built
  block a regulator cabinet feeding a low-pressure yard network with service lines to buildings,
  where customers hang on service points.
- Valves as a utility places them: on the street ends at every other intersection, at cabinet
  inlets and outlets, station inlets, along sub-high mains and on both sides of crossings.
- Schools, hospitals and malls occupy some blocks (sensitive sites); sentries sit in the chambers
  of sub-high and crossing valves, in some other chambers, at sensitive sites and at stations.

Pipe counts are exact: the grid is grown until it holds at least the asked number of pipes, then
service lines (leaves of the graph) are removed until the count matches.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from sqlalchemy import Engine, text

from accounts import audit
from accounts.personal_data import Keyring, load_keyring, seal_frame
from accounts.store import ACCOUNT_TABLES, remove_accounts
from core.codes import credit_code_check_char, id_numbers
from db.bulk_load import replace_tables
from db.catalog import storage_srid
from demo import vocabulary as vocab

CITY_CENTRE_LONLAT = (122.995, 41.108)  # 鞍山市铁东区
BLOCK_W, BLOCK_H = 220.0, 160.0  # m between street centre lines
MP_OFFSET, SH_OFFSET = 4.0, -4.0  # m from the street centre line: medium-pressure vs sub-high side
SUB_HIGH_EVERY = 8  # streets between sub-high mains
REGULATOR_STATION_EVERY = 6  # street columns between sub-high/medium regulator stations
SURVEY_DATE = date(2025, 10, 15)
NULL = np.array(None, dtype=object)  # "no value" for np.where: an object array, as None gives, but typed

# dictionary codes used below (appendix E)
LOW, MEDIUM, SUB_HIGH, HIGH = 0, 1, 2, 3  # dt_pipe_pressure_type
STEEL, GREY_IRON, DUCTILE_IRON, PE = 1, 10, 11, 20  # dt_pipe_material
DIRECT_BURIED, IN_CASING = 1, 2  # dt_laying_type
TEE, BEND, END = 1, 2, 3  # dt_pipeline_node_type

BLOCK_KINDS = ["residential", "commercial", "school", "hospital", "mall", "park", "railway", "river"]
BUILT = {"residential", "commercial", "school", "hospital", "mall"}
DEPTH_M = {HIGH: 1.8, SUB_HIGH: 1.5, MEDIUM: 1.2, LOW: 0.9}
MAX_PRESSURE_MPA = {HIGH: 2.5, SUB_HIGH: 1.6, MEDIUM: 0.4, LOW: 0.005}
PRESSURE_SUBCLASS = {HIGH: "B", SUB_HIGH: "A", MEDIUM: "A", LOW: None}

# The yard network of one built block, in metres from the block's south-west corner. Node 0 is the
# cabinet outlet; 11-18 are the service points of the buildings served from lane nodes 3-10.
YARD_NODES = np.array(
    [(110, 15), (110, 40), (110, 100), (70, 40), (30, 40), (150, 40), (190, 40),
     (70, 100), (30, 100), (150, 100), (190, 100)], dtype=float)
YARD_PIPES = np.array([(0, 1), (1, 2), (1, 3), (3, 4), (1, 5), (5, 6), (2, 7), (7, 8), (2, 9), (9, 10)])
YARD_LADDER = np.array([(4, 8), (6, 10)])  # extra pipes that close two loops in some blocks
YARD_SERVED = np.arange(3, 11)  # lane nodes with a service line to a building 22 m north
CABINET_INLET_Y, CABINET_OUTLET_Y = 13.0, 15.0


class _Rows:
    """A growable table: chunks of equal-length columns, scalars broadcast; returns new row indices."""

    def __init__(self) -> None:
        self.chunks: list[dict[str, np.ndarray]] = []
        self.n = 0

    def add(self, **columns) -> np.ndarray:
        size = max((len(v) for v in columns.values() if np.ndim(v) > 0), default=1)
        chunk = {k: (np.asarray(v) if np.ndim(v) > 0
                     else np.full(size, v, dtype=object if isinstance(v, str) or v is None else None))
                 for k, v in columns.items()}
        self.chunks.append(chunk)
        index = np.arange(self.n, self.n + size)
        self.n += size
        return index

    def frame(self) -> pd.DataFrame:
        if not self.chunks:
            return pd.DataFrame()
        return pd.concat([pd.DataFrame(c) for c in self.chunks], ignore_index=True)


@dataclass
class Plan:
    """The city's layout in blocks: sizes, corridors, districts, enterprises."""

    cols: int
    rows: int
    seed: int
    kind: np.ndarray = field(init=False)  # (cols, rows) index into BLOCK_KINDS
    gap_col: int = field(init=False)  # park column between the two enterprises
    rail_col: int = field(init=False)
    river_row: int = field(init=False)
    district_edges: np.ndarray = field(init=False)  # block-column boundaries of the 4 districts

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.gap_col = max(4, round(self.cols * 0.75)) - 1
        self.rail_col = max(1, self.gap_col // 3)
        self.river_row = max(2, round(self.rows * 0.6))
        weights = np.array([0.78, 0.10, 0.035, 0.02, 0.025, 0.04])
        self.kind = rng.choice(6, size=(self.cols, self.rows), p=weights / weights.sum())
        self.kind[self.gap_col, :] = BLOCK_KINDS.index("park")
        self.kind[self.rail_col, :] = BLOCK_KINDS.index("railway")
        self.kind[:, self.river_row] = BLOCK_KINDS.index("river")
        for columns in (np.arange(0, self.gap_col), np.arange(self.gap_col + 1, self.cols)):
            area = self.kind[columns]  # a view would not do: fancy indexing copies
            for special in ("school", "hospital", "mall"):
                if not (area == BLOCK_KINDS.index(special)).any():
                    homes = np.argwhere(area == BLOCK_KINDS.index("residential"))
                    c, r = homes[rng.integers(len(homes))]
                    area[c, r] = BLOCK_KINDS.index(special)
            self.kind[columns] = area
        west = np.linspace(0, self.gap_col, 4).round().astype(int)
        self.district_edges = np.array([*west, self.cols])

    def areas(self) -> list[tuple[int, int, int]]:
        """(enterprise index, first intersection column, last intersection column) per network."""
        return [(0, 0, self.gap_col), (1, self.gap_col + 1, self.cols)]

    def sub_high_rows(self) -> list[int]:
        first = min(2, self.rows // 3)
        return list(range(first, self.rows + 1, SUB_HIGH_EVERY))


def _street_name(names: list[str], i: int, numbered: str) -> str:
    return names[i] if i < len(names) else numbered.format(i + 1)


class _Network:
    """Nodes, pipes, valves, regulators and stations of the whole city, by index."""

    def __init__(self, plan: Plan, rng: np.random.Generator) -> None:
        self.plan, self.rng = plan, rng
        self.nodes, self.pipes, self.valves = _Rows(), _Rows(), _Rows()
        self.regulators, self.stations = _Rows(), _Rows()
        for enterprise, i0, i1 in plan.areas():
            self._area(enterprise, i0, i1)

    # -- helpers -------------------------------------------------------------------------------
    def _node(self, u, v, pclass, enterprise, role="junction", block=-1) -> np.ndarray:
        return self.nodes.add(u=np.atleast_1d(u).astype(float), v=np.atleast_1d(v).astype(float),
                              pclass=pclass, role=role, enterprise=enterprise, block=block)

    def _pipe(self, a, b, pclass, enterprise, kind, road, laying=DIRECT_BURIED, block=-1, dn=None) -> np.ndarray:
        a, b = np.atleast_1d(a), np.atleast_1d(b)
        return self.pipes.add(a=a, b=b, pclass=pclass, enterprise=enterprise, kind=kind, road=road,
                              laying=laying, block=block, dn=np.nan if dn is None else dn)

    def _valve(self, pipe, node, enterprise) -> None:
        pipe, node = np.atleast_1d(pipe), np.atleast_1d(node)
        if len(pipe):
            self.valves.add(pipe=pipe, node=node, enterprise=enterprise)

    # -- one enterprise's network ----------------------------------------------------------------
    def _area(self, ent: int, i0: int, i1: int) -> None:
        plan = self.plan
        R = plan.rows
        ii, jj = np.meshgrid(np.arange(i0, i1 + 1), np.arange(R + 1), indexing="ij")
        ncol = i1 - i0 + 1
        # medium-pressure mesh: one node per street intersection
        inter = self._node(ii.ravel() * BLOCK_W + MP_OFFSET, jj.ravel() * BLOCK_H + MP_OFFSET, MEDIUM, ent)
        node_at = inter.reshape(ncol, R + 1)
        even = ((ii + jj) % 2 == 0)
        ew_names = np.array([_street_name(vocab.EW_STREETS, j, "纬{}路") for j in range(R + 1)], dtype=object)
        ns_names = np.array([_street_name(vocab.NS_STREETS, i, "经{}街") for i in range(plan.cols + 1)], dtype=object)

        # N-S street pipes: one per street segment
        a, b = node_at[:, :-1].ravel(), node_at[:, 1:].ravel()
        crosses_river = (jj[:, :-1] == plan.river_row).ravel()
        p = self._pipe(a, b, MEDIUM, ent, "main", ns_names[ii[:, :-1].ravel()],
                       laying=np.where(crosses_river, IN_CASING, DIRECT_BURIED))
        self._valve(p[even[:, :-1].ravel() | crosses_river], a[even[:, :-1].ravel() | crosses_river], ent)
        self._valve(p[even[:, 1:].ravel() | crosses_river], b[even[:, 1:].ravel() | crosses_river], ent)

        # E-W street pipes: split at a tee where the block to the north takes its cabinet feeder
        ci, cj = ii[:-1, :].ravel(), jj[:-1, :].ravel()  # west end of each E-W segment
        a, b = node_at[:-1, :].ravel(), node_at[1:, :].ravel()
        north_kind = np.where(cj < R, plan.kind[np.minimum(ci, plan.cols - 1), np.minimum(cj, R - 1)], -1)
        built = np.isin(north_kind, [BLOCK_KINDS.index(k) for k in BUILT])
        crosses_rail = ci == plan.rail_col
        laying = np.where(crosses_rail, IN_CASING, DIRECT_BURIED)
        road = ew_names[cj]
        whole = ~built
        p = self._pipe(a[whole], b[whole], MEDIUM, ent, "main", road[whole], laying=laying[whole])
        ends = even[:-1, :].ravel()[whole] | crosses_rail[whole]
        self._valve(p[ends], a[whole][ends], ent)
        ends = even[1:, :].ravel()[whole] | crosses_rail[whole]
        self._valve(p[ends], b[whole][ends], ent)
        tee = self._node((ci[built] + 0.5) * BLOCK_W, cj[built] * BLOCK_H + MP_OFFSET, MEDIUM, ent)
        west = self._pipe(a[built], tee, MEDIUM, ent, "main", road[built])
        east = self._pipe(tee, b[built], MEDIUM, ent, "main", road[built])
        self._valve(west[even[:-1, :].ravel()[built]], a[built][even[:-1, :].ravel()[built]], ent)
        self._valve(east[even[1:, :].ravel()[built]], b[built][even[1:, :].ravel()[built]], ent)
        self._blocks(ent, ci[built], cj[built], tee)
        self._upper_tiers(ent, i0, i1, node_at)

    def _blocks(self, ent: int, c: np.ndarray, r: np.ndarray, tee: np.ndarray) -> None:
        """Cabinet feeder, regulator cabinet and yard network of each built block (vectorised)."""
        n = len(c)
        x0, y0 = c * BLOCK_W, r * BLOCK_H
        block = c * self.plan.rows + r
        inlet = self._node(x0 + BLOCK_W / 2, y0 + CABINET_INLET_Y, MEDIUM, ent, "regulator_inlet", block)
        feeder = self._pipe(tee, inlet, MEDIUM, ent, "branch", "", block=block)
        self._valve(feeder, tee, ent)  # where the branch leaves the main
        self._valve(feeder, inlet, ent)  # cabinet inlet
        outlet = self._node(x0 + BLOCK_W / 2, y0 + CABINET_OUTLET_Y, LOW, ent, "regulator_outlet", block)
        self.regulators.add(inlet=inlet, outlet=outlet, kind=np.where(self.rng.random(n) < 0.7, "cabinet", "box"),
                            inlet_class=MEDIUM, outlet_class=LOW, enterprise=ent, station=-1)

        jitter = self.rng.uniform(-3, 3, size=(n, len(YARD_NODES) - 1, 2))
        xy = YARD_NODES[None, 1:, :] + jitter
        lane = self._node((x0[:, None] + xy[..., 0]).ravel(), (y0[:, None] + xy[..., 1]).ravel(), LOW, ent,
                          block=np.repeat(block, len(YARD_NODES) - 1))
        local = np.column_stack([outlet, lane.reshape(n, -1)])  # local yard node → global index
        yard = self._pipe(local[:, YARD_PIPES[:, 0]].ravel(), local[:, YARD_PIPES[:, 1]].ravel(), LOW, ent, "yard",
                          "", block=np.repeat(block, len(YARD_PIPES)))
        self._valve(yard[:: len(YARD_PIPES)], outlet, ent)  # cabinet outlet valve
        ladder = self.rng.random(n) < 0.3
        self._pipe(local[ladder][:, YARD_LADDER[:, 0]].ravel(), local[ladder][:, YARD_LADDER[:, 1]].ravel(), LOW,
                   ent, "yard", "", block=np.repeat(block[ladder], len(YARD_LADDER)))
        served = local[:, YARD_SERVED].ravel()
        sx = x0[:, None] + xy[:, YARD_SERVED - 1, 0] + 8.0  # beside the ladder pipes that run north
        sy = y0[:, None] + xy[:, YARD_SERVED - 1, 1] + 22.0
        point = self._node(sx.ravel(), sy.ravel(), LOW, ent, "service_point", np.repeat(block, len(YARD_SERVED)))
        self._pipe(served, point, LOW, ent, "service", "", block=np.repeat(block, len(YARD_SERVED)))

    def _upper_tiers(self, ent: int, i0: int, i1: int, mp_node_at: np.ndarray) -> None:
        """Gate station, high-pressure line, sub-high mains and the regulator stations between tiers."""
        plan = self.plan
        rows = plan.sub_high_rows()
        edge_i = i0 if ent == 0 else i1
        side = -1 if ent == 0 else 1
        edge_x = edge_i * BLOCK_W + SH_OFFSET
        name = vocab.DISTRICTS[0 if ent == 0 else 3][1]

        # sub-high: a link along the enterprise's edge street, and mains along every sub-high row
        link_j = np.arange(rows[0], rows[-1] + 1)
        link = self._node(np.full(len(link_j), edge_x), link_j * BLOCK_H + SH_OFFSET, SUB_HIGH, ent)
        crossing = link_j[:-1] == plan.river_row
        pipes = self._pipe(link[:-1], link[1:], SUB_HIGH, ent, "trunk",
                           _street_name(vocab.NS_STREETS, edge_i, "经{}街"),
                           laying=np.where(crossing, IN_CASING, DIRECT_BURIED))
        every = np.arange(len(pipes)) % 3 == 0
        self._valve(pipes[every | crossing], link[1:][every | crossing], ent)
        self._valve(pipes[crossing], link[:-1][crossing], ent)
        cols = np.arange(i0, i1 + 1)
        for j in rows:
            start = link[j - rows[0]]
            others = cols[cols != edge_i] if ent == 0 else cols[cols != edge_i][::-1]
            nodes = self._node(others * BLOCK_W + SH_OFFSET, np.full(len(others), j * BLOCK_H + SH_OFFSET),
                               SUB_HIGH, ent)
            chain = np.concatenate([[start], nodes])
            col_of = np.concatenate([[edge_i], others])
            road = _street_name(vocab.EW_STREETS, j, "纬{}路")
            pipes = self._pipe(chain[:-1], chain[1:], SUB_HIGH, ent, "trunk", road,
                               laying=np.where(np.minimum(col_of[:-1], col_of[1:]) == plan.rail_col, IN_CASING,
                                               DIRECT_BURIED))
            every = np.arange(len(pipes)) % 3 == 2
            crossing = np.minimum(col_of[:-1], col_of[1:]) == plan.rail_col
            self._valve(pipes[every | crossing], chain[1:][every | crossing], ent)
            self._valve(pipes[crossing], chain[:-1][crossing], ent)
            station_cols = col_of[1:][(np.abs(col_of[1:] - edge_i) % REGULATOR_STATION_EVERY) == 3]
            if len(station_cols) == 0:
                station_cols = col_of[len(col_of) // 2: len(col_of) // 2 + 1]
            for i in station_cols:
                tee = chain[np.flatnonzero(col_of == i)[0]]
                self._regulator_station(ent, i, j, tee, mp_node_at[i - i0, j])

        # gate station and the high-pressure line to the high/sub-high regulator station
        j0 = rows[0]
        y = j0 * BLOCK_H + SH_OFFSET
        gate_x = edge_x + side * 900.0
        gate_outlet = self._node(gate_x, y, HIGH, ent, "station_outlet")
        self.stations.add(u=gate_x + side * 30, v=y, station_type=0, name=f"{name}门站", outlet=gate_outlet,
                          out_class=HIGH, enterprise=ent, kind="gate")
        hp_x = gate_x - side * np.array([250.0, 500.0, 750.0, 830.0])
        hp = self._node(hp_x, np.full(4, y), HIGH, ent)
        chain = np.concatenate([gate_outlet, hp])
        pipes = self._pipe(chain[:-1], chain[1:], HIGH, ent, "trunk", "鞍千高压联络线")
        self._valve(pipes[0], chain[0], ent)
        self._valve(pipes[-1], chain[-1], ent)
        outlet = self._node(edge_x - side * 0.0 + side * 40.0, y - 12.0, SUB_HIGH, ent, "regulator_outlet")
        station = self.stations.add(u=edge_x + side * 45, v=y - 20, station_type=1, name=f"{name}高中压调压站",
                                    outlet=outlet, out_class=SUB_HIGH, enterprise=ent, kind="regulator")
        self.regulators.add(inlet=hp[-1:], outlet=outlet, kind="station", inlet_class=HIGH, outlet_class=SUB_HIGH,
                            enterprise=ent, station=station)
        p = self._pipe(outlet, link[0], SUB_HIGH, ent, "trunk", "鞍千高压联络线")
        self._valve(p, outlet, ent)

    def _regulator_station(self, ent: int, i: int, j: int, sh_tee: int, mp_node: int) -> None:
        """A sub-high/medium regulator station in the south-east corner of intersection (i, j)."""
        x, y = i * BLOCK_W, j * BLOCK_H
        inlet = self._node(x + 14, y - 14, SUB_HIGH, ent, "regulator_inlet")
        outlet = self._node(x + 22, y - 14, MEDIUM, ent, "regulator_outlet")
        district = self.plan.district_edges
        name = vocab.DISTRICTS[min(3, int(np.searchsorted(district, i, side="right")) - 1)][1]
        station = self.stations.add(u=x + 18, v=y - 20, station_type=1,
                                    name=f"{name}{_street_name(vocab.NS_STREETS, i, '经{}街')}调压站",
                                    outlet=outlet, out_class=MEDIUM, enterprise=ent, kind="regulator")
        self.regulators.add(inlet=inlet, outlet=outlet, kind="station", inlet_class=SUB_HIGH, outlet_class=MEDIUM,
                            enterprise=ent, station=station)
        p = self._pipe(sh_tee, inlet, SUB_HIGH, ent, "branch", "")
        self._valve(p, sh_tee, ent)
        self._valve(p, inlet, ent)
        p = self._pipe(outlet, mp_node, MEDIUM, ent, "main", "")
        self._valve(p, outlet, ent)


def _choose_grid(pipes: int) -> tuple[int, int]:
    blocks = max(30, pipes / 21.0)
    rows = max(5, round(math.sqrt(blocks / 1.3)))
    return max(6, math.ceil(blocks / rows)), rows


@dataclass
class DemoCity:
    """Generated tables, ready for COPY: table → (frame, geometry columns)."""

    tables: dict[str, tuple[pd.DataFrame, tuple[str, ...]]]
    plan: Plan


def generate(pipes: int = 5000, seed: int = 42, progress: Callable[[str], None] = lambda _: None, *,
             srid: int) -> DemoCity:
    """A demo city with exactly `pipes` pipes (at least ~500), the same for the same (pipes, seed).

    Parameters
    ----------
    pipes
        How many pipes.
    seed
        Random seed.
    progress
        Called with a line of progress now and then.
    srid
        EPSG code of the projected CRS (metres) the coordinates are in: the storage CRS the schema
        declares (db.catalog.storage_srid), EPSG:4550 in the migrations.
    """
    cols, rows = _choose_grid(pipes)
    while True:
        plan = Plan(cols, rows, seed)
        net = _Network(plan, np.random.default_rng(seed + 1))
        if net.pipes.n >= pipes:
            break
        rows += max(1, math.ceil((pipes - net.pipes.n) / (net.pipes.n / rows)))
    progress(f"grid {cols} × {rows} blocks, {net.pipes.n:,} pipes before trimming")
    return _Tables(plan, net, pipes, np.random.default_rng(seed + 2), srid).city()


ENTERPRISES = [  # (enterprise code, name, district index) — fictitious companies
    ("2103020001", "鞍山气网示范燃气有限公司", 1),
    ("2103110001", "千山示范燃气有限公司", 3),
]
OUTSIDE_DIAMETER_MM = {  # material → nominal DN → outside diameter
    STEEL: {400: 406.4, 300: 323.9, 200: 219.1, 150: 159.0, 100: 108.0, 40: 48.0},
    GREY_IRON: {300: 326.0, 200: 222.0, 150: 170.0, 100: 118.0, 40: 56.0},
    DUCTILE_IRON: {300: 326.0, 200: 222.0, 150: 170.0, 100: 118.0, 40: 56.0},
    PE: {300: 315.0, 200: 200.0, 150: 160.0, 100: 110.0, 40: 40.0},
}


class _Tables:
    """Turns the indexed network into database rows: trims to the exact size, places everything in
    the CRS `srid` (EPSG:4550 in the demo) with 1985 heights, and fills the attributes the standards
    ask for."""

    def __init__(self, plan: Plan, net: _Network, target: int, rng: np.random.Generator, srid: int) -> None:
        self.plan, self.rng, self.srid = plan, rng, srid
        self.nodes = net.nodes.frame()
        self.pipes = net.pipes.frame()
        self.valves = net.valves.frame()
        self.regulators = net.regulators.frame()
        self.stations = net.stations.frame()
        self._trim(len(self.pipes) - target)
        centre = Transformer.from_crs("EPSG:4490", f"EPSG:{srid}", always_xy=True).transform(*CITY_CENTRE_LONLAT)
        self.origin = np.array(centre)
        self.size = np.array([plan.cols * BLOCK_W, plan.rows * BLOCK_H])

    # -- geometry ------------------------------------------------------------------------------
    def _trim(self, surplus: int) -> None:
        """Drop `surplus` service lines (leaves) and their service points; renumber everything."""
        if surplus <= 0:
            return
        services = np.flatnonzero(self.pipes["kind"].to_numpy() == "service")
        if surplus > len(services):
            raise ValueError("the smallest demo city is larger than the number of pipes asked for")
        drop = np.sort(self.rng.choice(services, surplus, replace=False))
        keep_node = np.ones(len(self.nodes), bool)
        keep_node[self.pipes["b"].to_numpy()[drop]] = False
        keep_pipe = np.ones(len(self.pipes), bool)
        keep_pipe[drop] = False
        node_new = np.cumsum(keep_node) - 1
        pipe_new = np.cumsum(keep_pipe) - 1
        self.nodes = self.nodes[keep_node].reset_index(drop=True)
        self.pipes = self.pipes[keep_pipe].reset_index(drop=True)
        for frame, columns in ((self.pipes, ("a", "b")), (self.regulators, ("inlet", "outlet")),
                               (self.valves, ("node",)), (self.stations, ("outlet",))):
            for column in columns:
                frame[column] = node_new[frame[column].to_numpy()]
        self.valves["pipe"] = pipe_new[self.valves["pipe"].to_numpy()]

    def _centred(self, u, v) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(u) - self.size[0] / 2, np.asarray(v) - self.size[1] / 2

    def to_storage(self, u, v) -> tuple[np.ndarray, np.ndarray]:
        """Local metres → easting, northing in the storage CRS: a gentle warp so streets are not ruler-straight,
        a rotation to the city's street bearing, and the shift to Anshan."""
        uc, vc = self._centred(u, v)
        uw = uc + 12.0 * np.sin(2 * np.pi * vc / 1500.0)
        vw = vc + 12.0 * np.sin(2 * np.pi * uc / 1900.0)
        theta = np.radians(-8.0)
        x = uw * np.cos(theta) - vw * np.sin(theta) + self.origin[0]
        y = uw * np.sin(theta) + vw * np.cos(theta) + self.origin[1]
        return x, y

    def ground(self, u, v) -> np.ndarray:
        """Ground elevation (m, 1985 heights): the plain rising towards the Qianshan hills in the east."""
        uc, vc = self._centred(u, v)
        return 24.0 + 14.0 * np.tanh(uc / 4000.0) + 5.0 * np.sin(uc / 900.0) * np.cos(vc / 1100.0) + 0.0004 * vc

    def _points(self, u, v, z) -> np.ndarray:
        x, y = self.to_storage(u, v)
        return shapely.set_srid(shapely.points(x, y, z), self.srid)

    def _lines(self, u: np.ndarray, v: np.ndarray, z: np.ndarray | None = None) -> np.ndarray:
        """LineStrings from (n, k) vertex arrays (warped vertex by vertex)."""
        x, y = self.to_storage(u, v)
        coords = np.stack([x, y] if z is None else [x, y, z], axis=-1)
        return shapely.set_srid(shapely.linestrings(coords), self.srid)

    def _polygons(self, rings_u: np.ndarray, rings_v: np.ndarray) -> np.ndarray:
        x, y = self.to_storage(rings_u, rings_v)
        return shapely.set_srid(shapely.polygons(np.stack([x, y], axis=-1)), self.srid)

    @staticmethod
    def _rectangle(u0, v0, u1, v1, step: float) -> tuple[np.ndarray, np.ndarray]:
        """Closed rectangle rings with vertices every `step` metres, so the warp bends their edges."""
        k = max(2, math.ceil(max(np.max(np.asarray(u1) - u0), np.max(np.asarray(v1) - v0)) / step) + 1)
        t = np.linspace(0.0, 1.0, k)[None, :]
        u0, v0, u1, v1 = (np.atleast_1d(a).astype(float)[:, None] for a in (u0, v0, u1, v1))
        us = np.concatenate([u0 + (u1 - u0) * t, np.repeat(u1, k, 1), u1 - (u1 - u0) * t, np.repeat(u0, k, 1)], 1)
        vs = np.concatenate([np.repeat(v0, k, 1), v0 + (v1 - v0) * t, np.repeat(v1, k, 1), v1 - (v1 - v0) * t], 1)
        return np.concatenate([us, us[:, :1]], 1), np.concatenate([vs, vs[:, :1]], 1)

    # -- shared attribute helpers --------------------------------------------------------------
    def _district(self, u) -> np.ndarray:
        col = np.floor(np.asarray(u) / BLOCK_W)
        return np.clip(np.searchsorted(self.plan.district_edges, col, side="right") - 1, 0, 3)

    def _admin_code(self, u) -> np.ndarray:
        return np.array([d for d, _ in vocab.DISTRICTS], dtype=object)[self._district(u)]

    def _enterprise(self, ent) -> np.ndarray:
        return np.array([e for e, _, _ in ENTERPRISES], dtype=object)[np.asarray(ent, dtype=int)]

    def _names(self, n: int) -> np.ndarray:
        rng = self.rng
        surname = np.array(vocab.SURNAMES, dtype=object)[rng.integers(0, len(vocab.SURNAMES), n)]
        given = np.array(vocab.GIVEN_CHARS, dtype=object)
        one = given[rng.integers(0, len(given), n)]
        two = np.where(rng.random(n) < 0.6, given[rng.integers(0, len(given), n)], "")
        return surname + one + two

    def _phones(self, n: int) -> np.ndarray:
        prefix = np.array(["139", "138", "135", "186", "152", "158", "189", "133"], dtype=object)
        tail = pd.Series(self.rng.integers(0, 100_000_000, n)).astype(str).str.zfill(8).to_numpy(dtype=object)
        return prefix[self.rng.integers(0, len(prefix), n)] + tail

    def _dates(self, n: int, start: date, end: date) -> np.ndarray:
        days = self.rng.integers(0, (end - start).days + 1, n)
        return (np.datetime64(start) + days.astype("timedelta64[D]")).astype("datetime64[D]")

    def _device_fields(self, n: int, family: str, commissioned_year: np.ndarray | int) -> dict[str, np.ndarray]:
        """Appendix A.1 #7 fields for n devices of one family (valve, regulator, sentry)."""
        models = vocab.MANUFACTURERS[family]
        pick = self.rng.integers(0, len(models), n)
        inspected = self._dates(n, date(2025, 1, 10), date(2025, 12, 20))
        year = np.broadcast_to(np.asarray(commissioned_year), (n,))
        commissioned = (year.astype("datetime64[Y]") + self.rng.integers(0, 300, n).astype("timedelta64[D]"))
        return {
            "model": np.array([m for m, _ in models], dtype=object)[pick],
            "manufacturer": np.array([f for _, f in models], dtype=object)[pick],
            "inspected_on": inspected,
            "next_inspection_on": inspected + np.timedelta64(365, "D"),
            "responsible_person": self._names(n),
            "responsible_phone": self._phones(n),
            "commissioned_on": commissioned.astype("datetime64[D]"),
        }

    @staticmethod
    def _codes(prefix: str, n: int, width: int = 7) -> np.ndarray:
        return (prefix + pd.Series(np.arange(1, n + 1)).astype(str).str.zfill(width)).to_numpy(dtype=object)

    # -- the tables ----------------------------------------------------------------------------
    def city(self) -> DemoCity:
        tables: dict[str, tuple[pd.DataFrame, tuple[str, ...]]] = {}
        tables["admin_division"] = (self._admin_divisions(), ("geom",))
        tables["enterprise"] = (self._enterprises(), ("geom",))
        tables["node"] = (self._node_table(), ("geom",))
        tables["station"] = (self._station_table(), ("geom",))
        tables["pipe"] = (self._pipe_table(), ("geom",))
        tables["valve"] = (self._valve_table(), ("geom",))
        tables["regulator"] = (self._regulator_table(), ("geom",))
        tables["device"] = (self._device_table(), ("geom",))
        tables["sensitive_site"] = (self._sensitive_sites(), ("geom",))
        customers, personal = self._customers()
        tables["customer"] = (customers, ("geom",))
        tables["customer_personal"] = (personal, ())
        tables["road"] = (self._roads(), ("geom",))
        tables["crew_base"] = (self._crew_bases(), ("geom",))
        tables["railway"] = (self._railway(), ("geom",))
        tables["river"] = (self._river(), ("geom",))
        tables["sentry"] = (self._sentries(), ("geom",))
        hazards, inspections = self._hazards()
        tables["hazard"] = (hazards, ("geom",))
        tables["inspection"] = (inspections, ("geom", "track"))
        return DemoCity(tables, self.plan)

    def _admin_divisions(self) -> pd.DataFrame:
        plan = self.plan
        edges = plan.district_edges.astype(float) * BLOCK_W
        u0, u1 = edges[:-1].copy(), edges[1:].copy()
        u0[0], u1[-1] = u0[0] - 1500.0, u1[-1] + 1500.0
        rings = self._rectangle(u0, np.full(4, -800.0), u1, np.full(4, plan.rows * BLOCK_H + 800.0), 100.0)
        districts = self._polygons(*rings)
        city = shapely.union_all(districts)
        province = shapely.buffer(city, 5000.0)
        multi = [shapely.set_srid(shapely.multipolygons([g]), self.srid) for g in (*districts, city, province)]
        return pd.DataFrame({
            "admin_code": [c for c, _ in vocab.DISTRICTS] + [vocab.CITY[0], vocab.PROVINCE[0]],
            "name": [n for _, n in vocab.DISTRICTS] + [vocab.CITY[1], vocab.PROVINCE[1]],
            "level": ["county"] * 4 + ["city", "province"],
            "parent_code": [vocab.CITY[0]] * 4 + [vocab.PROVINCE[0], None],
            "geom": multi,
        }).iloc[[5, 4, 0, 1, 2, 3]]  # parents before children

    def _enterprises(self) -> pd.DataFrame:
        rows = []
        for k, (code, name, district) in enumerate(ENTERPRISES):
            body = f"91{code[:6]}{code[6:]}MA{k:02d}X{k}"[:17]
            gate = self.stations[(self.stations["enterprise"] == k) & (self.stations["kind"] == "gate")].iloc[0]
            rows.append({
                "enterprise_code": code, "name": name, "admin_code": vocab.DISTRICTS[district][0],
                "address": f"辽宁省鞍山市{vocab.DISTRICTS[district][1]}{vocab.EW_STREETS[k]}{88 + k}号",
                "legal_representative": ["王建国", "李淑珍"][k], "business_license_type": "有限责任公司",
                "credit_code": body + credit_code_check_char(body), "gas_license_no": f"辽202{k}0300{k + 1}GA",
                "gas_license_issued_on": date(2021, 3, 1), "gas_license_expires_on": date(2027, 2, 28),
                "operating_area": "、".join(n for _, n in vocab.DISTRICTS[:3]) if k == 0 else vocab.DISTRICTS[3][1],
                "parent_company": "气网示范能源集团有限公司", "customer_count": 0,
                "registered_capital_wan": [50000, 12000][k], "founded_on": [date(1998, 6, 18), date(2006, 9, 1)][k],
                "nature": [2, 3][k], "status": 0, "enterprise_type": 12, "gas_class": 1,
                "geom": self._points([gate["u"]], [gate["v"] + 60.0], self.ground(gate["u"], gate["v"] + 60.0))[0],
            })
        frame = pd.DataFrame(rows)
        return frame

    def _node_table(self) -> pd.DataFrame:
        nodes, pipes, rng = self.nodes, self.pipes, self.rng
        n = len(nodes)
        pclass = nodes["pclass"].to_numpy(dtype=int)
        role = nodes["role"].to_numpy(dtype=object)
        depth = np.vectorize(DEPTH_M.get)(pclass) + rng.uniform(-0.15, 0.15, n)
        depth[role == "service_point"] = 0.8
        u, v = nodes["u"].to_numpy(), nodes["v"].to_numpy()
        ground = self.ground(u, v)
        self.node_xyz = np.column_stack([*self.to_storage(u, v), ground - depth])
        self.node_depth, self.node_ground = depth, ground
        node_type = self._node_types(pipes["a"].to_numpy(), pipes["b"].to_numpy(), role)
        return pd.DataFrame({
            "id": np.arange(1, n + 1), "code": self._codes("JD", n, 8),
            "node_type": pd.array(node_type, dtype="Int16"), "role": role, "pressure_class": pclass,
            "ground_elevation_m": ground.round(3), "depth_m": depth.round(2),
            "geom": shapely.set_srid(shapely.points(self.node_xyz), self.srid),
            "enterprise_code": self._enterprise(nodes["enterprise"]), "admin_code": self._admin_code(u),
        })

    def _node_types(self, a: np.ndarray, b: np.ndarray, role: np.ndarray) -> np.ndarray:
        """Tee (degree ≥ 3), end (degree 1), bend (degree 2 turning more than 3°); None for straight
        joints and for station and regulator nodes, whose role says what they are."""
        n = len(role)
        degree = np.bincount(a, minlength=n) + np.bincount(b, minlength=n)
        out = np.full(n, None, dtype=object)
        out[degree >= 3] = TEE
        out[degree == 1] = END
        node = np.concatenate([a, b])
        other = np.concatenate([b, a])
        pick = degree[node] == 2
        order = np.argsort(node[pick], kind="stable")
        node2, other2 = node[pick][order], other[pick][order]
        at, first, second = node2[0::2], other2[0::2], other2[1::2]
        v1 = self.node_xyz[first, :2] - self.node_xyz[at, :2]
        v2 = self.node_xyz[second, :2] - self.node_xyz[at, :2]
        cos = (v1 * v2).sum(1) / (np.linalg.norm(v1, axis=1) * np.linalg.norm(v2, axis=1))
        out[at[cos > -math.cos(math.radians(3.0))]] = BEND
        out[role == "service_point"] = END
        out[np.isin(role, ["station_outlet", "regulator_inlet", "regulator_outlet"])] = None
        return out

    def _year_and_material(self) -> tuple[np.ndarray, np.ndarray]:
        """Build year and material: the old town (west of the railway) has cast iron and old steel."""
        pipes, rng = self.pipes, self.rng
        n = len(pipes)
        a = pipes["a"].to_numpy()
        u, v = self.nodes["u"].to_numpy()[a], self.nodes["v"].to_numpy()[a]
        old_town = np.array([self.plan.rail_col * BLOCK_W, 0.5 * self.plan.rows * BLOCK_H])
        d = np.hypot(u - old_town[0], v - old_town[1]) / 3000.0
        # one era per block, so a yard network is built at one time
        block = pipes["block"].to_numpy()
        era_noise = rng.normal(0, 5, self.plan.cols * self.plan.rows + 1)[np.where(block >= 0, block, -1)]
        year = np.clip(np.round(1983 + 38 * np.clip(d, 0, 1) + era_noise), 1980, 2024).astype(int)
        pclass = pipes["pclass"].to_numpy()
        year[pclass >= SUB_HIGH] = np.maximum(year[pclass >= SUB_HIGH], 2004)
        draw = rng.random(n)
        material = np.full(n, PE)
        old = year < 1998
        medium_old = (pclass == MEDIUM) & old
        material[medium_old] = np.where(draw[medium_old] < 0.7, STEEL, DUCTILE_IRON)
        material[(pclass == MEDIUM) & ~old & (draw < 0.25)] = STEEL
        low_old = (pclass == LOW) & old
        material[low_old] = np.where(draw[low_old] < 0.55, GREY_IRON, STEEL)
        material[(pclass == LOW) & ~old & (draw < 0.15)] = STEEL
        material[pclass >= SUB_HIGH] = STEEL
        return year, material

    def _pipe_table(self) -> pd.DataFrame:
        pipes = self.pipes
        n = len(pipes)
        a, b = pipes["a"].to_numpy(), pipes["b"].to_numpy()
        pclass = pipes["pclass"].to_numpy(dtype=int)
        kind = pipes["kind"].to_numpy(dtype=object)
        year, material = self._year_and_material()
        road = pipes["road"].to_numpy(dtype=object)
        block = pipes["block"].to_numpy()
        arterial = np.isin(road, [vocab.EW_STREETS[k] for k in range(0, len(vocab.EW_STREETS), 4)] +
                           [vocab.NS_STREETS[k] for k in range(0, len(vocab.NS_STREETS), 4)])
        dn = np.select(
            [pclass == HIGH, (pclass == SUB_HIGH) & (kind == "trunk"), pclass == SUB_HIGH,
             (pclass == MEDIUM) & (kind == "branch"), (pclass == MEDIUM) & (arterial | (road == "")),
             pclass == MEDIUM, kind == "service", kind == "yard"],
            [400, 300, 150, 100, 300, 200, 40, 100], 100)
        spine = (kind == "yard") & (self.nodes["role"].to_numpy()[a] == "regulator_outlet")
        dn[spine] = 150
        self.pipe_year, self.pipe_dn = year, dn
        od_table = pd.Series({(m, d): od for m, by_dn in OUTSIDE_DIAMETER_MM.items() for d, od in by_dn.items()})
        od = od_table.reindex(pd.MultiIndex.from_arrays([material, dn])).to_numpy()
        # unnamed pipes (feeders, station connections, yards) take the street or compound they serve
        row = np.round((self.nodes["v"].to_numpy()[a] - MP_OFFSET) / BLOCK_H).astype(int)
        street = np.array([_street_name(vocab.EW_STREETS, j, "纬{}路") for j in range(self.plan.rows + 2)],
                          dtype=object)[np.clip(row, 0, self.plan.rows + 1)]
        compound = self._compound_names(block)
        road = np.where(road != "", road, np.where(block >= 0, compound + "内部道路", street))
        xyz = self.node_xyz
        return pd.DataFrame({
            "id": np.arange(1, n + 1), "code": self._codes("GX", n),
            "pipe_type": kind, "category": 1, "material": material, "diameter_mm": dn,
            "outside_diameter_mm": od, "start_elevation_m": self.node_ground[a].round(3),
            "end_elevation_m": self.node_ground[b].round(3), "start_depth_m": self.node_depth[a].round(2),
            "end_depth_m": self.node_depth[b].round(2), "road_name": road,
            "owner": np.array([name for _, name, _ in ENTERPRISES], dtype=object)[pipes["enterprise"].to_numpy(int)],
            "build_year": year, "survey_date": self._dates(n, SURVEY_DATE - timedelta(days=900), SURVEY_DATE),
            "status": "in_service", "pressure_class": pclass,
            "pressure_subclass": np.vectorize(PRESSURE_SUBCLASS.get, otypes=[object])(pclass),
            "max_operating_pressure_mpa": np.vectorize(MAX_PRESSURE_MPA.get)(pclass),
            "laying_type": pipes["laying"].to_numpy(dtype=int), "from_node_id": a + 1, "to_node_id": b + 1,
            "geom": shapely.set_srid(shapely.linestrings(np.stack([xyz[a], xyz[b]], axis=1)), self.srid),
            "enterprise_code": self._enterprise(pipes["enterprise"]),
            "admin_code": self._admin_code(self.nodes["u"].to_numpy()[a]),
        })

    def _compound_names(self, block: np.ndarray) -> np.ndarray:
        names = np.array([c + s for c in vocab.COMMUNITIES for s in vocab.COMPOUND_SUFFIXES], dtype=object)
        return names[(np.maximum(block, 0) * 7919) % len(names)]

    def _offset_along(self, pipe: np.ndarray, node: np.ndarray, metres: float) -> np.ndarray:
        """Points `metres` from a pipe's end at `node`, along the pipe (valves sit just inside it)."""
        a = self.pipes["a"].to_numpy()[pipe]
        b = self.pipes["b"].to_numpy()[pipe]
        other = np.where(a == node, b, a)
        p0, p1 = self.node_xyz[node], self.node_xyz[other]
        length = np.linalg.norm(p1[:, :2] - p0[:, :2], axis=1)
        t = np.minimum(metres / np.maximum(length, 1e-9), 0.5)[:, None]
        return shapely.set_srid(shapely.points(p0 + (p1 - p0) * t), self.srid)

    def _valve_table(self) -> pd.DataFrame:
        valves, rng = self.valves, self.rng
        n = len(valves)
        pipe, node = valves["pipe"].to_numpy(), valves["node"].to_numpy()
        pclass = self.pipes["pclass"].to_numpy()[pipe]
        kind = self.pipes["kind"].to_numpy(dtype=object)[pipe]
        draw = rng.random(n)
        valve_type = np.where(pclass >= SUB_HIGH, "ball", np.where(pclass == MEDIUM,
                              np.where(draw < 0.6, "ball", "gate"), "plug"))
        # a few street valves are kept shut between supply zones (never at a station outlet, never
        # on a crossing, whose pipe would then have no way in), and some cannot be worked
        junction = self.nodes["role"].to_numpy(dtype=object)[node] == "junction"
        crossing = self.pipes["laying"].to_numpy()[pipe] == IN_CASING
        closed = (kind == "main") & (pclass == MEDIUM) & junction & ~crossing & (rng.random(n) < 0.01)
        operability = np.select([draw < 0.03, draw < 0.045], ["inaccessible", "inoperable"], "operable")
        self.valve_geom = self._offset_along(pipe, node, 1.5)
        codes = self._codes("FM", n)
        return pd.DataFrame({
            "id": np.arange(1, n + 1), "code": codes, "pipe_id": pipe + 1, "node_id": node + 1,
            "valve_type": valve_type, "check_direction": None, "normal_state": np.where(closed, "closed", "open"),
            "operability": operability, "diameter_mm": self.pipe_dn[pipe],
            "chamber_code": "FMJ" + pd.Series(codes).str[2:].to_numpy(dtype=object),
            "name": np.select([pclass >= SUB_HIGH, pclass == MEDIUM], ["次高压阀门", "中压阀门"],
                              "低压阀门").astype(object),
            **self._device_fields(n, "valve", self.pipe_year[pipe]), "remarks": None,
            "geom": self.valve_geom, "enterprise_code": self._enterprise(valves["enterprise"]),
            "admin_code": self._admin_code(self.nodes["u"].to_numpy()[node]),
        })

    def _station_table(self) -> pd.DataFrame:
        st = self.stations
        n = len(st)
        u, v = st["u"].to_numpy(), st["v"].to_numpy()
        gate = st["kind"].to_numpy() == "gate"
        district = self._district(u)
        return pd.DataFrame({
            "id": np.arange(1, n + 1), "code": self._codes("CZ", n, 4), "name": st["name"].to_numpy(dtype=object),
            "station_type": st["station_type"].to_numpy(dtype=int),
            "address": "辽宁省鞍山市" + np.array([d for _, d in vocab.DISTRICTS], dtype=object)[district]
                       + pd.Series(np.arange(n) * 3 + 1).astype(str).to_numpy(dtype=object) + "号",
            "equipment": np.where(gate, "过滤器、计量撬、调压撬、加臭装置、SCADA 站控系统",
                                  "过滤器、调压器（一用一备）、安全切断阀、放散阀、RTU"),
            "outlet_node_id": st["outlet"].to_numpy(dtype=int) + 1,
            "outlet_pressure_class": st["out_class"].to_numpy(dtype=int),
            "design_capacity_m3h": np.where(gate, 100000, 20000), "remarks": None,
            "geom": self._points(u, v, self.ground(u, v)),
            "enterprise_code": self._enterprise(st["enterprise"]), "admin_code": self._admin_code(u),
        })

    def _regulator_table(self) -> pd.DataFrame:
        reg = self.regulators
        n = len(reg)
        inlet, outlet = reg["inlet"].to_numpy(), reg["outlet"].to_numpy()
        kind = reg["kind"].to_numpy(dtype=object)
        out_class = reg["outlet_class"].to_numpy(dtype=int)
        xyz = (self.node_xyz[inlet] + self.node_xyz[outlet]) / 2
        ground = (self.node_ground[inlet] + self.node_ground[outlet]) / 2
        name = np.select([kind == "cabinet", kind == "box"], ["区域调压柜", "楼栋调压箱"], "调压站调压器")
        year = np.full(n, 2012)
        return pd.DataFrame({
            "id": np.arange(1, n + 1), "code": self._codes("TY", n, 6), "regulator_kind": kind,
            "station_id": pd.Series(reg["station"].to_numpy(dtype=int) + 1, dtype="Int64").where(
                reg["station"].to_numpy(dtype=int) >= 0),
            "inlet_node_id": inlet + 1, "outlet_node_id": outlet + 1,
            "inlet_pressure_class": reg["inlet_class"].to_numpy(dtype=int), "outlet_pressure_class": out_class,
            "outlet_pressure_kpa": np.select([out_class == LOW, out_class == MEDIUM], [2.5, 350.0], 1200.0),
            "capacity_m3h": np.select([kind == "box", kind == "cabinet"], [100, 400], 20000),
            "name": name.astype(object), **self._device_fields(n, "regulator", year), "remarks": None,
            "geom": shapely.set_srid(shapely.points(xyz[:, 0], xyz[:, 1], ground), self.srid),
            "enterprise_code": self._enterprise(reg["enterprise"]),
            "admin_code": self._admin_code(self.nodes["u"].to_numpy()[inlet]),
        })

    def _device_table(self) -> pd.DataFrame:
        """Cathodic-protection test posts on every third node of the steel sub-high mains."""
        sub_high = np.flatnonzero((self.pipes["pclass"].to_numpy() == SUB_HIGH) &
                                  (self.pipes["kind"].to_numpy() == "trunk"))[::3]
        n = len(sub_high)
        node = self.pipes["a"].to_numpy()[sub_high]
        u, v = self.nodes["u"].to_numpy()[node], self.nodes["v"].to_numpy()[node]
        posts = pd.DataFrame({
            "id": np.arange(1, n + 1), "code": self._codes("SB-CP", n, 5), "device_type": "阴极保护测试桩",
            "facility_type": None, "pipe_id": sub_high + 1, "station_id": None, "name": "阴极保护测试桩",
            "model": "CP-TS-2", "manufacturer": "沈阳防腐工程有限公司", "inspected_on": date(2025, 5, 20),
            "next_inspection_on": date(2026, 5, 20), "responsible_person": self._names(n),
            "responsible_phone": self._phones(n), "commissioned_on": date(2008, 9, 1), "remarks": None,
            "geom": self._points(u + 2.0, v, self.ground(u, v)),
            "enterprise_code": self._enterprise(self.nodes["enterprise"].to_numpy()[node]),
            "admin_code": self._admin_code(u),
        })
        devices = pd.concat([posts, self._rtus(first_id=n + 1)], ignore_index=True)
        for column in ("station_id", "pressure_class", "reporting_interval_s", "status"):
            devices[column] = devices[column].astype("Int64")  # NaN from the concat would print as 1.0
        return devices

    def _rtus(self, first_id: int) -> pd.DataFrame:
        """One RTU per station, reporting outlet pressure every 60 s (no random draws: adding them
        leaves the rest of the city as it was)."""
        st = self.stations
        n = len(st)
        u, v = st["u"].to_numpy() - 3, st["v"].to_numpy()
        return pd.DataFrame({
            "id": np.arange(first_id, first_id + n), "code": self._codes("RTU", n, 4), "device_type": "RTU",
            "facility_type": None, "pipe_id": None, "station_id": np.arange(1, n + 1),
            "name": (st["name"].to_numpy(dtype=object) + "RTU"), "model": "RTU-5000",
            "manufacturer": "鞍山燃气自动化设备有限公司", "inspected_on": date(2025, 6, 10),
            "next_inspection_on": date(2026, 6, 10), "responsible_person": "场站值班员",
            "responsible_phone": (pd.Series(np.arange(n)).astype(str).str.zfill(4).radd("0412-555"))
            .to_numpy(dtype=object),
            "commissioned_on": date(2015, 10, 1), "remarks": None,
            "telemetry_type": "rtu", "pressure_class": st["out_class"].to_numpy(dtype=int),
            "reporting_interval_s": 60, "status": 2,
            "geom": self._points(u, v, self.ground(u, v)),
            "enterprise_code": self._enterprise(st["enterprise"]), "admin_code": self._admin_code(u),
        })

    def _special_blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """Built school, hospital and mall blocks inside a network area: (block index, kind index)."""
        kinds = [BLOCK_KINDS.index(k) for k in ("school", "hospital", "mall")]
        flat = self.plan.kind.ravel()
        fed = np.unique(self.nodes["block"].to_numpy()[self.nodes["role"].to_numpy() == "regulator_outlet"])
        fed = fed[fed >= 0]
        fed = fed[np.isin(flat[fed], kinds)]
        return fed, flat[fed]

    def _sensitive_sites(self) -> pd.DataFrame:
        block, kind = self._special_blocks()
        n = len(block)
        c, r = block // self.plan.rows, block % self.plan.rows
        rings = self._rectangle(c * BLOCK_W + 8, r * BLOCK_H + 20, (c + 1) * BLOCK_W - 8, (r + 1) * BLOCK_H - 8, 40.0)
        kind_name = np.array(BLOCK_KINDS, dtype=object)[kind]
        site_type = np.array([vocab.SENSITIVE_KINDS[k][0] for k in kind_name])
        names = np.array([vocab.SENSITIVE_KINDS[k][1][i % len(vocab.SENSITIVE_KINDS[k][1])] +
                          ("" if i < len(vocab.SENSITIVE_KINDS[k][1]) else f"{i // 6 + 1}分部")
                          for i, k in enumerate(kind_name)], dtype=object)
        frame = pd.DataFrame({
            "id": np.arange(1, n + 1), "code": self._codes("MG", n, 5), "name": "鞍山市" + names,
            "site_type": site_type, "address": self._compound_names(block) + "旁",
            "occupancy": np.select([kind_name == "school", kind_name == "hospital"], [1500, 800], 3000),
            "geom": self._polygons(*rings),
            "enterprise_code": self._enterprise((c >= self.plan.gap_col).astype(int)),
            "admin_code": self._admin_code(c * BLOCK_W + BLOCK_W / 2),
        })
        self.site_block = block
        self.site_names = dict(zip(block, frame["name"], strict=True))
        return frame

    def _customers(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Customers on every service point: households in residential blocks, shops and offices in
        commercial blocks, the institution itself in school, hospital and mall blocks."""
        rng, nodes = self.rng, self.nodes
        point = np.flatnonzero(nodes["role"].to_numpy() == "service_point")
        block = nodes["block"].to_numpy()[point]
        kind = np.array(BLOCK_KINDS, dtype=object)[self.plan.kind.ravel()[block]]
        residential = kind == "residential"
        per_point = np.where(residential, rng.integers(1, 6, len(point)),
                             np.where(kind == "commercial", rng.integers(1, 3, len(point)), 1))
        at = np.repeat(point, per_point)
        n = len(at)
        block = nodes["block"].to_numpy()[at]
        kind = np.repeat(kind, per_point)
        resident = kind == "residential"
        building = pd.Series(at).groupby(block).rank(method="dense").to_numpy(dtype=int)
        unit = pd.Series(np.arange(n)).groupby(at).cumcount().to_numpy() + 1
        u, v = nodes["u"].to_numpy()[at], nodes["v"].to_numpy()[at] + 6.0
        ent = nodes["enterprise"].to_numpy()[at]
        district = self._district(u)
        r = block % self.plan.rows
        street = np.array([_street_name(vocab.EW_STREETS, j, "纬{}路") for j in range(self.plan.rows + 1)],
                          dtype=object)[r]
        compound = self._compound_names(block)
        community = np.array(vocab.COMMUNITIES, dtype=object)[(block * 31) % len(vocab.COMMUNITIES)] + "社区"
        district_name = np.array([d for _, d in vocab.DISTRICTS], dtype=object)[district]
        building_s = pd.Series(building).astype(str).to_numpy(dtype=object)
        room = (pd.Series(rng.integers(1, 7, n)).astype(str) + "0" + pd.Series(rng.integers(1, 3, n)).astype(str)
                ).to_numpy(dtype=object)
        unit_s = pd.Series(unit).astype(str).to_numpy(dtype=object)
        address = district_name + street + compound + building_s + "号楼" + unit_s + "单元" + room + "室"

        commercial = kind == "commercial"
        shop_kind = rng.integers(0, len(vocab.COMMERCIAL_KINDS), n)
        special_subtype = {k: vocab.SENSITIVE_KINDS[k][0] for k in vocab.SENSITIVE_KINDS}
        subtype = np.where(resident, np.where(rng.random(n) < 0.1, 50, 1),
                           np.where(commercial, np.array([c for c, _ in vocab.COMMERCIAL_KINDS])[shop_kind],
                                    pd.Series(kind).map(special_subtype).fillna(6).to_numpy(dtype=int)))
        people = self._names(n)
        shop = np.array([s for _, s in vocab.COMMERCIAL_KINDS], dtype=object)[shop_kind]
        site_name = pd.Series(block).map(self.site_names).fillna("").to_numpy(dtype=object)
        masked = pd.Series(people).str[0].to_numpy(dtype=object) + "**"  # 张** (full name: customer_personal)
        name = np.where(resident, masked, np.where(commercial, compound + building_s + "号" + shop,
                                                   site_name + np.where(unit > 1, "分楼" + unit_s, "")))
        credit = np.full(n, None, dtype=object)
        credit[~resident] = self._credit_codes(int((~resident).sum()))
        ids = np.arange(1, n + 1)
        codes = self._codes("YH", n, 8)
        alarm = ~resident | (rng.random(n) < 0.3)
        enterprise_name = np.array([name for _, name, _ in ENTERPRISES], dtype=object)[ent]
        customers = pd.DataFrame({
            "id": ids, "code": codes, "name": name,
            "subsystem_code": "KF" + pd.Series(codes).str[2:].to_numpy(dtype=object),
            "credit_code": credit, "supplier": enterprise_name,
            "meter_reader": self._names(200)[block % 200],
            "supply_status": np.select([rng.random(n) < 0.02, rng.random(n) < 0.02], [1, 2], 0),
            "account_no": "AS" + pd.Series(ids * 7 + 1_000_000_000).astype(str).to_numpy(dtype=object),
            "user_type": np.where(resident, 1, 3), "user_subtype": subtype, "street": street,
            "community": community, "address": address,
            "has_gas_boiler": ~resident & (rng.random(n) < 0.3), "has_water_heater": rng.random(n) < 0.6,
            "has_other_facilities": rng.random(n) < 0.1,
            "alarm_device_code": np.where(alarm, "BJ" + pd.Series(codes).str[2:].to_numpy(dtype=object), None),
            "alarm_probe_code": np.where(alarm, "TT" + pd.Series(codes).str[2:].to_numpy(dtype=object), None),
            "alarm_installed_on": np.where(alarm, self._dates(n, date(2019, 1, 1), date(2025, 6, 30)), NULL),
            "alarm_status": pd.Series(np.where(alarm, 2, 0), dtype="Int16").where(alarm),
            "gas_on_date": self._dates(n, date(1990, 1, 1), date(2025, 6, 30)),
            "meter_type": rng.choice([1, 2, 3], n, p=[0.3, 0.4, 0.3]), "service_node_id": at + 1,
            "geom": self._points(u, v, self.ground(u, v)),
            "enterprise_code": self._enterprise(ent), "admin_code": self._admin_code(u),
        })
        birth = self._dates(n, date(1940, 1, 1), date(2002, 12, 31)).astype("datetime64[D]")
        birth_int = pd.Series(birth).dt.strftime("%Y%m%d").astype(np.int64).to_numpy()
        division = customers["admin_code"].astype(np.int64).to_numpy()
        bodies = division * 10**11 + birth_int * 1000 + rng.integers(1, 999, n)
        personal = pd.DataFrame({
            "customer_id": ids, "id_number": np.where(resident, id_numbers(bodies), NULL),
            "contact_person": np.where(resident, people, self._names(n)), "contact_phone": self._phones(n),
            "meter_reader_phone": self._phones(n),
        })
        return customers, personal

    def _credit_codes(self, n: int) -> np.ndarray:
        """Valid unified social credit codes (GB 32100) for non-resident customers."""
        body = ("92" + pd.Series(self._admin_code(np.zeros(n)), dtype=object) +
                pd.Series(self.rng.integers(0, 10**9, n)).astype(str).str.zfill(9))
        return np.array([b + credit_code_check_char(b) for b in body], dtype=object)

    def _roads(self) -> pd.DataFrame:
        """Street segments between intersections (centre lines), plus the gate stations' access roads."""
        C, R = self.plan.cols, self.plan.rows
        ii, jj = np.meshgrid(np.arange(C), np.arange(R + 1), indexing="ij")
        ew = (ii.ravel(), jj.ravel(), ii.ravel() + 1, jj.ravel(), jj.ravel())
        ii, jj = np.meshgrid(np.arange(C + 1), np.arange(R), indexing="ij")
        ns = (ii.ravel(), jj.ravel(), ii.ravel(), jj.ravel() + 1, ii.ravel())
        i0, j0, i1, j1, street = (np.concatenate([e, n]) for e, n in zip(ew, ns, strict=True))
        is_ew = np.arange(len(i0)) < len(ew[0])
        names = np.where(is_ew,
                         np.array([_street_name(vocab.EW_STREETS, j, "纬{}路") for j in range(R + 1)], dtype=object)[
                             np.minimum(street, R)],
                         np.array([_street_name(vocab.NS_STREETS, i, "经{}街") for i in range(C + 1)], dtype=object)[
                             np.minimum(street, C)])
        road_class = np.select([street % 4 == 0, street % 2 == 0], ["arterial", "secondary"], "branch")
        u = np.stack([i0 * BLOCK_W, i1 * BLOCK_W], 1)
        v = np.stack([j0 * BLOCK_H, j1 * BLOCK_H], 1)
        gates = self.stations[self.stations["kind"] == "gate"]
        for _, gate in gates.iterrows():
            edge = 0.0 if gate["u"] < 0 else C * BLOCK_W
            j = round(gate["v"] / BLOCK_H)
            u = np.vstack([u, [[gate["u"], edge]]])
            v = np.vstack([v, [[gate["v"] + 30.0, j * BLOCK_H]]])
            names = np.append(names, f"{gate['name']}进站路")
            road_class = np.append(road_class, "secondary")
        n = len(u)
        return pd.DataFrame({
            "id": np.arange(1, n + 1), "code": self._codes("DL", n, 6), "name": names, "road_class": road_class,
            "width_m": pd.Series(road_class).map({"arterial": 40.0, "secondary": 24.0, "branch": 16.0}).to_numpy(),
            "speed_kmh": pd.Series(road_class).map({"arterial": 50.0, "secondary": 40.0, "branch": 30.0}).to_numpy(),
            "oneway": False, "geom": self._lines(u, v),
            "enterprise_code": self._enterprise((u[:, 0] >= (self.plan.gap_col + 0.5) * BLOCK_W).astype(int)),
            "admin_code": self._admin_code(u.mean(1)),
        })

    def _crew_bases(self) -> pd.DataFrame:
        """Emergency crew bases (抢修站): about one per 60 blocks, at least two per enterprise, each at
        a street corner so that a route can start there."""
        rows = []
        for ent, i0, i1 in self.plan.areas():
            per_area = max(2, (i1 - i0) * self.plan.rows // 60)
            k = np.arange(per_area)
            i = i0 + (k * 7 + 1) % max(1, i1 - i0)
            j = (k * 5 + 1) % self.plan.rows
            rows.append(pd.DataFrame({"u": i * BLOCK_W + 25.0, "v": j * BLOCK_H + 25.0, "ent": ent}))
        bases = pd.concat(rows, ignore_index=True)
        n = len(bases)
        u, v = bases["u"].to_numpy(), bases["v"].to_numpy()
        name = np.array([ENTERPRISES[e][1].replace("有限公司", "") for e in bases["ent"]], dtype=object)
        x, y = self.to_storage(u, v)
        return pd.DataFrame({
            "id": np.arange(1, n + 1), "code": self._codes("QX", n, 3),
            "name": name + pd.Series(np.arange(1, n + 1)).astype(str).to_numpy(dtype=object) + "号抢修站",
            "address": self._compound_names(np.arange(n) * 11) + "路口", "phone": self._phones(n),
            "crew_count": self.rng.integers(2, 6, n),
            "geom": shapely.set_srid(shapely.points(x, y), self.srid),
            "enterprise_code": self._enterprise(bases["ent"]), "admin_code": self._admin_code(u),
        })

    def _railway(self) -> pd.DataFrame:
        x = (self.plan.rail_col + 0.5) * BLOCK_W
        v = np.arange(-1500.0, self.plan.rows * BLOCK_H + 1500.0 + 1, 80.0)
        return pd.DataFrame({
            "id": [1], "code": ["TL001"], "name": ["长大铁路"],
            "geom": self._lines(np.full((1, len(v)), x), v[None, :]),
            "enterprise_code": [ENTERPRISES[0][0]], "admin_code": self._admin_code([x]),
        })

    def _river(self) -> pd.DataFrame:
        u = np.arange(-1500.0, self.plan.cols * BLOCK_W + 1500.0 + 1, 40.0)
        v = (self.plan.river_row + 0.5) * BLOCK_H + 0.22 * BLOCK_H * np.sin(2 * np.pi * u / 1700.0)
        return pd.DataFrame({
            "id": [1], "code": ["HL001"], "name": ["运粮河"], "width_m": [60.0], "is_large": [True],
            "geom": self._lines(u[None, :], v[None, :]), "enterprise_code": [ENTERPRISES[0][0]],
            "admin_code": self._admin_code([self.plan.cols * BLOCK_W / 2]),
        })

    def _sentries(self) -> pd.DataFrame:
        """Sentries (管网哨兵): chambers of sub-high, high and crossing valves and 8% of the others,
        one at each sensitive site's cabinet, one in each station."""
        rng = self.rng
        valve_pipe = self.valves["pipe"].to_numpy()
        pclass = self.pipes["pclass"].to_numpy()[valve_pipe]
        crossing = self.pipes["laying"].to_numpy()[valve_pipe] == IN_CASING
        in_chamber = np.flatnonzero((pclass >= SUB_HIGH) | crossing | (rng.random(len(valve_pipe)) < 0.08))
        chamber_xyz = shapely.get_coordinates(self.valve_geom[in_chamber], include_z=True)

        outlet_block = self.nodes["block"].to_numpy()
        cabinet_inlets = self.regulators["inlet"].to_numpy()
        site_of_block = {b: k for k, b in enumerate(self.site_block)}
        inlet_block = outlet_block[cabinet_inlets]
        at_site = np.flatnonzero(np.isin(inlet_block, self.site_block))
        site_xyz = self.node_xyz[cabinet_inlets[at_site]] + np.array([6.0, 0.0, 0.0])
        branch = np.flatnonzero(self.pipes["kind"].to_numpy() == "branch")
        feeder = pd.Series(branch, index=self.pipes["b"].to_numpy()[branch])  # cabinet inlet → its feeder

        st = self.stations
        station_xyz = np.column_stack([*self.to_storage(st["u"].to_numpy() + 3, st["v"].to_numpy()),
                                       self.ground(st["u"].to_numpy(), st["v"].to_numpy())])
        n_v, n_s, n_t = len(in_chamber), len(at_site), len(st)
        n = n_v + n_s + n_t
        xyz = np.vstack([chamber_xyz.reshape(-1, 3), site_xyz.reshape(-1, 3), station_xyz.reshape(-1, 3)])
        node_u = np.concatenate([self.nodes["u"].to_numpy()[self.valves["node"].to_numpy()[in_chamber]],
                                 self.nodes["u"].to_numpy()[cabinet_inlets[at_site]], st["u"].to_numpy()])
        ent = np.concatenate([self.valves["enterprise"].to_numpy()[in_chamber],
                              self.regulators["enterprise"].to_numpy()[at_site], st["enterprise"].to_numpy()])
        pipe_id = np.concatenate([valve_pipe[in_chamber] + 1,
                                  feeder.reindex(cabinet_inlets[at_site]).to_numpy() + 1, np.full(n_t, -1)])
        status = rng.choice([2, 0, 7], n, p=[0.95, 0.04, 0.01])
        return pd.DataFrame({
            "id": np.arange(1, n + 1), "code": self._codes("SB", n, 6),
            "location_kind": np.repeat(["valve_chamber", "sensitive_site", "station"], [n_v, n_s, n_t]),
            "valve_id": pd.Series(np.concatenate([in_chamber + 1, np.zeros(n_s + n_t, int)]), dtype="Int64")
                          .where(np.arange(n) < n_v),
            "pipe_id": pd.Series(pipe_id, dtype="Int64").where(pipe_id > 0),
            "sensitive_site_id": pd.Series(np.concatenate([np.zeros(n_v, int),
                                                           [site_of_block[b] + 1 for b in inlet_block[at_site]],
                                                           np.zeros(n_t, int)]), dtype="Int64")
                                   .where((np.arange(n) >= n_v) & (np.arange(n) < n_v + n_s)),
            "reporting_interval_s": 300, "status": status,
            "name": np.repeat(["阀门井管网哨兵", "敏感场所管网哨兵", "场站管网哨兵"], [n_v, n_s, n_t]).astype(object),
            **self._device_fields(n, "sentry", 2023), "remarks": None,
            "geom": shapely.set_srid(shapely.points(xyz), self.srid),
            "enterprise_code": self._enterprise(ent), "admin_code": self._admin_code(node_u),
        })

    def _hazards(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """A few open and closed hazards on old pipes, each found by an inspection."""
        rng = self.rng
        old = np.flatnonzero((self.pipe_year < 2000) & (self.pipes["kind"].to_numpy() != "service"))
        n = min(len(old), max(3, (self.plan.cols * self.plan.rows) // 40))
        pipe = np.sort(rng.choice(old, n, replace=False))
        a, b = self.pipes["a"].to_numpy()[pipe], self.pipes["b"].to_numpy()[pipe]
        xyz = (self.node_xyz[a] + self.node_xyz[b]) / 2
        found = self._dates(n, date(2025, 1, 1), date(2026, 10, 31))
        level = np.where(rng.random(n) < 0.15, 3, 2)
        status = rng.choice([0, 1, 2, 3, 4], n, p=[0.3, 0.25, 0.1, 0.05, 0.3])
        due = found + np.where(level == 3, 15, 60).astype("timedelta64[D]")
        rectified = np.where(status >= 2, found + np.timedelta64(10, "D"), np.datetime64("NaT"))
        item = np.array(vocab.HAZARD_ITEMS, dtype=object)[rng.integers(0, len(vocab.HAZARD_ITEMS), n)]
        inspector = self._names(n)
        phone = self._phones(n)
        ent = self.pipes["enterprise"].to_numpy()[pipe]
        code = self._codes("YH-", n, 5)
        geom = shapely.set_srid(shapely.points(xyz), self.srid)
        pipe_code = self._codes("GX", len(self.pipes))[pipe]
        hazards = pd.DataFrame({
            "id": np.arange(1, n + 1), "code": code, "device_name": "管道 " + pipe_code, "item": item,
            "check_status": status, "rectified_on": rectified.astype("datetime64[D]"), "rectify_due_on": due,
            "reviewed_on": np.where(status == 4, found + np.timedelta64(20, "D"), np.datetime64("NaT")).astype(
                "datetime64[D]"),
            "source": rng.choice(["巡检", "管网哨兵报警", "第三方报告"], n, p=[0.7, 0.2, 0.1]).astype(object),
            "inspector": inspector, "inspector_phone": phone,
            "location": self.pipes["road"].to_numpy(dtype=object)[pipe],
            "level": level, "risk_level": np.where(level == 3, 2, 3), "found_at": pd.to_datetime(found).tz_localize(
                "Asia/Shanghai") + pd.Timedelta(hours=10),
            "feature_type": "pipe", "feature_id": pipe + 1, "geom": geom,
            "enterprise_code": self._enterprise(ent), "admin_code": self._admin_code(self.nodes["u"].to_numpy()[a]),
        })
        x, y = xyz[:, 0], xyz[:, 1]
        track = shapely.set_srid(shapely.linestrings(np.stack([
            np.column_stack([x - 80, y - 5, xyz[:, 2] + 1.2]), np.column_stack([x, y, xyz[:, 2] + 1.2]),
            np.column_stack([x + 80, y + 5, xyz[:, 2] + 1.2])], axis=1)), self.srid)
        inspections = pd.DataFrame({
            "id": np.arange(1, n + 1), "code": self._codes("XJ-", n, 5), "inspected_object": "管道 " + pipe_code,
            "items": "泄漏检测、防腐层、地面标志、占压", "has_hazard": True, "hazard_content": item,
            "inspector": inspector, "inspector_phone": phone, "inspected_at": hazards["found_at"],
            "hazard_id": hazards["id"], "track": track, "geom": geom,
            "enterprise_code": hazards["enterprise_code"], "admin_code": hazards["admin_code"],
        })
        return hazards, inspections


def load_demo(engine: Engine, pipes: int = 5000, seed: int = 42, echo: Callable[[str], None] = print,
              keyring: Keyring | None = None) -> dict[str, int]:
    """Generate the demo city and replace every business table's content with it, in one transaction.

    ID numbers and phone numbers are written sealed (accounts.personal_data.seal_frame): the
    tables hold their masks, and `generate` with the same pipes and seed gives the clear values.

    Parameters
    ----------
    engine
        The database (as the owner: the tables are truncated).
    pipes
        How many pipes.
    seed
        Random seed (same seed, same city).
    echo
        Called with lines of progress.
    keyring
        Seals the personal data (default: the deployment's, accounts.personal_data.load_keyring,
        made when missing).

    Returns
    -------
    dict
        Table → rows written. Coordinates are in the storage CRS the schema declares.
    """
    city = generate(pipes, seed, progress=echo, srid=storage_srid(engine))
    keyring = keyring or load_keyring()
    echo("seal ID numbers and phone numbers")
    tables = {table: (seal_frame(table, frame, keyring), geometry) for table, (frame, geometry) in city.tables.items()}
    with engine.begin() as conn:
        removed = remove_accounts(conn)   # they belong to the enterprises and divisions being replaced
        if removed:
            echo(f"removed {removed} accounts of the city replaced")
        # one audit row for the whole load rather than one per feature (accounts/audit.py)
        with audit.bulk(conn, "import", {"source": "demo city", "pipes": pipes, "seed": seed}) as summary:
            counts = replace_tables(conn, tables,
                                    truncate=("alarm_event", "alarm", "reading", "reading_quarantine",
                                              "device_status_log", "outbox", "incident", "topology_issue",
                                              *ACCOUNT_TABLES),
                                    progress=echo)
            summary["rows"] = counts
        conn.execute(text("UPDATE enterprise e SET customer_count = (SELECT count(*) FROM customer c "
                          "WHERE c.enterprise_code = e.enterprise_code)"))
    return counts
