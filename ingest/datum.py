"""Which datum transformation an import uses, how good it is, and the refusal when it is not good enough.

A file declared in Beijing 1954 or Xian 1980 has no transformation to CGCS2000 in PROJ's database:
the best PROJ offers is a "Ballpark geographic offset" (latitude and longitude kept as they are,
accuracy unknown), which misplaces features by tens of metres up to about 100 m (Beijing 1954) or
by metres (Xian 1980). `choose` finds the best transformation pyproj has from the declared CRS to
the storage CRS and:

- accepts it when its accuracy is known and at most `MAX_ACCURACY_M` (1 m): CGCS2000 to CGCS2000
  (conversions only, accuracy 0), or a datum with a good EPSG transformation;
- accepts WGS 84 (the ensemble, its realisations, CRS84) and the ITRF frames as CGCS2000 without a
  shift, with a stated accuracy of `WGS84_ACCURACY_M` (1 m): CGCS2000 is ITRF97 at epoch 2000.0 and
  WGS 84 agrees with ITRF within its own realisation accuracy; GeoJSON is WGS 84 by definition
  (RFC 7946) and most files come in it. Only when the storage CRS is on CGCS2000;
- otherwise (accuracy unknown, a ballpark, or worse than 1 m) raises `DatumRefused`, unless the
  user gives the transformation (`datum_shift`: seven Helmert parameters, `--datum-shift`; or a
  local grid, `for_local_grid`) or accepts the approximation (`accept_approximate`,
  `--accept-approximate-datum`).

Nothing downloads: operations whose grids are missing locally are skipped (pyproj lists them as
unavailable when PROJ's network is off, and a candidate naming a grid that is not on disk is passed
over even when it is on).

All transformers are always_xy: x is easting or longitude, y northing or latitude, whatever the
CRS's authority axis order; degrees for geographic CRSs, the CRS's unit (metres) for projected ones.
Heights pass unchanged.
"""
from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, replace
from typing import Any, Literal

from pyproj import CRS, Transformer
from pyproj.datadir import get_data_dir, get_user_data_dir
from pyproj.exceptions import CRSError, ProjError
from pyproj.transformer import TransformerGroup

from core.errors import InvalidInput, QiwangError
from ingest.local_grid import LocalGrid

MAX_ACCURACY_M = 1.0     # a transformation worse than this (or of unknown accuracy) is refused
WGS84_ACCURACY_M = 1.0   # the stated accuracy of taking WGS 84 / ITRF as CGCS2000 without a shift

# plausible magnitudes of a datum shift between national or local datums and CGCS2000
MAX_TRANSLATION_M = 1000.0
MAX_ROTATION_ARCSEC = 60.0
MAX_SCALE_PPM = 1000.0

OPTION = "--datum-shift"
WGS84_NOTE = ("WGS 84 is taken as CGCS2000 without a shift: CGCS2000 is ITRF97 at epoch 2000.0, and WGS 84 agrees "
              "with the ITRF within its own realisation accuracy, decimetres at epoch 2000 and under 1 m today with "
              "the plate motion since then not modelled; PROJ knows no better transformation")
USER_ACCURACY = "as the parameters' source states"

Convention = Literal["coordinate_frame", "position_vector"]
_CONVENTIONS: tuple[Convention, ...] = ("coordinate_frame", "position_vector")
_NAMES = ("dx", "dy", "dz", "rx", "ry", "rz", "ds")


class DatumRefused(QiwangError):
    """The best transformation to the storage CRS is of unknown accuracy or worse than 1 m.

    The message is one line: the declared CRS, the best method and its accuracy, the error to
    expect, and the ways out. The attributes hold the same as plain values.
    """

    def __init__(self, message: str, declared: str, method: str, accuracy_m: float | None) -> None:
        super().__init__(message)
        self.declared = declared
        self.method = method
        self.accuracy_m = accuracy_m


