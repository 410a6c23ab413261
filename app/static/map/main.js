// The dispatcher map: MapLibre over the OGC API vector tiles, styled by /styles/maplibre.json, with a
// layer switcher and legend, attributes on click, search by code or address, and the tools
// (burst, radius and route, alarms) in their own modules. window.qiwangMap is the MapLibre map.

import { cqlString, items, queryables, getJSON, signedIn } from "./api.js";
import { bilingual, initialLanguage, onLanguageChange, setLanguage, t, language } from "./i18n.js";
import { setupBurst } from "./burst.js";
import { setupRadius } from "./radius.js";
import { setupAlarms } from "./alarms.js";
import { analysisLegend, addAnalysisLayers } from "./overlays.js";
import { escapeHtml } from "./util.js";

const maplibregl = window.maplibregl;
const config = JSON.parse(document.getElementById("qiwang-config").textContent);

// Collections hidden until switched on: clutter for a dispatcher.
const HIDDEN_AT_START = new Set(["nodes", "topology_issues", "inspections", "enterprises"]);
// Search: the text columns each collection is searched by, besides its code.
const SEARCH_COLUMNS = {
  pipes: ["road_name"],
  valves: ["name"],
  stations: ["name", "address"],
  regulators: ["name"],
  sentries: ["name"],
  customers: ["address"],
  sensitive_sites: ["name", "address"],
  hazards: ["location", "device_name"],
  crew_bases: ["name", "address"],
  incidents: ["title"],
  alarms: ["device_code"],
};
const SEARCH_LIMIT = 5;

const statusEl = document.getElementById("status");
let statusTimer = null;

/** A short message at the bottom of the map; errors stay until the next message. */
export function status(message, { error = false } = {}) {
  statusEl.textContent = message || "";
  statusEl.classList.toggle("error", error);
  statusEl.hidden = !message;
  clearTimeout(statusTimer);
  if (message && !error) statusTimer = setTimeout(() => { statusEl.hidden = true; }, 4000);
}


// --- the map ----------------------------------------------------------------------------------------

async function loadStyle() {
  const style = await getJSON("/styles/maplibre.json");
  if (config.basemap) {
    style.sources.basemap = {
      type: "raster", tiles: [config.basemap.url], tileSize: 256,
      attribution: config.basemap.attribution || "",
    };
    const at = style.layers.findIndex((layer) => layer.id !== "background");
    style.layers.splice(at < 0 ? style.layers.length : at, 0, { id: "basemap", type: "raster", source: "basemap" });
  }
  for (const layer of style.layers) {
    const collection = layer.metadata && layer.metadata["qiwang:collection"];
    if (collection && HIDDEN_AT_START.has(collection)) {
      layer.layout = { ...(layer.layout || {}), visibility: "none" };
    }
  }
  return style;
}

async function networkBounds() {
  try {
    const doc = await getJSON("/ogc/collections/pipes?f=json");
    const bbox = doc.extent && doc.extent.spatial && doc.extent.spatial.bbox && doc.extent.spatial.bbox[0];
    if (bbox && bbox.length >= 4 && Number.isFinite(bbox[0])) {
      return bbox.length === 6 ? [[bbox[0], bbox[1]], [bbox[3], bbox[4]]] : [[bbox[0], bbox[1]], [bbox[2], bbox[3]]];
    }
  } catch { /* fall back to the style's centre */ }
  return null;
}

const collectionTitles = new Map();

async function loadCollectionTitles() {
  try {
    const doc = await getJSON("/ogc/collections?f=json");
    for (const c of doc.collections || []) collectionTitles.set(c.id, c.title || c.id);
  } catch { /* ids will do */ }
}

/** The collection's title in the current language. */
export function collectionTitle(id) {
  return bilingual(collectionTitles.get(id) || id);
}

/** Style layers grouped by collection, in drawing order: [[collection, [layer, …]], …]. */
function layersByCollection(map) {
  const groups = new Map();
  for (const layer of map.getStyle().layers) {
    const collection = layer.metadata && layer.metadata["qiwang:collection"];
    if (!collection) continue;
    if (!groups.has(collection)) groups.set(collection, []);
    groups.get(collection).push(layer);
  }
  return [...groups.entries()];
}

