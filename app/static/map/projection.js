// EPSG:4550 (CGCS2000 / 3-degree Gauss-Krüger CM 123E: transverse Mercator, k0 = 1, false easting
// 500 000 m) → longitude, latitude. The processes answer some points in the storage CRS (valve x/y,
// routes, crew bases); the map needs CRS84. Snyder's series: well under a millimetre in a 3° zone.

const A = 6378137.0;
const F = 1 / 298.257222101;
const E2 = 2 * F - F * F;
const EP2 = E2 / (1 - E2);
const LON0 = 123.0;
const FALSE_EASTING = 500000.0;
const DEG = 180 / Math.PI;

const E1 = (1 - Math.sqrt(1 - E2)) / (1 + Math.sqrt(1 - E2));
const MU_DIVISOR = A * (1 - E2 / 4 - (3 * E2 * E2) / 64 - (5 * E2 * E2 * E2) / 256);

/** [easting, northing] in EPSG:4550 → [longitude, latitude] in degrees. */
export function storageToLngLat([x, y]) {
  const mu = y / MU_DIVISOR;
  const phi1 = mu
    + ((3 * E1) / 2 - (27 * E1 ** 3) / 32) * Math.sin(2 * mu)
    + ((21 * E1 ** 2) / 16 - (55 * E1 ** 4) / 32) * Math.sin(4 * mu)
    + ((151 * E1 ** 3) / 96) * Math.sin(6 * mu)
    + ((1097 * E1 ** 4) / 512) * Math.sin(8 * mu);
  const sin1 = Math.sin(phi1);
  const cos1 = Math.cos(phi1);
  const tan1 = Math.tan(phi1);
  const c1 = EP2 * cos1 * cos1;
  const t1 = tan1 * tan1;
  const n1 = A / Math.sqrt(1 - E2 * sin1 * sin1);
  const r1 = (A * (1 - E2)) / Math.pow(1 - E2 * sin1 * sin1, 1.5);
  const d = (x - FALSE_EASTING) / n1;
  const lat = phi1 - ((n1 * tan1) / r1) * (
    (d * d) / 2
    - ((5 + 3 * t1 + 10 * c1 - 4 * c1 * c1 - 9 * EP2) * d ** 4) / 24
    + ((61 + 90 * t1 + 298 * c1 + 45 * t1 * t1 - 252 * EP2 - 3 * c1 * c1) * d ** 6) / 720);
  const lon = (d
    - ((1 + 2 * t1 + c1) * d ** 3) / 6
    + ((5 - 2 * c1 + 28 * t1 - 3 * c1 * c1 + 8 * EP2 + 24 * t1 * t1) * d ** 5) / 120) / cos1;
  return [LON0 + lon * DEG, lat * DEG];
}

/** A GeoJSON geometry in EPSG:4550 (Point, LineString, MultiLineString, Polygon) → CRS84. */
export function geometryToLngLat(geometry) {
  const convert = (coords) => (typeof coords[0] === "number" ? storageToLngLat(coords) : coords.map(convert));
  return { type: geometry.type, coordinates: convert(geometry.coordinates) };
}

/** A circle of `radiusM` metres round [lon, lat] as a GeoJSON Polygon (local spherical approximation). */
export function circlePolygon([lon, lat], radiusM, steps = 72) {
  const dLat = (radiusM / 6371008.8) * DEG;
  const dLon = dLat / Math.cos(lat / DEG);
  const ring = [];
  for (let k = 0; k <= steps; k += 1) {
    const t = (2 * Math.PI * k) / steps;
    ring.push([lon + dLon * Math.cos(t), lat + dLat * Math.sin(t)]);
  }
  return { type: "Polygon", coordinates: [ring] };
}