@dataclass(frozen=True)
class Helmert:
    """Seven parameters from the source datum to the target's (CGCS2000), geocentric.

    Attributes
    ----------
    dx, dy, dz
        Translations, metres.
    rx, ry, rz
        Rotations, arc-seconds.
    ds
        Scale difference, parts per million (the scale is 1 + ds·10⁻⁶).
    convention
        ``"coordinate_frame"`` (the default: the convention of Chinese 7-parameter sets, GB/T and
        local surveying authorities, EPSG method 1032) or ``"position_vector"`` (EPSG 1033, PROJ's
        ``+towgs84``). The two differ by the signs of the rotations.
    """

    dx: float
    dy: float
    dz: float
    rx: float
    ry: float
    rz: float
    ds: float
    convention: Convention = "coordinate_frame"

    def values(self) -> tuple[float, float, float, float, float, float, float]:
        """(dx, dy, dz, rx, ry, rz, ds) in metres, arc-seconds and ppm."""
        return (self.dx, self.dy, self.dz, self.rx, self.ry, self.rz, self.ds)

    def describe(self) -> str:
        """``7-parameter Helmert given by --datum-shift (coordinate frame): dx=… m, …, ds=… ppm``."""
        return (f"7-parameter Helmert given by {OPTION} ({self.convention.replace('_', ' ')}): "
                f"dx={self.dx:.10g} m, dy={self.dy:.10g} m, dz={self.dz:.10g} m, rx={self.rx:.10g}″, "
                f"ry={self.ry:.10g}″, rz={self.rz:.10g}″, ds={self.ds:.10g} ppm")

    def proj_step(self) -> str:
        """The PROJ ``helmert`` step (geocentric metres in and out)."""
        return (f"+proj=helmert +x={self.dx!r} +y={self.dy!r} +z={self.dz!r} +rx={self.rx!r} +ry={self.ry!r} "
                f"+rz={self.rz!r} +s={self.ds!r} +convention={self.convention}")


def parse_datum_shift(text: str) -> Helmert:
    """The Helmert parameters of a ``--datum-shift`` value.

    Parameters
    ----------
    text
        ``dx,dy,dz,rx,ry,rz,ds``: metres, arc-seconds, ppm (a scale factor of 1.0000012 is given as
        1.2), optionally followed by ``,coordinate_frame`` (the default) or ``,position_vector``.

    Returns
    -------
    Helmert

    Raises
    ------
    InvalidInput
        Field ``--datum-shift``: not seven numbers, an unknown convention, a number that is not
        finite, or a magnitude no datum shift has (a translation over 1,000 m, a rotation over 60″,
        a scale over 1,000 ppm: usually other units).
    """
    parts = [p.strip() for p in text.split(",")]
    convention: Convention = "coordinate_frame"
    if parts and re.fullmatch(r"[A-Za-z_ ]+", parts[-1]):
        word = parts.pop().lower().replace(" ", "_")
        if word not in _CONVENTIONS:
            raise InvalidInput(OPTION, f"unknown convention {word!r}: coordinate_frame or position_vector")
        convention = "position_vector" if word == "position_vector" else "coordinate_frame"
    if len(parts) != 7:
        raise InvalidInput(OPTION, f"give 7 numbers dx,dy,dz,rx,ry,rz,ds (m, arc-seconds, ppm), optionally "
                                   f"followed by ,coordinate_frame or ,position_vector; got {len(parts)}")
    values: list[float] = []
    for name, part in zip(_NAMES, parts, strict=True):
        try:
            value = float(part)
        except ValueError:
            raise InvalidInput(OPTION, f"{name} {part!r} is not a number") from None
        if not math.isfinite(value):
            raise InvalidInput(OPTION, f"{name} {part!r} is not a finite number")
        values.append(value)
    for name, value in zip(_NAMES, values, strict=True):
        if name.startswith("d") and name != "ds" and abs(value) > MAX_TRANSLATION_M:
            raise InvalidInput(OPTION, f"{name}={value:.10g} m: a translation over {MAX_TRANSLATION_M:,.0f} m is "
                                       f"implausible for a datum shift (metres expected)")
        if name.startswith("r") and abs(value) > MAX_ROTATION_ARCSEC:
            raise InvalidInput(OPTION, f"{name}={value:.10g}″: a rotation over {MAX_ROTATION_ARCSEC:.0f}″ is "
                                       f"implausible for a datum shift (arc-seconds expected)")
        if name == "ds" and abs(value) > MAX_SCALE_PPM:
            raise InvalidInput(OPTION, f"ds={value:.10g} ppm: a scale over {MAX_SCALE_PPM:,.0f} ppm is implausible "
                                       f"for a datum shift (parts per million expected: 1.2 for a factor 1.0000012)")
    dx, dy, dz, rx, ry, rz, ds = values
    return Helmert(dx, dy, dz, rx, ry, rz, ds, convention)


