// The crew route (抢修路径): the route process without `from` picks the crew base (抢修站) that
// reaches the incident first; the route comes back in EPSG:4550 and is drawn in CRS84.

import { execute } from "./api.js";
import { t } from "./i18n.js";
import { setData } from "./overlays.js";
import { geometryToLngLat, storageToLngLat } from "./projection.js";
import { escapeHtml, featureCollection, formatNumber } from "./util.js";

export function clearRoute(map) {
  setData(map, "route-line", null);
  setData(map, "route-points", null);
}

/** Route from the nearest crew base to [lon, lat]; draws it and resolves to {result, html} (null on error). */
export async function routeFromNearestBase(context, lngLat) {
  const { map, status } = context;
  status(t("running"));
  try {
    const result = await execute("route", { to: lngLat });
    const base = result.crew_base;
    const route = result.route;
    const line = geometryToLngLat(route.geometry);
    setData(map, "route-line", { type: "Feature", properties: { crew_base: base.code }, geometry: line });
    setData(map, "route-points", featureCollection([
      { type: "Feature", properties: { kind: "crew_base", code: base.code }, geometry: { type: "Point", coordinates: storageToLngLat(base.point) } },
    ]));
    const html = `<div class="route-info" data-crew-base="${escapeHtml(base.code)}" data-minutes="${route.minutes}" data-length="${route.length_m}">
      <h4>${escapeHtml(t("route"))}</h4>
      <p>${escapeHtml(t("crew_base"))}: <b>${escapeHtml(base.name || base.code)}</b> (${escapeHtml(base.code)}) ${escapeHtml(base.phone || "")}</p>
      <p>${formatNumber(route.minutes, 1)} ${escapeHtml(t("minutes"))} · ${escapeHtml(t("length"))} ${formatNumber(route.length_m)} ${escapeHtml(t("m"))}</p>
      <p class="muted">${escapeHtml(t("roads"))}: ${(route.roads || []).map(escapeHtml).join(" → ")}</p></div>`;
    status("");
    return { result, html };
  } catch (err) {
    status(`${t("error")}: ${err.message}`, { error: true });
    return null;
  }
}
