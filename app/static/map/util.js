// Small helpers shared by the map's modules.

export function escapeHtml(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

/** Offer `text` as a file download (a blob: URL, nothing leaves the browser). */
export function download(filename, text, type = "application/json") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function featureCollection(features = []) {
  return { type: "FeatureCollection", features };
}

export function formatNumber(value, digits = 0) {
  return Number(value ?? 0).toLocaleString(undefined, { maximumFractionDigits: digits });
}
