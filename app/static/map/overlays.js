// The map's own GeoJSON sources and layers for analysis results, drawn above every style layer:
// the burst (outage area, isolated and dry pipes, valves to close), the radius circle, the crew
// route and the highlighted feature. Their legend sits under the layer switcher.

import { t } from "./i18n.js";
import { escapeHtml, featureCollection } from "./util.js";

// The overlay colours come from styles/palette.yaml through the style's metadata (addAnalysisLayers).
export const COLORS = {};
const PALETTE_KEYS = { second_ring: "secondRing", valve_closed: "valveClosed", valve_failed: "valveFailed" };

const SOURCES = ["burst-outage", "burst-isolated", "burst-dry", "burst-valves", "burst-point",
  "radius-circle", "route-line", "route-points", "qiwang-highlight"];

const analysisLayers = () => [
  { id: "burst-outage-fill", type: "fill", source: "burst-outage",
    paint: { "fill-color": COLORS.outage, "fill-opacity": 0.18 } },
  { id: "burst-outage-line", type: "line", source: "burst-outage",
    paint: { "line-color": COLORS.outage, "line-width": 1.5, "line-dasharray": [3, 2] } },
  { id: "radius-fill", type: "fill", source: "radius-circle",
    paint: { "fill-color": COLORS.radius, "fill-opacity": 0.08 } },
  { id: "radius-line", type: "line", source: "radius-circle",
    paint: { "line-color": COLORS.radius, "line-width": 2, "line-dasharray": [4, 2] } },
  { id: "burst-dry-line", type: "line", source: "burst-dry",
    paint: { "line-color": COLORS.dry, "line-width": 4, "line-dasharray": [0.5, 0.75] } },
  { id: "burst-isolated-line", type: "line", source: "burst-isolated",
    paint: { "line-color": ["case", ["boolean", ["get", "second_ring"], false], COLORS.secondRing, COLORS.isolated],
      "line-width": 5 } },
  { id: "route-line", type: "line", source: "route-line", layout: { "line-cap": "round", "line-join": "round" },
    paint: { "line-color": COLORS.route, "line-width": 5, "line-opacity": 0.85 } },
  { id: "route-points", type: "circle", source: "route-points",
    paint: { "circle-radius": 7, "circle-color": COLORS.route, "circle-stroke-color": "#ffffff", "circle-stroke-width": 2 } },
  { id: "burst-valves-circle", type: "circle", source: "burst-valves",
    layout: { "circle-sort-key": ["case", ["boolean", ["get", "failed"], false], 0, 1] },
    paint: {
      "circle-radius": ["case", ["boolean", ["get", "failed"], false], 11, 7],
      "circle-opacity": ["case", ["boolean", ["get", "failed"], false], 0, 1],
      "circle-color": ["case",
        ["boolean", ["get", "failed"], false], COLORS.valveFailed,
        ["boolean", ["get", "second_ring"], false], COLORS.secondRing,
        ["boolean", ["get", "already_closed"], false], COLORS.valveClosed,
        COLORS.valve],
      "circle-stroke-color": ["case", ["boolean", ["get", "failed"], false], COLORS.isolated, "#ffeb3b"],
      "circle-stroke-width": 3,
    } },
  { id: "burst-point-circle", type: "circle", source: "burst-point",
    paint: { "circle-radius": 9, "circle-color": COLORS.isolated, "circle-stroke-color": "#ffffff", "circle-stroke-width": 3 } },
  { id: "highlight-line", type: "line", source: "qiwang-highlight", filter: ["!=", ["geometry-type"], "Point"],
    paint: { "line-color": COLORS.highlight, "line-width": 8, "line-opacity": 0.6 } },
  { id: "highlight-point", type: "circle", source: "qiwang-highlight", filter: ["==", ["geometry-type"], "Point"],
    paint: { "circle-radius": 12, "circle-color": "rgba(0,0,0,0)", "circle-stroke-color": COLORS.highlight, "circle-stroke-width": 4 } },
];

/** Add the analysis sources and layers to a style document (before the map is made: one load). */
export function addAnalysisLayers(style) {
  const colors = (style.metadata && style.metadata["qiwang:overlays"]) || {};
  for (const [key, color] of Object.entries(colors)) COLORS[PALETTE_KEYS[key] || key] = color;
  for (const id of SOURCES) style.sources[id] = { type: "geojson", data: featureCollection() };
  style.layers.push(...analysisLayers());
}

/** Replace a source's data (a FeatureCollection, a Feature or a geometry; null empties it). */
export function setData(map, source, data) {
  map.getSource(source).setData(data || featureCollection());
}

const legend = () => [
  ["legend_outage", "fill", COLORS.outage],
  ["legend_isolated", "line", COLORS.isolated],
  ["legend_second_ring", "line", COLORS.secondRing],
  ["legend_dry", "line dotted", COLORS.dry],
  ["legend_valve", "circle", COLORS.valve],
  ["legend_route", "line", COLORS.route],
  ["legend_radius", "fill", COLORS.radius],
];

export function analysisLegend() {
  document.getElementById("analysis-legend").innerHTML = legend().map(([key, kind, color]) => {
    const style = kind === "fill" ? `background:${color}33;border-color:${color}` : kind === "circle"
      ? `background:${color};border-color:#ffeb3b` : `border-color:${color}`;
    return `<li data-overlay="${key.replace("legend_", "")}"><span class="swatch ${kind}" style="${style}"></span>${escapeHtml(t(key))}</li>`;
  }).join("");
}
