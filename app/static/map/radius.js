// The radius tool (周边查询): click a centre → the radius-query process → the circle drawn and the
// features nearby listed by layer, nearest first; each zooms to its feature. A route button sends
// the nearest crew to the centre.
//
// Hooks: #panel-radius[data-state][data-run], #radius-results > li[data-layer][data-code].

import { execute } from "./api.js";
import { t, onLanguageChange } from "./i18n.js";
import { setData } from "./overlays.js";
import { circlePolygon } from "./projection.js";
import { routeFromNearestBase, clearRoute } from "./route.js";
import { escapeHtml, formatNumber } from "./util.js";

// radius-query layer → OGC API collection.
const COLLECTIONS = {
  pipe: "pipes", valve: "valves", regulator: "regulators", station: "stations", sentry: "sentries",
  customer: "customers", sensitive_site: "sensitive_sites",
};
const LIMIT_PER_LAYER = 50;

export function setupRadius(context) {
  const { map, status } = context;
  const panel = document.getElementById("panel-radius");
  const reportEl = document.getElementById("radius-report");
  const state = { center: null, result: null, route: null, runs: 0 };

  function render() {
    const r = state.result;
    if (!r) { reportEl.innerHTML = ""; return; }
    const counts = Object.entries(r.counts || {}).filter(([, n]) => n > 0);
    reportEl.innerHTML = `
      <h3>${escapeHtml(t("radius_results"))} <span class="count">${r.features.length}</span></h3>
      <ul id="radius-counts" class="inline">${counts.map(([layer, n]) =>
        `<li data-layer="${layer}" data-count="${n}">${escapeHtml(COLLECTIONS[layer] ? context.collectionTitle(COLLECTIONS[layer]) : layer)} <b>${n}</b></li>`).join("")}</ul>
      <ul id="radius-results" class="feature-list">${r.features.map((f) =>
        `<li data-layer="${escapeHtml(f.layer)}" data-code="${escapeHtml(f.code)}">
          <button type="button" class="zoom" data-layer="${escapeHtml(f.layer)}" data-code="${escapeHtml(f.code)}"${COLLECTIONS[f.layer] ? "" : " disabled"}>${escapeHtml(t("zoom"))}</button>
          <code>${escapeHtml(f.code)}</code> ${escapeHtml(f.name || "")}
          <span class="muted">${escapeHtml(COLLECTIONS[f.layer] ? context.collectionTitle(COLLECTIONS[f.layer]) : f.layer)} · ${formatNumber(f.distance_m, 1)} ${escapeHtml(t("m"))}</span></li>`).join("")}</ul>
      <div class="actions"><button type="button" id="radius-route">${escapeHtml(t("route"))}</button>
        <button type="button" id="radius-clear">${escapeHtml(t("clear"))}</button></div>
      <div id="radius-route-info">${state.route ? state.route.html : ""}</div>`;
  }

  async function run(center) {
    const radius = Number(document.getElementById("radius-input").value) || 200;
    state.center = center;
    state.route = null;
    clearRoute(map);
    panel.dataset.state = "running";
    context.showPanel("radius");
    setData(map, "radius-circle", { type: "Feature", properties: {}, geometry: circlePolygon(center, radius) });
    try {
      state.result = await execute("radius-query", { point: center, radius_m: radius, limit_per_layer: LIMIT_PER_LAYER });
      state.runs += 1;
      render();
      panel.dataset.state = "done";
      panel.dataset.run = String(state.runs);
      return state.result;
    } catch (err) {
      panel.dataset.state = "error";
      status(`${t("error")}: ${err.message}`, { error: true });
      return null;
    }
  }

  function clear() {
    Object.assign(state, { center: null, result: null, route: null });
    setData(map, "radius-circle", null);
    clearRoute(map);
    render();
    panel.dataset.state = "empty";
  }

  reportEl.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.classList.contains("zoom") && COLLECTIONS[button.dataset.layer]) {
      const collection = COLLECTIONS[button.dataset.layer];
      const feature = await context.flyToCode(map, collection, button.dataset.code);
      if (feature) {
        const g = feature.geometry;
        const at = g.type === "Point" ? g.coordinates.slice(0, 2) : (g.type === "LineString" ? g.coordinates[0].slice(0, 2) : state.center);
        context.showAttributes(map, collection, feature.properties, at);
      }
    } else if (button.id === "radius-route" && state.center) {
      state.route = await routeFromNearestBase(context, state.center);
      if (state.route) document.getElementById("radius-route-info").innerHTML = state.route.html;
    } else if (button.id === "radius-clear") {
      clear();
    }
  });
  onLanguageChange(() => render());

  return { run, atClick: (event) => run([event.lngLat.lng, event.lngLat.lat]), clear, state };
}
