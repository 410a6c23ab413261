// The alarm panel (告警): open alarms (state not closed) and overdue hazards (rectification due
// before today and not rectified), newest first; each zooms to its feature and shows its attributes.
// Open alarms are also drawn live on the map (a GeoJSON source over the vector tiles, which a
// browser may cache), and the panel refreshes itself every REFRESH_S seconds while the page is shown.
// Each alarm offers its next handling step (确认 → 派单 → 处置完成 → 关闭), taken as the signed-in dispatcher's
// name through POST /api/alarms/{code}/{action}; closing waits until the value has cleared.
//
// Hooks: #panel-alarms[data-state=done], #alarm-list > li[data-alarm][data-state],
// li button.step[data-action], #hazard-list > li[data-hazard], map source "alarms-live".

import { items, postJSON } from "./api.js";
import { t, language, onLanguageChange } from "./i18n.js";
import { escapeHtml } from "./util.js";

const LIMIT = 200;
const REFRESH_S = 15;
const LIVE = "alarms-live";
// the step that follows each state of the lifecycle
const NEXT_STEP = { raised: "acknowledge", acknowledged: "dispatch", dispatched: "resolve", resolved: "close" };

function today() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

const pad = (n) => String(n).padStart(2, "0");

/** A timestamp in the browser's time zone (Beijing time in a Chinese control room), to the minute. */
function shortTime(value) {
  if (!value) return "—";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

const clock = (d) => (d ? `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}` : "—");

const MEASURES = JSON.parse(document.getElementById("qiwang-config").textContent).measures || {};

/** "甲烷浓度 30 %LEL" / "Methane 30 %LEL" (the raw name when the server does not know it). */
function measured(name, value) {
  const m = MEASURES[name];
  const shown = value === null || value === undefined ? "" : ` ${value}`;
  return m ? `${m[language()] || m.zh}${shown} ${m.unit}` : `${name || ""}${shown}`;
}

/** The open alarms as points above every tile layer, drawn by the tiled `alarms` layers' own symbols. */
function addLiveLayer(map) {
  const tiled = map.getStyle().layers.filter((l) => l.metadata && l.metadata["qiwang:collection"] === "alarms"
    && !l.metadata["qiwang:label"]);
  map.addSource(LIVE, { type: "geojson", data: { type: "FeatureCollection", features: [] } });
  // a halo so that an open alarm stands out among the network's symbols at any zoom
  map.addLayer({
    id: `${LIVE}-halo`, type: "circle", source: LIVE,
    paint: { "circle-radius": 16, "circle-color": "#c62828", "circle-opacity": 0.18,
             "circle-stroke-color": "#c62828", "circle-stroke-width": 1.5, "circle-stroke-opacity": 0.8 },
  });
  // one live layer per level rule (same filter, layout and paint), at every zoom
  for (const layer of tiled) {
    const { "source-layer": _sourceLayer, minzoom: _minzoom, ...rest } = layer;
    map.addLayer({ ...rest, id: `${LIVE}.${layer.id}`, source: LIVE });
  }
}

export function setupAlarms(context) {
  const { map, status } = context;
  const panel = document.getElementById("panel-alarms");
  // Steps are the dispatcher's: others see the alarms without them (the server refuses them too).
  const takesSteps = (context.roles || []).includes("dispatcher");
  const state = { alarms: [], hazards: [], updatedAt: null, signature: null };
  let timer = null;
  addLiveLayer(map);

  function stepButton(p) {
    const action = NEXT_STEP[p.state];
    if (!action || !takesSteps) return "";
    const blocked = action === "close" && !p.cleared_at;
    return `<button type="button" class="step" data-action="${action}"${blocked ? ` disabled title="${escapeHtml(t("still_active"))}"` : ""}>${escapeHtml(t(`step_${action}`))}</button>`;
  }

  function render() {
    document.getElementById("alarm-count").textContent = state.alarms.length;
    document.getElementById("hazard-count").textContent = state.hazards.length;
    document.getElementById("alarms-updated").textContent = clock(state.updatedAt);
    document.getElementById("alarm-list").innerHTML = state.alarms.length ? state.alarms.map((f, k) => {
      const p = f.properties;
      return `<li data-alarm="${escapeHtml(p.code)}" data-state="${escapeHtml(p.state)}" data-index="${k}" class="level-${escapeHtml(p.level)}">
        <b>${escapeHtml(p.code)}</b> ${escapeHtml(p.device_code || "")} <span class="muted">${escapeHtml(measured(p.measure, p.value))}</span><br>
        <span class="muted">${escapeHtml(t("raised"))} ${escapeHtml(shortTime(p.raised_at))} · ${escapeHtml(t(`state_${p.state}`))}${p.cleared_at ? ` · ${escapeHtml(t("cleared"))}` : ""}</span>
        <button type="button" class="zoom">${escapeHtml(t("zoom"))}</button>${stepButton(p)}</li>`;
    }).join("") : `<li class="muted">${escapeHtml(t("none"))}</li>`;
    document.getElementById("hazard-list").innerHTML = state.hazards.length ? state.hazards.map((f, k) => {
      const p = f.properties;
      return `<li data-hazard="${escapeHtml(p.code)}" data-index="${k}" class="level-${escapeHtml(p.level)}">
        <b>${escapeHtml(p.code)}</b> ${escapeHtml(p.item || "")} <span class="muted">${escapeHtml(p.device_name || "")}</span><br>
        <span class="muted">${escapeHtml(t("found"))} ${escapeHtml(shortTime(p.found_at))} · ${escapeHtml(t("due"))} ${escapeHtml(p.rectify_due_on)}</span>
        <button type="button" class="zoom">${escapeHtml(t("zoom"))}</button></li>`;
    }).join("") : `<li class="muted">${escapeHtml(t("none"))}</li>`;
  }

  async function refresh() {
    panel.dataset.state = "running";
    try {
      const [alarms, hazards] = await Promise.all([
        items("alarms", { filter: "state <> 'closed'", sortby: "-raised_at", limit: LIMIT }),
        items("hazards", { filter: `rectify_due_on < DATE('${today()}') AND rectified_on IS NULL`, sortby: "-found_at", limit: LIMIT }),
      ]);
      state.updatedAt = new Date();
      document.getElementById("alarms-updated").textContent = clock(state.updatedAt);
      // Redraw only what changed: a quiet refresh must not reload the map source nor rebuild the
      // list under the dispatcher's pointer.
      const features = alarms.features || [];
      const signature = JSON.stringify([features, (hazards.features || []).map((f) => f.properties.code)]);
      if (signature !== state.signature) {
        state.signature = signature;
        state.alarms = features;
        state.hazards = hazards.features || [];
        map.getSource(LIVE).setData({ type: "FeatureCollection", features: state.alarms.filter((f) => f.geometry) });
        render();
      }
      panel.dataset.state = "done";
    } catch (err) {
      panel.dataset.state = "error";
      status(`${t("error")}: ${err.message}`, { error: true });
    }
  }

  /** Refresh every `seconds` while the page is visible (0 stops); the default is REFRESH_S. */
  function autoRefresh(seconds = REFRESH_S) {
    clearInterval(timer);
    timer = seconds > 0 ? setInterval(() => { if (!document.hidden) refresh(); }, seconds * 1000) : null;
  }

  async function takeStep(code, action, button) {
    button.disabled = true;
    try {
      // Recorded as the signed-in account's step (the server knows who that is).
      await postJSON(`/api/alarms/${encodeURIComponent(code)}/${action}`, {});
      status(`${code}: ${t(`step_${action}`)} · ${t("step_done")}`);
      await refresh();
    } catch (err) {
      button.disabled = false;
      status(`${code}: ${err.message}`, { error: true });
    }
  }

  function zoomTo(feature, collection) {
    if (!feature || !feature.geometry) return;
    context.flyToFeature(map, feature, { zoom: 17 });
    context.showAttributes(map, collection, feature.properties, feature.geometry.coordinates.slice(0, 2));
  }

  panel.addEventListener("click", (event) => {
    if (event.target.closest("#alarms-refresh")) { refresh(); return; }
    const li = event.target.closest("li[data-index]");
    if (!li) return;
    const step = event.target.closest("button.step");
    if (step && li.dataset.alarm) { takeStep(li.dataset.alarm, step.dataset.action, step); return; }
    if (li.dataset.alarm) zoomTo(state.alarms[Number(li.dataset.index)], "alarms");
    else zoomTo(state.hazards[Number(li.dataset.index)], "hazards");
  });
  onLanguageChange(() => render());
  autoRefresh();

  return { refresh, autoRefresh, state };
}