@dataclass(frozen=True)
class Datum:
    """The transformation one layer's coordinates go through, and what is known of its accuracy.

    Attributes
    ----------
    transformer
        Declared CRS → target CRS, always_xy (x = easting or longitude), heights unchanged. Not to
        be shared between threads (pyproj).
    declared
        The CRS the file (or ``--crs``) declares, ``EPSG:2435 Beijing 1954 / 3-degree Gauss-Kruger
        CM 114E`` (the name alone for a CRS without an EPSG code).
    target
        The storage CRS, ``EPSG:4550 CGCS2000 / 3-degree Gauss-Kruger CM 123E``.
    method
        PROJ's name of the datum transformation (the non-conversion steps), ``conversion only (…)``
        within one datum, the null shift of WGS 84, or the user's Helmert or local grid.
    accuracy_m
        Metres, PROJ's stated accuracy (0 for conversions only), `WGS84_ACCURACY_M` for the WGS 84
        null shift; None when unknown: a ballpark accepted with ``--accept-approximate-datum``, or
        parameters the user gave (their accuracy is what their source states, `user_given`).
    approximate
        True only when the transformation is below the bar (accuracy unknown or over 1 m) and was
        accepted with ``--accept-approximate-datum``. The WGS 84 null shift is not approximate in
        this sense: its accuracy is stated (1 m) and meets the bar; `note` explains it.
    user_given
        The user gave the transformation: ``--datum-shift`` or a local grid.
    note
        A sentence explaining an accepted null shift (WGS 84), or empty.
    """

    transformer: Transformer
    declared: str
    target: str
    method: str
    accuracy_m: float | None
    approximate: bool
    user_given: bool
    note: str = ""

    def accuracy_text(self) -> str:
        """``accuracy 0 m``, ``accuracy 1 m (…)``, ``accuracy unknown, accepted by …``."""
        if self.user_given:
            return f"accuracy: {USER_ACCURACY}"
        if self.accuracy_m is None:
            text = "accuracy unknown"
        else:
            text = f"accuracy {self.accuracy_m:g} m"
        if self.approximate:
            text += ", accepted by --accept-approximate-datum"
        if self.note:
            text += f": {self.note}"
        return text

    def describe(self) -> str:
        """One line for the import summary: declared → target by method; accuracy."""
        target = self.target.split(" ", 1)[0]
        return f"{_parenthesised(self.declared)} → {target} by {self.method}; {self.accuracy_text()}"

    def record(self) -> dict[str, Any]:
        """The transformation as JSON-serialisable values, for an import log row."""
        return {
            "declared": self.declared,
            "target": self.target,
            "method": self.method,
            "accuracy_m": self.accuracy_m,
            "approximate": self.approximate,
            "user_given": self.user_given,
            "note": self.note,
            "pipeline": self.transformer.definition,
        }


