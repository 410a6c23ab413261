// The burst tool (爆管关阀分析): click a pipe or a point, or type a pipe code → the burst-analysis
// process (synchronous, with geometry) → outage area, isolated and dry pipes, valves to close drawn;
// the panel lists valves (each with a "failed" box that re-runs the analysis for the second ring
// and a zoom button), customers by type, sensitive sites; save as a planned incident, print, export.
//
// Stable hooks for tests and scripts: #panel-burst[data-state=running|done|error][data-run=N],
// #burst-valves > li[data-valve] (exactly the report's valves_to_close), li[data-ring="2"] for the
// valves the second ring added, #burst-failed-valves > li[data-valve], #burst-summary[data-pipe].

import { execute } from "./api.js";
import { t, onLanguageChange } from "./i18n.js";
import { setData } from "./overlays.js";
import { storageToLngLat } from "./projection.js";
import { routeFromNearestBase, clearRoute } from "./route.js";
import { download, escapeHtml, featureCollection, formatNumber } from "./util.js";

const PICK_PX = 6;

/** Distance in pixels from `point` to the segment a–b (all screen points). */
function segmentDistance(point, a, b) {
  const dx = b.x - a.x;
  const dy = b.y - a.y;
  const length2 = dx * dx + dy * dy;
  const s = length2 ? Math.max(0, Math.min(1, ((point.x - a.x) * dx + (point.y - a.y) * dy) / length2)) : 0;
  return Math.hypot(point.x - (a.x + s * dx), point.y - (a.y + s * dy));
}

/** The code of the rendered pipe nearest to a screen point (within PICK_PX), or null. */
export function pipeAt(map, point) {
  const layers = map.getStyle().layers
    .filter((layer) => layer.metadata && layer.metadata["qiwang:collection"] === "pipes")
    .filter((layer) => map.getLayoutProperty(layer.id, "visibility") !== "none")
    .map((layer) => layer.id);
  if (!layers.length) return null;
  const box = [[point.x - PICK_PX, point.y - PICK_PX], [point.x + PICK_PX, point.y + PICK_PX]];
  let best = null;
  for (const feature of map.queryRenderedFeatures(box, { layers })) {
    const lines = feature.geometry.type === "LineString" ? [feature.geometry.coordinates] : feature.geometry.coordinates;
    for (const line of lines) {
      const screen = line.map((c) => map.project(c));
      for (let k = 1; k < screen.length; k += 1) {
        const d = segmentDistance(point, screen[k - 1], screen[k]);
        if (!best || d < best.distance) best = { distance: d, code: feature.properties.code };
      }
    }
  }
  return best ? best.code : null;
}

