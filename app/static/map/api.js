// Calls to the Qiwang server: OGC API Features items, processes (synchronous), the style, alarm steps.
// Every URL is relative to the page's origin: the map never talks to another host. The page is
// signed in (session cookie or the browser's credentials); state-changing calls carry the
// session's CSRF token.

const OGC = "/ogc";

export class ApiError extends Error {}

async function answer(response) {
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!response.ok) {
    const why = body && (body.description || body.detail || body.title);
    throw new ApiError(why || `${response.status} ${response.statusText}`);
  }
  return body;
}

export async function getJSON(url) {
  return answer(await fetch(url, { headers: { Accept: "application/json" } }));
}

/** Features of a collection: params as an object ({filter, sortby, limit, properties, bbox, …}). */
export async function items(collection, params = {}) {
  const query = new URLSearchParams({ f: "json", ...params });
  return getJSON(`${OGC}/collections/${encodeURIComponent(collection)}/items?${query}`);
}

let sessionPromise = null;

/** Who is signed in: {name, display_name, roles, enterprise_code, admin_code, csrf_token?} (read once). */
export function signedIn() {
  if (!sessionPromise) sessionPromise = getJSON("/api/session");
  return sessionPromise;
}

/** POST a JSON body and return the JSON answer (ApiError with the server's description otherwise). */
export async function postJSON(url, body) {
  const session = await signedIn();
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  if (session.csrf_token) headers["X-CSRF-Token"] = session.csrf_token;
  return answer(await fetch(url, { method: "POST", headers, body: JSON.stringify(body) }));
}

/** Run a process synchronously and return its report (the single JSON output). */
export async function execute(processId, inputs) {
  const body = await postJSON(`${OGC}/processes/${encodeURIComponent(processId)}/execution`, { inputs });
  // A single output may come raw or wrapped as {report: …} depending on the response mode.
  return body && body.report && !body.valves_to_close && !body.features ? body.report : body;
}

const queryableCache = new Map();

/** The JSON Schema properties of a collection (Chinese titles of the columns), cached. */
export async function queryables(collection) {
  if (!queryableCache.has(collection)) {
    queryableCache.set(collection, getJSON(`${OGC}/collections/${encodeURIComponent(collection)}/queryables`)
      .then((doc) => doc.properties || {})
      .catch(() => ({})));
  }
  return queryableCache.get(collection);
}

/** A CQL2 text string literal. */
export function cqlString(value) {
  return `'${String(value).replaceAll("'", "''")}'`;
}