def choose(source: CRS, target_epsg: int, datum_shift: Helmert | None = None,
           accept_approximate: bool = False) -> Datum:
    """The transformation for coordinates declared in `source` into EPSG:`target_epsg`.

    Parameters
    ----------
    source
        The declared CRS (from the file or ``--crs``): projected, geographic or compound.
    target_epsg
        The storage CRS (EPSG:4550, CGCS2000 / 3-degree Gauss-Krüger CM 123E, in Qiwang).
    datum_shift
        Seven parameters from the source's datum to the target's, given by the user
        (``--datum-shift``): used instead of anything PROJ has, through an explicit pipeline
        (inverse of the source projection on the source ellipsoid → geocentric → Helmert →
        geographic on the target ellipsoid → target projection). `accept_approximate` is then moot.
    accept_approximate
        Accept a transformation of unknown accuracy or worse than 1 m (``--accept-approximate-datum``).

    Returns
    -------
    Datum

    Raises
    ------
    DatumRefused
        The best transformation is of unknown accuracy (a ballpark: Beijing 1954, Xian 1980…) or
        worse than 1 m, and neither `datum_shift` nor `accept_approximate` is given; or pyproj knows
        no way at all from `source` to the target.
    InvalidInput
        Field ``--datum-shift``: the source is on the target's datum already (nothing to shift), or
        has no ellipsoid to shift from (an engineering CRS, a geocentric one).
    """
    target = CRS.from_epsg(int(target_epsg))
    horizontal = _horizontal(source)
    declared, target_label = _label(source), _label(target)
    if datum_shift is not None:
        return _helmert_datum(horizontal, target, datum_shift, declared, target_label)

    best = _best(horizontal, target)
    if best is not None and best.accuracy is not None and 0 <= best.accuracy <= MAX_ACCURACY_M:
        return Datum(best, declared, target_label, _method(best), float(best.accuracy), False, False)
    if _is_wgs84_family(horizontal) and _is_cgcs2000(target):
        transformer = Transformer.from_pipeline(_pipeline(horizontal, target, []))
        method = f"null shift: {_geodetic_name(horizontal)} latitude and longitude taken as CGCS2000's"
        return Datum(transformer, declared, target_label, method, WGS84_ACCURACY_M, False, False, WGS84_NOTE)
    if best is None:
        raise DatumRefused(f"{declared}: pyproj knows no transformation to {target_label}; refused: give one "
                           f"with {OPTION} dx,dy,dz,rx,ry,rz,ds or a local grid with --crs LOCAL:name",
                           declared, "none", None)
    accuracy = float(best.accuracy) if best.accuracy is not None and best.accuracy >= 0 else None
    method = _method(best)
    if accept_approximate:
        return Datum(best, declared, target_label, method, accuracy, True, False)
    message = _refusal(horizontal, target, declared, target_label, method, accuracy)
    raise DatumRefused(message, declared, method, accuracy)


def for_local_grid(grid: LocalGrid, target_epsg: int, accept_approximate: bool = False) -> Datum:
    """The transformation of a layer in a city local grid: its four parameters onto the grid's
    target (a CGCS2000 CRS), then `choose` from there (conversions only, accuracy 0).

    The `transformer` is the second part only (grid target → storage CRS): the importer applies
    ``grid.apply`` first. `user_given` is True, `accuracy_m` None (the parameters' source states it).

    Raises
    ------
    DatumRefused
        The grid's target itself has no good transformation to the storage CRS (a grid declared
        onto Beijing 1954), and `accept_approximate` is not given.
    """
    onward = choose(grid.target, target_epsg, accept_approximate=accept_approximate)
    return replace(onward, declared=f"local grid {grid.name}", method=f"{grid.describe()}, then {onward.method}",
                   accuracy_m=None, user_given=True, note="")


# -- the refusal -----------------------------------------------------------------------------------

_EXPECTED_ERROR = {
    "beijing 1954": "tens of metres, up to about 100 m",
    "xian 1980": "a few metres",
}


