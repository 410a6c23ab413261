// The alarm panel (告警): open alarms (state not closed) and overdue hazards (rectification due
// before today and not rectified), newest first; each zooms to its feature and shows its attributes.
//
// Hooks: #panel-alarms[data-state=done], #alarm-list > li[data-alarm], #hazard-list > li[data-hazard].

import { items } from "./api.js";
import { t, onLanguageChange } from "./i18n.js";
import { escapeHtml } from "./util.js";

const LIMIT = 200;

function today() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

function shortTime(value) {
  return value ? String(value).replace("T", " ").slice(0, 16) : "—";
}

export function setupAlarms(context) {
  const { map, status } = context;
  const panel = document.getElementById("panel-alarms");
  const state = { alarms: [], hazards: [] };

  function render() {
    document.getElementById("alarm-count").textContent = state.alarms.length;
    document.getElementById("hazard-count").textContent = state.hazards.length;
    document.getElementById("alarm-list").innerHTML = state.alarms.length ? state.alarms.map((f, k) => {
      const p = f.properties;
      return `<li data-alarm="${escapeHtml(p.code)}" data-index="${k}" class="level-${escapeHtml(p.level)}">
        <b>${escapeHtml(p.code)}</b> ${escapeHtml(p.device_code || "")} <span class="muted">${escapeHtml(p.measure || "")} ${escapeHtml(p.value ?? "")}</span><br>
        <span class="muted">${escapeHtml(t("raised"))} ${escapeHtml(shortTime(p.raised_at))} · ${escapeHtml(t("state"))} ${escapeHtml(p.state)}</span>
        <button type="button" class="zoom">${escapeHtml(t("zoom"))}</button></li>`;
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
      state.alarms = alarms.features || [];
      state.hazards = hazards.features || [];
      render();
      panel.dataset.state = "done";
    } catch (err) {
      panel.dataset.state = "error";
      status(`${t("error")}: ${err.message}`, { error: true });
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
    if (li.dataset.alarm) zoomTo(state.alarms[Number(li.dataset.index)], "alarms");
    else zoomTo(state.hazards[Number(li.dataset.index)], "hazards");
  });
  onLanguageChange(() => render());

  return { refresh, state };
}