function swatch(layer) {
  const paint = layer.paint || {};
  const color = (value) => (typeof value === "string" ? value : "#888");
  if (layer.type === "line") {
    const dashed = paint["line-dasharray"] ? " dashed" : "";
    return `<span class="swatch line${dashed}" style="border-color:${color(paint["line-color"])}"></span>`;
  }
  if (layer.type === "fill") {
    return `<span class="swatch fill" style="background:${color(paint["fill-color"])};border-color:${color(paint["fill-outline-color"] || paint["fill-color"])}"></span>`;
  }
  if (layer.type === "symbol") {
    const layout = layer.layout || {};
    const halo = paint["text-halo-width"] ? `-webkit-text-stroke:${Math.min(paint["text-halo-width"], 1.5)}px ${color(paint["text-halo-color"])};` : "";
    return `<span class="swatch glyph" style="color:${color(paint["text-color"])};font-size:${Math.min(layout["text-size"] || 14, 18)}px;${halo}">${escapeHtml(layout["text-field"])}</span>`;
  }
  const fill = paint["circle-opacity"] === 0 ? "transparent" : color(paint["circle-color"]);
  return `<span class="swatch circle" style="background:${fill};border-color:${color(paint["circle-stroke-color"] || paint["circle-color"])}"></span>`;
}

/** The layer switcher with a legend per collection, top-most collection first. */
function renderLayerList(map) {
  const list = document.getElementById("layer-list");
  const groups = layersByCollection(map).reverse();
  list.innerHTML = groups.map(([collection, layers]) => {
    const visible = layers.some((layer) => map.getLayoutProperty(layer.id, "visibility") !== "none");
    // One legend row per rule: a polygon rule has a fill and an outline layer with the same title.
    const rules = [];
    const seen = new Set();
    for (const layer of layers) {
      const title = layer.metadata["qiwang:title"];
      if (!title || seen.has(title)) continue; // a label layer is switched with its collection, no legend row
      seen.add(title);
      rules.push(`<li data-layer="${escapeHtml(layer.id)}">${swatch(layer)}${escapeHtml(bilingual(title))}</li>`);
    }
    return `<details class="layer" data-collection="${collection}">
      <summary><label><input type="checkbox" class="layer-toggle" data-collection="${collection}"${visible ? " checked" : ""}>
        ${escapeHtml(collectionTitle(collection))}</label></summary>
      <ul class="legend">${rules.join("")}</ul></details>`;
  }).join("");
}

/** Show or hide every style layer of a collection. */
export function setCollectionVisible(map, collection, visible) {
  for (const [id, layers] of layersByCollection(map)) {
    if (id !== collection) continue;
    for (const layer of layers) map.setLayoutProperty(layer.id, "visibility", visible ? "visible" : "none");
  }
  const box = document.querySelector(`.layer-toggle[data-collection="${collection}"]`);
  if (box) box.checked = visible;
}

// --- highlight, fly-to -----------------------------------------------------------------------------

function geometryBounds(geometry) {
  const bounds = new maplibregl.LngLatBounds();
  const walk = (coords) => {
    if (typeof coords[0] === "number") bounds.extend([coords[0], coords[1]]);
    else coords.forEach(walk);
  };
  walk(geometry.coordinates);
  return bounds;
}

/** Fly to a GeoJSON geometry (CRS84) and outline it. */
export function flyToFeature(map, feature, { zoom = 17 } = {}) {
  if (!feature || !feature.geometry) return;
  map.getSource("qiwang-highlight").setData({ type: "FeatureCollection", features: [feature] });
  const bounds = geometryBounds(feature.geometry);
  const ne = bounds.getNorthEast();
  const sw = bounds.getSouthWest();
  if (ne.lng - sw.lng < 1e-4 && ne.lat - sw.lat < 1e-4) {
    map.flyTo({ center: bounds.getCenter(), zoom: Math.max(map.getZoom(), zoom), essential: true });
  } else {
    map.fitBounds(bounds, { padding: 80, maxZoom: zoom, essential: true });
  }
}

/** Find a feature by code in a collection and fly to it; resolves to the feature or null. */
export async function flyToCode(map, collection, code) {
  const found = await items(collection, { filter: `code = ${cqlString(code)}`, limit: 1 });
  const feature = found.features && found.features[0];
  if (feature) {
    feature.properties = { ...(feature.properties || {}), _collection: collection };
    flyToFeature(map, feature);
  }
  return feature || null;
}

// --- attributes --------------------------------------------------------------------------------------

let popup = null;