def _refusal(source: CRS, target_crs: CRS, declared: str, target: str, method: str, accuracy: float | None) -> str:
    known = _EXPECTED_ERROR.get(_plain(_datum_name(source)))
    if known is not None:
        error = f"expect errors of {known}"
    elif accuracy is None:
        error = "the error is unknown (no shift between the datums is applied)"
    else:
        error = f"expect errors up to about {accuracy:g} m"
    stated = "accuracy unknown" if accuracy is None else f"accuracy {accuracy:g} m, worse than {MAX_ACCURACY_M:g} m"
    target_datum = "CGCS2000" if _is_cgcs2000(target_crs) else _geodetic_name(target_crs)
    return (f"{declared}: pyproj's best transformation to {target} is {method} ({stated}); {error}; "
            f"refused: give the 7 parameters from {_geodetic_name(source)} to {target_datum} with {OPTION} "
            f"dx,dy,dz,rx,ry,rz,ds (or a local grid with --crs LOCAL:name), "
            f"or accept the error with --accept-approximate-datum")


# -- what pyproj has -------------------------------------------------------------------------------

def _best(source: CRS, target: CRS) -> Transformer | None:
    """The first of PROJ's candidates (they come best first) whose grids are all on disk."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Best transformation is not available…": skipped below
        group = TransformerGroup(source, target, always_xy=True)
    for candidate in group.transformers:
        if _grids_local(candidate.definition):
            return candidate
    return None


_GRID_PARAM = re.compile(r"(?:^|\s)\+?(?:grids|geoidgrids|nadgrids|file)=(\S+)")


def _grids_local(definition: str) -> bool:
    """Every grid a PROJ definition names is a file on disk (so nothing is fetched from the CDN)."""
    dirs = [d for d in get_data_dir().split(os.pathsep) if d] + [get_user_data_dir()]
    for value in _GRID_PARAM.findall(definition):
        for name in value.split(","):
            name = name.lstrip("@")
            if name in ("", "null"):
                continue
            if not (os.path.isfile(name) or any(os.path.isfile(os.path.join(d, name)) for d in dirs)):
                return False
    return True


def _method(transformer: Transformer) -> str:
    """The datum-changing steps of a PROJ operation, or ``conversion only (…)``."""
    operations = transformer.operations or ()
    steps = [op.name for op in operations if op.type_name != "Conversion"]
    if steps or not operations:
        return " + ".join(steps) or transformer.description
    conversions = [op.name for op in operations if op.name != "axis order change (2D)"]
    return f"conversion only ({' + '.join(conversions)})" if conversions else "no change (the same CRS)"


# -- the CRSs --------------------------------------------------------------------------------------

def _horizontal(crs: CRS) -> CRS:
    """The horizontal part of a compound CRS; any other CRS as it is."""
    if crs.is_compound:
        return crs.sub_crs_list[0]
    return crs


def _label(crs: CRS) -> str:
    code = crs.to_epsg()
    return f"EPSG:{code} {crs.name}" if code is not None else crs.name


def _parenthesised(label: str) -> str:
    m = re.fullmatch(r"(EPSG:\d+) (.+)", label)
    return f"{m.group(1)} ({m.group(2)})" if m else label


def _datum_name(crs: CRS) -> str:
    try:
        return crs.datum.name if crs.datum is not None else crs.name
    except CRSError:
        return crs.name


def _geodetic_name(crs: CRS) -> str:
    """``Beijing 1954``, ``WGS 84``, ``ITRF2014``: the name of the CRS's geodetic CRS."""
    return crs.geodetic_crs.name if crs.geodetic_crs is not None else _datum_name(crs)


def _plain(name: str) -> str:
    """A datum name without ESRI's spelling: ``D_Beijing_1954`` → ``beijing 1954``."""
    return re.sub(r"^d ", "", name.replace("_", " ").strip().lower())


def _is_cgcs2000(crs: CRS) -> bool:
    return _plain(_datum_name(crs)) in ("china 2000", "cgcs2000", "china geodetic coordinate system 2000")


def _is_wgs84_family(crs: CRS) -> bool:
    """WGS 84 (the ensemble, a realisation such as G1762, CRS84) or an ITRF frame."""
    name = _plain(_datum_name(crs))
    return (name.startswith(("world geodetic system 1984", "wgs 84", "wgs 1984", "wgs84",
                             "international terrestrial reference frame"))
            or re.match(r"itrf\s?\d", name) is not None)


# -- explicit pipelines ----------------------------------------------------------------------------