export function setupBurst(context) {
  const { map, status } = context;
  const panel = document.getElementById("panel-burst");
  const reportEl = document.getElementById("burst-report");
  const state = {
    inputs: null,          // {pipe} or {point}
    failed: [],            // codes of valves marked failed, in the order marked
    result: null,          // the last report
    valves: new Map(),     // code → {lngLat, already_closed}: every valve seen, to draw failed ones
    runs: 0,
    incident: null,
    route: null,
  };

  function burstLngLat() {
    const point = state.result && state.result.burst && state.result.burst.point;
    return point ? storageToLngLat(point) : null;
  }

  function draw() {
    const r = state.result;
    if (!r) {
      ["burst-outage", "burst-isolated", "burst-dry", "burst-valves", "burst-point"].forEach((s) => setData(map, s, null));
      return;
    }
    const features = r.features || {};
    const ring = r.second_ring || {};
    const addedPipes = new Set(ring.added_isolated_pipes || []);
    const addedValves = new Set(ring.added_valves || []);
    const isolated = ((features.isolated_pipes || {}).features || []).map((f) => ({
      ...f, properties: { ...f.properties, second_ring: addedPipes.has(f.properties.code) } }));
    setData(map, "burst-isolated", featureCollection(isolated));
    setData(map, "burst-dry", features.dry_pipes || null);
    setData(map, "burst-outage", r.outage_area ? { type: "Feature", properties: {}, geometry: r.outage_area } : null);
    const valveFeatures = r.valves_to_close.map((v) => ({
      type: "Feature",
      geometry: { type: "Point", coordinates: state.valves.get(v.code).lngLat },
      properties: { code: v.code, already_closed: v.already_closed, second_ring: addedValves.has(v.code), failed: false },
    }));
    // Failed valves first, drawn as wide hollow rings under the valves of the second ring (often
    // the other valves of the same chamber, a few metres away).
    for (const code of state.failed) {
      const seen = state.valves.get(code);
      if (seen) valveFeatures.unshift({ type: "Feature", geometry: { type: "Point", coordinates: seen.lngLat },
        properties: { code, failed: true } });
    }
    setData(map, "burst-valves", featureCollection(valveFeatures));
    const at = burstLngLat();
    setData(map, "burst-point", at ? { type: "Feature", properties: {}, geometry: { type: "Point", coordinates: at } } : null);
  }

  function valveItem(v, ring) {
    const badges = [
      ring === 2 ? `<span class="badge ring2">${escapeHtml(t("second_ring"))}</span>` : "",
      v.already_closed ? `<span class="badge closed">${escapeHtml(t("already_closed"))}</span>` : "",
    ].join("");
    return `<li data-valve="${escapeHtml(v.code)}" data-ring="${ring}" data-already-closed="${v.already_closed}">
      <label class="failed-box"><input type="checkbox" class="valve-failed" data-valve="${escapeHtml(v.code)}"> ${escapeHtml(t("failed"))}</label>
      <code>${escapeHtml(v.code)}</code> ${badges}
      <button type="button" class="zoom" data-zoom-valve="${escapeHtml(v.code)}">${escapeHtml(t("zoom"))}</button></li>`;
  }

  function render() {
    const r = state.result;
    if (!r) { reportEl.innerHTML = ""; return; }
    const ring = r.second_ring;
    const addedValves = new Set((ring && ring.added_valves) || []);
    const customers = r.affected_customers || { count: 0, by_type: {} };
    const byType = Object.entries(customers.by_type || {});
    const sites = r.sensitive_sites || [];
    const dryCount = Array.isArray(r.dry_pipes) ? r.dry_pipes.length : r.dry_pipes;
    reportEl.innerHTML = `
      <div id="print-header"><h2>${escapeHtml(t("report_title"))}</h2>
        <p>${escapeHtml(t("generated"))}: ${escapeHtml(new Date().toLocaleString())}</p></div>
      <div id="burst-summary" data-pipe="${escapeHtml(r.burst.pipe)}">
        <h3>${escapeHtml(t("burst_pipe"))} <b id="burst-pipe-code">${escapeHtml(r.burst.pipe)}</b></h3>
        <dl class="figures">
          <dt>${escapeHtml(t("isolated_pipes"))}</dt><dd id="burst-isolated-count">${r.isolated_pipes.length}</dd>
          <dt>${escapeHtml(t("dry_pipes"))}</dt><dd id="burst-dry-count">${dryCount}</dd>
          <dt>${escapeHtml(t("isolated_length"))}</dt><dd>${formatNumber(r.isolated_length_m, 1)} ${escapeHtml(t("m"))}</dd>
          <dt>${escapeHtml(t("isolated_volume"))}</dt><dd>${formatNumber(r.isolated_volume_m3, 1)} ${escapeHtml(t("m3"))}</dd>
          <dt>${escapeHtml(t("affected_customers"))}</dt><dd id="burst-customer-count">${customers.count}</dd>
        </dl>
      </div>
      <h3>${escapeHtml(t("valves_to_close"))} <span class="count">${r.valves_to_close.length}</span></h3>
      <ul id="burst-valves" class="feature-list">${r.valves_to_close.map((v) => valveItem(v, addedValves.has(v.code) ? 2 : 1)).join("")}</ul>
      ${state.failed.length ? `<h4>${escapeHtml(t("failed_valves"))}</h4>
      <ul id="burst-failed-valves" class="feature-list">${state.failed.map((code) => `<li data-valve="${escapeHtml(code)}">
        <label class="failed-box"><input type="checkbox" class="valve-failed" data-valve="${escapeHtml(code)}" checked> ${escapeHtml(t("failed"))}</label>
        <code>${escapeHtml(code)}</code>
        <button type="button" class="zoom" data-zoom-valve="${escapeHtml(code)}">${escapeHtml(t("zoom"))}</button></li>`).join("")}</ul>` : ""}
      ${ring ? `<section id="burst-second-ring" data-added-valves="${escapeHtml((ring.added_valves || []).join(","))}"
          data-added-isolated="${(ring.added_isolated_pipes || []).length}" data-added-dry="${(ring.added_dry_pipes || []).length}"
          data-added-customers="${ring.added_customers || 0}">
        <h3>${escapeHtml(t("second_ring_title"))}</h3>
        <dl class="figures">
          <dt>${escapeHtml(t("added_valves"))}</dt><dd>${(ring.added_valves || []).map(escapeHtml).join(", ") || escapeHtml(t("none"))}</dd>
          <dt>${escapeHtml(t("added_isolated"))}</dt><dd>${(ring.added_isolated_pipes || []).length}</dd>
          <dt>${escapeHtml(t("added_dry"))}</dt><dd>${(ring.added_dry_pipes || []).length}</dd>
          <dt>${escapeHtml(t("added_customers"))}</dt><dd>${ring.added_customers || 0}</dd>
        </dl></section>` : ""}
      <h3>${escapeHtml(t("affected_customers"))} <span class="count">${customers.count}</span></h3>
      <ul id="burst-customers" class="feature-list">${byType.length ? byType.map(([type, n]) =>
        `<li data-type="${escapeHtml(type)}" data-count="${n}">${escapeHtml(type)}: <b>${n}</b></li>`).join("")
        : `<li class="muted">${escapeHtml(t("none"))}</li>`}</ul>
      <h3>${escapeHtml(t("sensitive_sites"))} <span class="count">${sites.length}</span></h3>
      <ul id="burst-sites" class="feature-list">${sites.length ? sites.map((s) =>
        `<li data-site="${escapeHtml(s.code)}"><b>${escapeHtml(s.name || s.code)}</b> ${escapeHtml(s.type || "")}
          <span class="muted">${formatNumber(s.distance_m, 1)} ${escapeHtml(t("m"))}
          ${s.in_outage_area ? escapeHtml(t("in_outage_area")) : ""} ${s.in_impact_radius ? escapeHtml(t("in_impact_radius")) : ""}</span>
          <button type="button" class="zoom" data-zoom-site="${escapeHtml(s.code)}">${escapeHtml(t("zoom"))}</button></li>`).join("")
        : `<li class="muted">${escapeHtml(t("none"))}</li>`}</ul>
      <div class="actions">
        <button type="button" id="burst-save">${escapeHtml(t("save_incident"))}</button>
        <button type="button" id="burst-route">${escapeHtml(t("route"))}</button>
        <button type="button" id="burst-print">${escapeHtml(t("print"))}</button>
        <button type="button" id="burst-export-json">${escapeHtml(t("export_json"))}</button>
        <button type="button" id="burst-export-geojson">${escapeHtml(t("export_geojson"))}</button>
        <button type="button" id="burst-clear">${escapeHtml(t("clear"))}</button>
      </div>
      <p id="burst-incident" ${state.incident ? `data-incident="${escapeHtml(state.incident)}"` : "hidden"}>${escapeHtml(t("saved_as"))} <b>${escapeHtml(state.incident || "")}</b></p>
      <div id="burst-route-info"></div>`;
    if (state.route) document.getElementById("burst-route-info").innerHTML = state.route.html;
  }

  /** Show the whole outage area (and every valve to close), never zooming out of a closer view. */
  function fitResult(result, { always = false } = {}) {
    const bounds = new window.maplibregl.LngLatBounds();
    const walk = (c) => (typeof c[0] === "number" ? bounds.extend([c[0], c[1]]) : c.forEach(walk));
    if (result.outage_area) walk(result.outage_area.coordinates);
    for (const v of result.valves_to_close) walk(state.valves.get(v.code).lngLat);
    if (bounds.isEmpty()) return;
    const view = map.getBounds();
    if (!always && view.contains(bounds.getNorthEast()) && view.contains(bounds.getSouthWest())) return;
    map.fitBounds(bounds, { padding: 60, maxZoom: always ? 18 : Math.max(map.getZoom(), 16), duration: 0 });
  }

  async function run({ saveAs = null, fit = false } = {}) {
    if (!state.inputs) return null;
    panel.dataset.state = "running";
    status(t("running"));
    const inputs = { ...state.inputs, geometry: true };
    if (state.failed.length) inputs.failed_valves = [...state.failed];
    if (saveAs) {
      inputs.save_as = saveAs;
      inputs.title = `爆管 ${state.result ? state.result.burst.pipe : state.inputs.pipe || ""}`.trim();
    }
    try {
      const result = await execute("burst-analysis", inputs);
      const geometries = new Map(((result.features && result.features.valves_to_close || {}).features || [])
        .map((f) => [f.properties.code, f.geometry.coordinates.slice(0, 2)]));
      for (const v of result.valves_to_close) {
        state.valves.set(v.code, { lngLat: geometries.get(v.code) || storageToLngLat([v.x, v.y]), already_closed: v.already_closed });
      }
      state.result = result;
      if (saveAs) state.incident = result.incident && (result.incident.code || result.incident);
      state.runs += 1;
      draw();
      render();
      fitResult(result, { always: fit });
      panel.dataset.state = "done";
      panel.dataset.run = String(state.runs);
      status("");
      return result;
    } catch (err) {
      panel.dataset.state = "error";
      status(`${t("error")}: ${err.message}`, { error: true });
      return null;
    }
  }

  /** A new burst: {pipe: code} or {point: [lon, lat]}; fits the map to the result (with `fit`, else
   * only when the result reaches beyond the view). */
  async function start(inputs, { fit = true } = {}) {
    state.inputs = inputs;
    state.failed = [];
    state.incident = null;
    state.route = null;
    clearRoute(map);
    context.showPanel("burst");
    return run({ fit });
  }

  function atClick(event) {
    const code = pipeAt(map, event.point);
    document.getElementById("burst-pipe-input").value = code || "";
    // A click keeps the view unless the result reaches beyond it.
    return start(code ? { pipe: code } : { point: [event.lngLat.lng, event.lngLat.lat] }, { fit: false });
  }

  function setFailed(code, failed) {
    state.failed = state.failed.filter((c) => c !== code);
    if (failed) state.failed.push(code);
    state.incident = null;
    return run();
  }

  function clear() {
    Object.assign(state, { inputs: null, failed: [], result: null, incident: null, route: null });
    state.valves.clear();
    clearRoute(map);
    draw();
    render();
    panel.dataset.state = "empty";
  }

  function asGeoJSON() {
    const r = state.result;
    const features = [];
    if (r.outage_area) features.push({ type: "Feature", properties: { kind: "outage_area", pipe: r.burst.pipe }, geometry: r.outage_area });
    const add = (kind, fc) => ((fc || {}).features || []).forEach((f) => features.push({ ...f, properties: { ...f.properties, kind } }));
    add("isolated_pipe", r.features && r.features.isolated_pipes);
    add("dry_pipe", r.features && r.features.dry_pipes);
    for (const v of r.valves_to_close) {
      features.push({ type: "Feature", properties: { kind: "valve_to_close", code: v.code, already_closed: v.already_closed },
        geometry: { type: "Point", coordinates: state.valves.get(v.code).lngLat } });
    }
    return { type: "FeatureCollection", name: `burst ${r.burst.pipe}`, features };
  }

  function print() {
    const snapshot = document.getElementById("print-snapshot");
    try { snapshot.src = map.getCanvas().toDataURL("image/png"); } catch { snapshot.removeAttribute("src"); }
    window.print();
  }

  document.getElementById("burst-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const code = document.getElementById("burst-pipe-input").value.trim();
    if (code) start({ pipe: code });
  });
  reportEl.addEventListener("change", (event) => {
    const box = event.target.closest(".valve-failed");
    if (box) setFailed(box.dataset.valve, box.checked);
  });
  reportEl.addEventListener("click", async (event) => {
    const target = event.target.closest("button");
    if (!target) return;
    const r = state.result;
    if (target.dataset.zoomValve) {
      const seen = state.valves.get(target.dataset.zoomValve);
      if (seen) context.flyToFeature(map, { type: "Feature", properties: { code: target.dataset.zoomValve }, geometry: { type: "Point", coordinates: seen.lngLat } }, { zoom: 18 });
    } else if (target.dataset.zoomSite) {
      context.flyToCode(map, "sensitive_sites", target.dataset.zoomSite);
    } else if (target.id === "burst-save") {
      await run({ saveAs: "planned" });
    } else if (target.id === "burst-route") {
      const at = burstLngLat();
      if (at) {
        const route = await routeFromNearestBase(context, at);
        if (route) { state.route = route; document.getElementById("burst-route-info").innerHTML = route.html; }
      }
    } else if (target.id === "burst-print") {
      print();
    } else if (target.id === "burst-export-json") {
      download(`burst-${r.burst.pipe}.json`, JSON.stringify(r, null, 2));
    } else if (target.id === "burst-export-geojson") {
      download(`burst-${r.burst.pipe}.geojson`, JSON.stringify(asGeoJSON(), null, 2), "application/geo+json");
    } else if (target.id === "burst-clear") {
      clear();
    }
  });
  onLanguageChange(() => render());

  return { start, atClick, setFailed, clear, state, asGeoJSON };
}