function formatValue(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** The attribute popup of a feature of `collection`, column titles from the queryables. */
export async function showAttributes(map, collection, properties, lngLat) {
  const titles = await queryables(collection);
  const rows = Object.entries(properties)
    .filter(([key]) => !key.startsWith("_"))
    .map(([key, value]) => {
      const title = titles[key] && titles[key].title;
      const label = language() === "zh" && title ? title : key;
      return `<tr data-property="${escapeHtml(key)}"><th>${escapeHtml(label)}</th><td>${escapeHtml(formatValue(value))}</td></tr>`;
    }).join("");
  const html = `<div class="attributes" data-collection="${escapeHtml(collection)}" data-code="${escapeHtml(properties.code || "")}">
    <h3>${escapeHtml(collectionTitle(collection))} ${escapeHtml(properties.code || "")}</h3>
    <table>${rows}</table></div>`;
  if (popup) popup.remove();
  popup = new maplibregl.Popup({ maxWidth: "360px", className: "qiwang-popup" }).setLngLat(lngLat).setHTML(html).addTo(map);
}

function featureAtClick(map, point) {
  const box = [[point.x - 4, point.y - 4], [point.x + 4, point.y + 4]];
  const features = map.queryRenderedFeatures(box).filter((f) => f.layer.metadata && f.layer.metadata["qiwang:collection"]);
  // Points before lines before polygons: the smallest thing under the cursor is what was meant.
  const rank = (f) => (f.layer.metadata["qiwang:label"] ? 3 : { circle: 0, symbol: 0, line: 1, fill: 2 }[f.layer.type] ?? 3);
  features.sort((a, b) => rank(a) - rank(b));
  return features[0] || null;
}

// --- search ------------------------------------------------------------------------------------------

async function search(map, text) {
  const list = document.getElementById("search-results");
  const query = text.trim();
  if (!query) { list.hidden = true; return []; }
  const like = cqlString(`%${query}%`);
  const tasks = Object.entries(SEARCH_COLUMNS).map(async ([collection, columns]) => {
    const filter = [`code = ${cqlString(query)}`, `code LIKE ${cqlString(`${query}%`)}`,
      ...columns.map((column) => `${column} LIKE ${like}`)].join(" OR ");
    try {
      const found = await items(collection, { filter, limit: SEARCH_LIMIT });
      return (found.features || []).map((f) => ({ collection, feature: f }));
    } catch {
      return [];
    }
  });
  const results = (await Promise.all(tasks)).flat();
  const exact = results.filter((r) => String(r.feature.properties.code).toLowerCase() === query.toLowerCase());
  if (exact.length === 1) {
    list.hidden = true;
    pick(map, exact[0]);
    return results;
  }
  list.innerHTML = results.length
    ? results.map((r, k) => {
      const p = r.feature.properties;
      const label = p.name || p.address || p.road_name || p.title || p.location || "";
      return `<li data-result="${k}" data-collection="${r.collection}" data-code="${escapeHtml(p.code)}">
        <b>${escapeHtml(p.code)}</b> <span class="muted">${escapeHtml(collectionTitle(r.collection))}</span> ${escapeHtml(label)}</li>`;
    }).join("")
    : `<li class="muted">${escapeHtml(t("search_none"))}</li>`;
  list.hidden = false;
  list.onclick = (event) => {
    const li = event.target.closest("li[data-result]");
    if (!li) return;
    list.hidden = true;
    pick(map, results[Number(li.dataset.result)]);
  };
  return results;
}

function pick(map, { collection, feature }) {
  flyToFeature(map, feature);
  const geometry = feature.geometry;
  const at = geometry.type === "Point" ? geometry.coordinates : geometryBounds(geometry).getCenter().toArray();
  showAttributes(map, collection, feature.properties, at.slice(0, 2));
}

// --- tools and tabs ----------------------------------------------------------------------------------

export function showPanel(name) {
  document.querySelectorAll(".panel").forEach((panel) => { panel.hidden = panel.id !== `panel-${name}`; });
  document.querySelectorAll(".tab").forEach((tab) => tab.classList.toggle("active", tab.dataset.panel === name));
}

export function setTool(name) {
  document.body.dataset.tool = name;
  document.querySelectorAll(".tool").forEach((b) => b.classList.toggle("active", b.dataset.tool === name));
  if (name === "burst") showPanel("burst");
  if (name === "radius") showPanel("radius");
  const canvas = window.qiwangMap && window.qiwangMap.getCanvas();
  if (canvas) canvas.style.cursor = name === "identify" ? "" : "crosshair";
}

// --- start -------------------------------------------------------------------------------------------

/** Can this browser draw WebGL at all? (Old office PCs, headless browsers without a software GL.) */
function webglSupported() {
  try {
    const canvas = document.createElement("canvas");
    return Boolean(canvas.getContext("webgl2") || canvas.getContext("webgl"));
  } catch {
    return false;
  }
}

/** Show why there is no map, in place of the map, in the page's language (window.qiwangFailed: the reason). */
export function showMapFailure(key, detail = "") {
  const text = document.getElementById("map-message-text");
  text.dataset.i18n = key;
  text.textContent = t(key);
  document.getElementById("map-message-detail").textContent = detail;
  const box = document.getElementById("map-message");
  box.dataset.reason = key;
  box.hidden = false;
  document.body.dataset.mapFailure = key;
  window.qiwangFailed = key;
}

/** Who is signed in, in the top bar, with the logout button (its form carries the CSRF token). */
function showAccount(session) {
  const name = document.getElementById("account-name");
  name.textContent = session.display_name === session.name ? session.name : `${session.display_name} (${session.name})`;
  name.title = `${session.roles.join(", ")} · ${session.enterprise_code || session.admin_code}`;
  document.getElementById("logout-csrf").value = session.csrf_token || "";
  document.body.dataset.roles = session.roles.join(" ");
}

async function start() {
  setLanguage(initialLanguage());
  // Before the map: the language switch must work on the failure message too.
  document.getElementById("lang-toggle").addEventListener("click", () => setLanguage(language() === "zh" ? "en" : "zh"));
  if (!webglSupported()) {
    showMapFailure("no_webgl");
    return;
  }
  performance.mark("qiwang:start");
  let style;
  let bounds;
  let session;
  try {
    [style, bounds, , session] = await Promise.all([loadStyle(), networkBounds(), loadCollectionTitles(), signedIn()]);
  } catch (err) {
    showMapFailure("style_failed", `/styles/maplibre.json: ${err.message}`);
    return;
  }
  performance.mark("qiwang:style");
  addAnalysisLayers(style);
  let map;
  try {
    map = new maplibregl.Map({
      container: "map",
      style,
      bounds: bounds || undefined,
      fitBoundsOptions: { padding: 20 },
      center: bounds ? undefined : style.center,
      zoom: bounds ? undefined : style.zoom,
      attributionControl: { compact: true },
      canvasContextAttributes: { preserveDrawingBuffer: true }, // the print snapshot reads the canvas
    });
  } catch (err) {
    // MapLibre throws when it gets no WebGL context even though a test canvas did (e.g. blocklisted GPU).
    showMapFailure("no_webgl", err.message);
    return;
  }
  let loaded = false;
  // A style failure before the first load leaves no map to show, so say so in its place; a tile or
  // source that failed gets a message in the status line and the map stays usable.
  map.on("error", (event) => {
    const message = (event.error && event.error.message) || String(event.error || "");
    if (!loaded && !event.sourceId && !event.tile) showMapFailure("style_failed", message);
    else status(`${t("map_error")}: ${message}`, { error: true });
  });
  window.qiwangMap = map;
  map.addControl(new maplibregl.NavigationControl(), "top-right");
  map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-right");

  await new Promise((resolve) => map.once("load", resolve));
  loaded = true;
  performance.mark("qiwang:load");
  renderLayerList(map);
  analysisLegend();

  showAccount(session);
  const context = { map, status, flyToFeature, flyToCode, showAttributes, setTool, showPanel, escapeHtml, collectionTitle,
                    roles: session.roles };
  const burst = setupBurst(context);
  const radius = setupRadius(context);
  const alarms = setupAlarms(context);
  window.qiwang = { map, burst, radius, alarms, setCollectionVisible: (c, v) => setCollectionVisible(map, c, v), search: (q) => search(map, q) };

  document.getElementById("layer-list").addEventListener("change", (event) => {
    const box = event.target.closest(".layer-toggle");
    if (box) setCollectionVisible(map, box.dataset.collection, box.checked);
  });
  document.getElementById("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    search(map, document.getElementById("search-input").value).catch((err) => status(`${t("error")}: ${err.message}`, { error: true }));
  });
  document.getElementById("tabs").addEventListener("click", (event) => {
    const tab = event.target.closest(".tab");
    if (tab) showPanel(tab.dataset.panel);
  });
  document.getElementById("tools").addEventListener("click", (event) => {
    const tool = event.target.closest(".tool");
    if (tool) setTool(tool.dataset.tool);
  });
  onLanguageChange(() => { renderLayerList(map); analysisLegend(); });

  map.on("click", (event) => {
    const tool = document.body.dataset.tool;
    if (tool === "burst") { burst.atClick(event); return; }
    if (tool === "radius") { radius.atClick(event); return; }
    const feature = featureAtClick(map, event.point);
    if (feature) showAttributes(map, feature.layer.metadata["qiwang:collection"], feature.properties, event.lngLat);
  });
  map.on("mousemove", (event) => {
    if (document.body.dataset.tool !== "identify") return;
    map.getCanvas().style.cursor = featureAtClick(map, event.point) ? "pointer" : "";
  });

  setTool("identify");
  showPanel("layers");
  await alarms.refresh(); // the live alarm points belong to the first picture: 'ready' waits for them
  // 'idle': every tile of the view loaded and drawn (the repaint makes it fire when already idle).
  map.once("idle", () => {
    window.qiwangReadyAt = performance.now(); // ms since navigation start: the time to first render
    document.body.dataset.ready = "true";
    window.qiwangReady = true;
  });
  map.triggerRepaint();
}

start().catch((err) => status(`${t("error")}: ${err.message}`, { error: true }));