def _helmert_datum(source: CRS, target: CRS, shift: Helmert, declared: str, target_label: str) -> Datum:
    if source.geodetic_crs is None or not (source.is_projected or source.is_geographic):
        raise InvalidInput(OPTION, f"{declared} is neither geographic nor projected: there is no ellipsoid "
                                   f"to shift from")
    if _datum_name(source) == _datum_name(target) or (_is_cgcs2000(source) and _is_cgcs2000(target)):
        datum = "CGCS2000" if _is_cgcs2000(target) else _datum_name(target)
        raise InvalidInput(OPTION, f"{declared} is {datum} already: nothing to shift")
    for crs, label in ((source, declared), (target, target_label)):
        if crs.prime_meridian is not None and crs.prime_meridian.longitude != 0:
            raise InvalidInput(OPTION, f"{label} counts longitude from {crs.prime_meridian.name}, not Greenwich: "
                                       f"not supported with a 7-parameter shift")
    middle = ["+proj=unitconvert +xy_in=deg +xy_out=rad", "+proj=push +v_3", f"+proj=cart {_ellipsoid(source)}",
              shift.proj_step(), f"+inv +proj=cart {_ellipsoid(target)}", "+proj=pop +v_3",
              "+proj=unitconvert +xy_in=rad +xy_out=deg"]
    try:
        transformer = Transformer.from_pipeline(_pipeline(source, target, middle))
    except ProjError as exc:  # pragma: no cover - PROJ refusing a pipeline of its own halves
        raise InvalidInput(OPTION, f"PROJ cannot build the pipeline from {declared}: {exc}") from None
    return Datum(transformer, declared, target_label, shift.describe(), None, False, True)


def _ellipsoid(crs: CRS) -> str:
    ellipsoid = crs.ellipsoid
    if ellipsoid is None:  # pragma: no cover - a geodetic CRS always has one
        raise InvalidInput(OPTION, f"{crs.name} has no ellipsoid")
    if ellipsoid.inverse_flattening and math.isfinite(ellipsoid.inverse_flattening):
        return f"+a={ellipsoid.semi_major_metre!r} +rf={ellipsoid.inverse_flattening!r}"
    return f"+a={ellipsoid.semi_major_metre!r} +b={ellipsoid.semi_minor_metre!r}"


def _pipeline(source: CRS, target: CRS, middle: list[str]) -> str:
    """One PROJ pipeline: `source` → its longitude, latitude (degrees) → `middle` → the target's
    longitude, latitude (degrees) → `target`, always east first. PROJ builds the two ends (they
    are conversions: the projections with their units and axes); `middle` empty is a null shift."""
    source_geographic = source.geodetic_crs.to_2d()  # type: ignore[union-attr]  # checked by the callers
    target_geographic = target.geodetic_crs.to_2d()  # type: ignore[union-attr]  # an EPSG CRS on a datum
    steps = (_steps(Transformer.from_crs(source, source_geographic, always_xy=True).definition) + middle
             + _steps(Transformer.from_crs(target_geographic, target, always_xy=True).definition))
    return "+proj=pipeline " + " ".join(f"+step {step}" for step in steps) if steps else "+proj=noop"


def _steps(definition: str) -> list[str]:
    """The steps of a PROJ definition (``proj=pipeline step … step …`` or one operation), each as a
    ``+key=value`` string with the pipeline's global parameters; no-op steps left out."""
    tokens = definition.split()
    if not tokens or tokens[0] != "proj=pipeline":
        groups, shared = [tokens], []
    else:
        rest = tokens[1:]
        first = rest.index("step") if "step" in rest else len(rest)
        shared, groups = rest[:first], []
        current: list[str] = []
        for token in rest[first:]:
            if token == "step":
                if current:
                    groups.append(current)
                current = []
            else:
                current.append(token)
        if current:
            groups.append(current)
    steps = []
    for group in groups:
        if "proj=noop" in group or not group:
            continue
        steps.append(" ".join(f"+{token.lstrip('+')}" for token in group + shared))
    return steps
