"""The dispatcher web map (/map) in Debian's Chromium, driven by Playwright, on the demo city.

Every request the page makes is routed: anything not addressed to the test server is aborted and
recorded (the map must work with no network). Console errors and page errors fail the tests.
The map is used as a dispatcher of enterprise A (a Bearer token in every request the browser
makes); the alarm steps are taken after signing in on the login page (session cookie + CSRF).
The burst, alarm and legend tests write docs/map-burst.png, docs/map-alarms.png and docs/map-legend.png
(shown in the README).
"""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from browser_support import Watched, watch
from signed_in import ensure_account

from app.map import basemap_config
from core.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "map-burst.png"
ALARMS_SCREENSHOT = ROOT / "docs" / "map-alarms.png"
LEGEND_SCREENSHOT = ROOT / "docs" / "map-legend.png"
VIEWPORT = {"width": 1400, "height": 900}
# What the tests ask the API directly: as the same account as the page, so that both see one scope.
HTTP = requests.Session()


class MapServer:
    """The app with the map blueprint on a free port (used only while app.web does not mount it)."""

    def __init__(self, database_url: str, jobs_dir: Path) -> None:
        import waitress

        from app.map import map_blueprint
        from app.web import create_app

        holder: dict = {}
        self.server = waitress.create_server(lambda env, start: holder["app"](env, start),
                                             host="127.0.0.1", port=0, threads=6)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        app = create_app(database_url, self.url, jobs_dir)
        if "map" not in app.blueprints:
            app.register_blueprint(map_blueprint)
        holder["app"] = app
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.close()


@pytest.fixture(scope="module")
def server(live_server, db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """live_server when the app already serves /map, else the same app with the map blueprint added."""
    if requests.get(f"{live_server.url}/map", timeout=30).status_code == 401:   # served, behind the login
        yield live_server
        return
    own = MapServer(db_url, tmp_path_factory.mktemp("map_jobs"))
    yield own
    own.close()


@pytest.fixture(scope="module")
def map_user(users: dict) -> Any:
    """The map's account: enterprise A's dispatcher (HTTP signs the tests' own requests as it)."""
    account = users["a_dispatcher"]
    HTTP.headers.update(account.headers)
    return account


@pytest.fixture
def watched(browser, server, map_user) -> Iterator[Watched]:
    with watch(browser, server.url, viewport=VIEWPORT, accept_downloads=True,
               extra_http_headers=map_user.headers) as seen:
        yield seen


@pytest.fixture
def signed_out(browser, server) -> Iterator[Watched]:
    """A browser with no credentials of its own: it signs in on the login page."""
    with watch(browser, server.url, viewport=VIEWPORT) as seen:
        yield seen


# Move the map and resolve once it is idle (every tile of the new view loaded and drawn).
JUMP_AND_IDLE = """([center, zoom]) => new Promise(resolve => {
    const map = window.qiwangMap;
    map.once('idle', () => resolve(true));
    map.jumpTo({center, zoom});
    map.triggerRepaint();
})"""


def open_map(w: Watched, base: str) -> Any:
    page = w.page
    page.goto(f"{base}/map")
    page.wait_for_function("window.qiwangReady === true")
    return page


def api_burst(base: str, pipe: str, failed: list[str] | None = None) -> dict:
    inputs: dict = {"pipe": pipe}
    if failed:
        inputs["failed_valves"] = failed
    response = HTTP.post(f"{base}/ogc/processes/burst-analysis/execution", json={"inputs": inputs}, timeout=60)
    response.raise_for_status()
    return response.json()


def items(base: str, collection: str, **params: Any) -> list[dict]:
    response = HTTP.get(f"{base}/ogc/collections/{collection}/items", params=params, timeout=60)
    response.raise_for_status()
    return response.json()["features"]


def burst_pipe_with_second_ring(base: str) -> tuple[str, dict, str, dict]:
    """A medium-pressure main whose burst closes ≥ 2 valves, the first of which, failing, adds a
    second ring: (pipe code, report, failed valve, report with it failed)."""
    pipes = items(base, "pipes", filter="pressure_class = 1 AND status = 'in_service' AND pipe_type = 'main'",
                  sortby="code", limit=200, properties="code")
    for feature in pipes:
        code = feature["properties"]["code"]
        report = api_burst(base, code)
        valves = [v["code"] for v in report["valves_to_close"] if not v["already_closed"]]
        if len(valves) < 2 or not report["affected_customers"]["count"]:
            continue
        second = api_burst(base, code, [valves[0]])
        if second["second_ring"] and second["second_ring"]["added_valves"]:
            return code, report, valves[0], second
    pytest.fail("no medium-pressure main in the demo city has a second ring")


def midpoint(geometry: dict) -> list[float]:
    """The middle of a LineString's middle segment (on the pipe, away from its valves)."""
    coords = geometry["coordinates"]
    if geometry["type"] == "MultiLineString":
        coords = coords[0]
    k = max(1, len(coords) // 2)
    (x0, y0, *_), (x1, y1, *_) = coords[k - 1], coords[k]
    return [(x0 + x1) / 2, (y0 + y1) / 2]


def listed_valves(page: Any, selector: str = "#burst-valves li[data-valve]") -> list[str]:
    return page.eval_on_selector_all(selector, "els => els.map(e => e.dataset.valve)")


# --- tests -------------------------------------------------------------------------------------------


def test_basemap_config_from_the_settings() -> None:
    assert basemap_config(load_settings({})) is None
    config = basemap_config(load_settings({
        "QIWANG_BASEMAP_URL": "http://t0.example/vec_w/wmts?tk={key}&TILEROW={y}&TILECOL={x}&TILEMATRIX={z}",
        "QIWANG_BASEMAP_KEY": "abc"}))
    assert config == {"url": "http://t0.example/vec_w/wmts?tk=abc&TILEROW={y}&TILECOL={x}&TILEMATRIX={z}",
                      "attribution": ""}


def test_maplibre_is_served_from_node_modules(server, map_user) -> None:
    # the page needs an account; its assets are public (the login page may use them)
    assert requests.get(f"{server.url}/map", timeout=30).status_code == 401
    page = HTTP.get(f"{server.url}/map", timeout=30)
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "unpkg" not in page.text.lower()
    js = requests.get(f"{server.url}/map/vendor/maplibre-gl/maplibre-gl.js", timeout=30)
    assert js.status_code == 200 and "maplibre" in js.text[:2000].lower()
    assert requests.get(f"{server.url}/map/vendor/maplibre-gl/package.json", timeout=30).status_code == 404


def test_landing_page_links_the_map(server, map_user) -> None:
    page = HTTP.get(f"{server.url}/", timeout=30)
    assert page.status_code in (200, 503)  # 503: the database part failed; the links are there anyway
    assert '<a id="map-link" href="/map">打开调度地图 <span class="en">Open the map</span></a>' in page.text
    assert '<a href="/map?lang=en">English</a>' in page.text


# Chromium where WebGL cannot start (no GPU, no SwiftShader): every WebGL context request fails.
NO_WEBGL = """(() => {
    const getContext = HTMLCanvasElement.prototype.getContext;
    HTMLCanvasElement.prototype.getContext = function (type, ...rest) {
        return /webgl/i.test(type) ? null : getContext.call(this, type, ...rest);
    };
})()"""
NO_WEBGL_EN = ("This browser or computer does not support WebGL (or hardware acceleration is turned off), which "
               "the map needs to draw. Use a recent Chrome, Edge or Firefox with hardware acceleration on in the "
               "browser's settings.")
NO_WEBGL_ZH = ("此浏览器或电脑不支持 WebGL (或已关闭硬件加速), 地图需要它来绘制。请使用较新版本的 Chrome、Edge 或 "
               "Firefox, 并在浏览器设置中开启硬件加速。")


def test_map_without_webgl_says_why_in_the_page_language(watched: Watched, server) -> None:
    page = watched.page
    page.add_init_script(NO_WEBGL)
    page.goto(f"{server.url}/map?lang=en")
    page.wait_for_function("window.qiwangFailed === 'no_webgl'")
    assert page.is_visible("#map-message")
    assert page.inner_text("#map-message h2") == "The map cannot be shown"
    assert page.inner_text("#map-message-text") == NO_WEBGL_EN
    assert page.get_attribute("#map-message a", "href") == "/ogc/collections?f=html"
    page.click("#lang-toggle")
    assert page.inner_text("#map-message h2") == "地图无法显示"
    assert page.inner_text("#map-message-text") == NO_WEBGL_ZH
    assert page.evaluate("window.qiwangMap === undefined")
    watched.assert_clean()


def test_map_whose_style_fails_says_so(watched: Watched, server) -> None:
    page = watched.page
    page.route("**/styles/maplibre.json", lambda r: r.fulfill(
        status=503, content_type="application/json", body=json.dumps({"description": "style store offline"})))
    page.goto(f"{server.url}/map")
    page.wait_for_function("window.qiwangFailed === 'style_failed'")
    assert page.inner_text("#map-message h2") == "地图无法显示"
    assert page.inner_text("#map-message-text") == "地图样式无法加载, 请确认服务器正在运行后刷新页面。"
    assert page.inner_text("#map-message-detail") == "/styles/maplibre.json: style store offline"
    assert watched.outside == []
    # the one console error is Chromium reporting the 503 itself
    assert [e for e in watched.errors if "503" not in e] == []


def test_map_renders_offline_and_switches_layers(watched: Watched, server) -> None:
    page = open_map(watched, server.url)
    assert page.evaluate("window.qiwangMap.loaded() && window.qiwangMap.areTilesLoaded()")
    assert any("/ogc/tiles/WebMercatorQuad/" in url and "pipes" in url for url in watched.requests)
    assert any(url.endswith("/styles/maplibre.json") for url in watched.requests)

    valve_layers = page.evaluate(
        "window.qiwangMap.getStyle().layers"
        ".filter(l => l.metadata && l.metadata['qiwang:collection'] === 'valves').map(l => l.id)")
    assert valve_layers
    visibility = "ids => ids.map(id => window.qiwangMap.getLayoutProperty(id, 'visibility') || 'visible')"
    assert set(page.evaluate(visibility, valve_layers)) == {"visible"}
    page.uncheck(".layer-toggle[data-collection=valves]")
    assert set(page.evaluate(visibility, valve_layers)) == {"none"}
    page.check(".layer-toggle[data-collection=valves]")
    assert set(page.evaluate(visibility, valve_layers)) == {"visible"}
    # a collection hidden at start comes on
    page.check(".layer-toggle[data-collection=nodes]")
    assert page.evaluate("window.qiwangMap.getLayoutProperty('nodes.all', 'visibility')") == "visible"
    # legend rows for every pressure class, Chinese by default, English on demand
    assert page.locator("details[data-collection=pipes] li[data-layer]").count() >= 5
    assert page.inner_text(".tab[data-panel=layers]") == "图层"
    page.click("#lang-toggle")
    assert page.inner_text(".tab[data-panel=layers]") == "Layers"
    assert "Pipes" in page.inner_text("details[data-collection=pipes] summary")
    page.click("#lang-toggle")
    assert page.inner_text(".tab[data-panel=layers]") == "图层"
    page.wait_for_function("window.qiwangMap.loaded()")
    watched.assert_clean()


def test_burst_by_clicking_a_pipe_matches_the_api(watched: Watched, server) -> None:
    base = server.url
    pipe, report, failed, second = burst_pipe_with_second_ring(base)
    geometry = HTTP.get(f"{base}/ogc/collections/pipes/items/{pipe}", timeout=30).json()["geometry"]
    page = open_map(watched, base)

    # zoom to the pipe and click its middle with the burst tool
    page.evaluate(JUMP_AND_IDLE, [midpoint(geometry), 17])
    page.click("#tool-burst")
    x, y = page.evaluate("([c]) => { const p = window.qiwangMap.project(c); return [p.x, p.y]; }", [midpoint(geometry)])
    box = page.locator("#map canvas").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.wait_for_selector("#panel-burst[data-state=done][data-run='1']")

    assert page.get_attribute("#burst-summary", "data-pipe") == pipe
    assert listed_valves(page) == [v["code"] for v in report["valves_to_close"]]
    assert page.inner_text("#burst-customer-count") == str(report["affected_customers"]["count"])
    assert page.inner_text("#burst-isolated-count") == str(len(report["isolated_pipes"]))
    by_type = page.eval_on_selector_all("#burst-customers li[data-type]",
                                        "els => Object.fromEntries(els.map(e => [e.dataset.type, +e.dataset.count]))")
    assert by_type == report["affected_customers"]["by_type"]
    drawn = page.evaluate("window.qiwangMap.querySourceFeatures('burst-valves').map(f => f.properties.code)")
    assert set(drawn) == {v["code"] for v in report["valves_to_close"]}

    # the first valve fails: the second ring
    page.check(f"#burst-valves input.valve-failed[data-valve='{failed}']")
    page.wait_for_selector("#panel-burst[data-state=done][data-run='2']")
    assert listed_valves(page) == [v["code"] for v in second["valves_to_close"]]
    assert listed_valves(page, "#burst-failed-valves li[data-valve]") == [failed]
    ring = second["second_ring"]
    order = [v["code"] for v in second["valves_to_close"]]
    assert listed_valves(page, "#burst-valves li[data-ring='2']") == sorted(ring["added_valves"], key=order.index)
    assert page.get_attribute("#burst-second-ring", "data-added-valves") == ",".join(ring["added_valves"])
    assert page.get_attribute("#burst-second-ring", "data-added-isolated") == str(len(ring["added_isolated_pipes"]))
    assert page.get_attribute("#burst-second-ring", "data-added-customers") == str(ring["added_customers"])

    page.evaluate("() => new Promise(r => { window.qiwangMap.once('idle', r); window.qiwangMap.triggerRepaint(); })")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))

    # export the report as JSON: the same valves
    with page.expect_download() as download:
        page.click("#burst-export-json")
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    exported_valves = [v["code"] for v in json.loads(exported)["valves_to_close"]]
    assert exported_valves == [v["code"] for v in second["valves_to_close"]]

    # save it as a planned incident
    page.click("#burst-save")
    page.wait_for_selector("#burst-incident[data-incident]")
    incident = page.get_attribute("#burst-incident", "data-incident")
    saved = HTTP.get(f"{base}/ogc/collections/incidents/items/{incident}", timeout=30)
    assert saved.status_code == 200 and saved.json()["properties"]["state"] == "planned"

    # the crew route to the burst
    page.click("#burst-route")
    page.wait_for_selector("#burst-route-info .route-info")
    point = second["burst"]["point"]
    expected = HTTP.post(f"{base}/ogc/processes/route/execution",
                             json={"inputs": {"to": point, "crs": "EPSG:4550"}}, timeout=60).json()
    assert page.get_attribute("#burst-route-info .route-info", "data-crew-base") == expected["crew_base"]["code"]
    assert page.evaluate("window.qiwangMap.querySourceFeatures('route-line').length") >= 1
    watched.assert_clean()


def test_search_radius_and_alarm_panel(watched: Watched, server) -> None:
    base = server.url
    page = open_map(watched, base)

    # search by code: flies there and shows the attributes
    valve = items(base, "valves", limit=1, sortby="code")[0]["properties"]["code"]
    page.fill("#search-input", valve)
    page.click("#search-button")
    page.wait_for_selector(f".attributes[data-code='{valve}']")
    assert page.get_attribute(".attributes", "data-collection") == "valves"

    # radius query at the valve
    point = items(base, "valves", filter=f"code = '{valve}'")[0]["geometry"]["coordinates"][:2]
    page.click("#tool-radius")
    page.fill("#radius-input", "150")
    page.evaluate("([c]) => window.qiwang.radius.run(c)", [point])
    page.wait_for_selector("#panel-radius[data-state=done]")
    expected = HTTP.post(f"{base}/ogc/processes/radius-query/execution",
                             json={"inputs": {"point": point, "radius_m": 150, "limit_per_layer": 50}},
                             timeout=60).json()
    listed = page.eval_on_selector_all("#radius-results li[data-code]", "els => els.map(e => e.dataset.code)")
    assert listed == [f["code"] for f in expected["features"]]
    assert valve in listed

    # alarm panel: open alarms and overdue hazards, newest first
    page.click(".tab[data-panel=alarms]")
    page.wait_for_selector("#panel-alarms[data-state=done]")
    today = date.today().isoformat()
    hazards = items(base, "hazards", filter=f"rectify_due_on < DATE('{today}') AND rectified_on IS NULL",
                    sortby="-found_at", limit=200)
    alarms = items(base, "alarms", filter="state <> 'closed'", sortby="-raised_at", limit=200)
    assert hazards, "the demo city has overdue hazards"
    assert page.eval_on_selector_all("#hazard-list li[data-hazard]", "els => els.map(e => e.dataset.hazard)") == [
        h["properties"]["code"] for h in hazards]
    assert page.eval_on_selector_all("#alarm-list li[data-alarm]", "els => els.map(e => e.dataset.alarm)") == [
        a["properties"]["code"] for a in alarms]
    page.click(f"#hazard-list li[data-hazard='{hazards[0]['properties']['code']}'] .zoom")
    page.wait_for_selector(f".attributes[data-code='{hazards[0]['properties']['code']}']")
    watched.assert_clean()


def test_alarm_panel_refreshes_itself_draws_live_alarms_and_takes_each_step(signed_out: Watched, server, db_url,
                                                                          map_user) -> None:
    from telemetry_support import conninfo, devices, raise_alarms

    base, info = server.url, conninfo(db_url)
    sentry = devices(info, limit=44)[-1]            # a sentry the other tests of this database leave alone
    dispatcher = ensure_account(db_url, "map_dispatcher", ("dispatcher",), enterprise=sentry[0])
    # sign in on the login page: the map comes next, with the account's name in the top bar
    page = signed_out.page
    page.goto(f"{base}/map")
    page.wait_for_url(f"{base}/login?next=/map")
    page.fill("input[name=name]", dispatcher.name)
    page.fill("input[name=password]", dispatcher.password)
    page.click("button[type=submit]")
    page.wait_for_function("window.qiwangReady === true")
    assert page.url == f"{base}/map"
    assert page.inner_text("#account-name") == dispatcher.name
    watched = signed_out
    page.click(".tab[data-panel=alarms]")
    page.wait_for_selector("#panel-alarms[data-state=done]")
    page.evaluate("window.qiwang.alarms.autoRefresh(1)")

    # a leak raised after the page loaded appears by itself, listed and drawn on the map
    now = datetime.now(UTC).replace(microsecond=0)
    raise_alarms(info, [(sentry, now - timedelta(seconds=60), {"ch4_lel": 30.0})])
    feature = dispatcher.session().get(f"{base}/ogc/collections/alarms/items", timeout=60, params={
        "filter": f"device_code = '{sentry[2]}' AND state <> 'closed'"}).json()["features"][0]
    code = feature["properties"]["code"]
    li = f"#alarm-list li[data-alarm='{code}']"
    page.wait_for_selector(f"{li}[data-state=raised]")
    live = page.evaluate("window.qiwangMap.getSource('alarms-live').serialize().data.features"
                         ".map(f => [f.properties.code, f.geometry.coordinates.slice(0, 2)])")
    assert [code, feature["geometry"]["coordinates"][:2]] in live

    def state_and_actors() -> tuple[str, list[str]]:
        with psycopg.connect(info) as conn:
            state = conn.execute("SELECT state FROM alarm WHERE code = %s", (code,)).fetchone()[0]
            actors = [a for (a,) in conn.execute("SELECT e.actor FROM alarm_event e JOIN alarm a ON a.id = e.alarm_id "
                                                 "WHERE a.code = %s ORDER BY e.id", (code,))]
        return state, actors

    # each step is the signed-in dispatcher's: sent with the session's CSRF token, recorded as the account
    for action, reached in (("acknowledge", "acknowledged"), ("dispatch", "dispatched"), ("resolve", "resolved")):
        page.click(f"{li} button.step[data-action={action}]")
        page.wait_for_selector(f"{li}[data-state={reached}]")
        assert state_and_actors()[0] == reached
        if action == "acknowledge":         # the README's picture of the panel: next step 派单
            page.evaluate(JUMP_AND_IDLE, [feature["geometry"]["coordinates"][:2], 17])
            page.screenshot(path=str(ALARMS_SCREENSHOT))
    # still leaking: closing is offered but disabled; once the value clears, the next refresh enables it
    assert page.is_disabled(f"{li} button.step[data-action=close]")
    raise_alarms(info, [(sentry, now - timedelta(seconds=30), {"ch4_lel": 1.0})])
    page.wait_for_selector(f"{li} button.step[data-action=close]:not([disabled])")
    page.click(f"{li} button.step[data-action=close]")
    page.wait_for_selector(li, state="detached")      # closed alarms leave the panel and the map
    me = dispatcher.name
    assert state_and_actors() == ("closed", ["ingest", me, me, me, "ingest", me])
    assert code not in page.evaluate("window.qiwangMap.getSource('alarms-live').serialize().data.features"
                                     ".map(f => f.properties.code)")
    watched.assert_clean()


# --- legend and labels ----------------------------------------------------------------------------

# What each legend row shows, read from the page as drawn: (shape, colour as "rgb(r, g, b)").
LEGEND_SWATCHES = """rows => rows.map(li => {
    const sw = li.querySelector('.swatch');
    const css = getComputedStyle(sw);
    let shape, colour;
    if (sw.classList.contains('glyph')) { shape = sw.textContent; colour = css.color; }
    else if (sw.classList.contains('circle')) {
        shape = 'circle';
        colour = css.backgroundColor === 'rgba(0, 0, 0, 0)' ? css.borderTopColor : css.backgroundColor;
    } else if (sw.classList.contains('line')) { shape = 'line ' + css.borderTopStyle; colour = css.borderTopColor; }
    else { shape = 'fill'; colour = css.borderTopColor; }
    return [li.dataset.layer || 'overlay.' + li.dataset.overlay, shape, colour];
})"""


def lab(rgb: str) -> tuple[float, float, float]:
    """CIE L*a*b* (D65) of a CSS "rgb(r, g, b)" colour."""
    def linear(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (linear(float(v)) for v in rgb[rgb.index("(") + 1:rgb.index(")")].split(",")[:3])
    x, y, z = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047, 0.2126 * r + 0.7152 * g + 0.0722 * b, \
        (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883
    f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in (x, y, z)]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def colour_difference(a: str, b: str) -> float:
    """CIE76 ΔE: ~2 is just noticeable; 25 and more, colours nobody confuses on a map."""
    return sum((p - q) ** 2 for p, q in zip(lab(a), lab(b), strict=True)) ** 0.5


# Pairs a dispatcher must never confuse: facilities vs alarm levels, pipes vs analysis overlays.
MUST_DIFFER = [("regulators.cabinet", "sentries.alarm_1"), ("regulators.cabinet", "alarms.alarm_1"),
               ("regulators.station", "alarms.alarm_1"), ("regulators.box", "sentries.pre_alarm"),
               ("crew_bases.all", "sentries.alarm_2"), ("crew_bases.all", "alarms.alarm_2"),
               ("stations.gate", "alarms.alarm_2"), ("stations.regulator", "alarms.alarm_1"),
               ("enterprises.all", "alarms.alarm_2"), ("pipes.sub_high", "overlay.dry")]
# Lines that may share a dash pattern but never a colour.
COLOUR_MUST_DIFFER = [("pipes.high", "overlay.isolated"), ("pipes.extra_high", "overlay.second_ring"),
                      ("pipes.not_in_service", "overlay.dry"), ("overlay.isolated", "overlay.dry")]


def test_legend_tells_facilities_alarms_and_overlays_apart_and_labels_show(watched: Watched, server) -> None:
    base = server.url
    page = watched.page
    page.set_viewport_size({"width": 1400, "height": 1400})
    open_map(watched, base)
    page.evaluate("document.querySelectorAll('details.layer').forEach(d => { d.open = ["
                  "'regulators', 'stations', 'crew_bases', 'sentries', 'alarms', 'pipes']"
                  ".includes(d.dataset.collection) })")
    rows = page.eval_on_selector_all("#layer-list li[data-layer], #analysis-legend li[data-overlay]", LEGEND_SWATCHES)
    swatches = {layer: (shape, colour) for layer, shape, colour in rows}
    assert swatches["regulators.cabinet"] == ("◆", "rgb(92, 107, 192)")
    assert swatches["crew_bases.all"] == ("✚", "rgb(0, 137, 123)")
    assert swatches["alarms.alarm_1"] == ("★", "rgb(251, 140, 0)")
    assert swatches["sentries.alarm_2"] == ("circle", "rgb(229, 57, 53)")
    assert swatches["pipes.sub_high"] == ("line dashed", "rgb(245, 124, 0)")
    assert swatches["overlay.dry"] == ("line dotted", "rgb(0, 191, 165)")
    for a, b in MUST_DIFFER:
        (shape_a, colour_a), (shape_b, colour_b) = swatches[a], swatches[b]
        assert shape_a != shape_b, (a, b, shape_a)
        assert colour_difference(colour_a, colour_b) >= 25, (a, b, colour_a, colour_b)
    for a, b in COLOUR_MUST_DIFFER:
        assert colour_difference(swatches[a][1], swatches[b][1]) >= 25, (a, b, swatches[a], swatches[b])
    # the map draws the same symbols: the style's marker metadata matches the legend
    style = HTTP.get(f"{base}/styles/maplibre.json", timeout=30).json()
    cabinet = next(layer for layer in style["layers"] if layer["id"] == "regulators.cabinet")
    assert (cabinet["type"], cabinet["layout"]["text-field"], cabinet["paint"]["text-color"]) == (
        "symbol", "◆", "#5c6bc0")

    # labels: codes of valves and pipes at z ≥ 17 only, road names, station names
    valve = items(base, "valves", limit=1, sortby="code")[0]
    placed = """([layer]) => [...new Set(window.qiwangMap.queryRenderedFeatures({layers: [layer]})
        .map(f => f.properties[f.layer.metadata['qiwang:label']]))]"""
    page.evaluate(JUMP_AND_IDLE, [valve["geometry"]["coordinates"][:2], 16.5])
    assert page.evaluate(placed, ["valves.label"]) == []
    assert page.evaluate(placed, ["roads.label"]), "road names at z16.5"
    page.evaluate(JUMP_AND_IDLE, [valve["geometry"]["coordinates"][:2], 17.5])
    assert valve["properties"]["code"] in page.evaluate(placed, ["valves.label"])
    codes = page.evaluate(placed, ["pipes.label"])
    assert codes and all(code.startswith("GX") for code in codes), codes
    station = items(base, "stations", limit=1, sortby="code")[0]
    page.evaluate(JUMP_AND_IDLE, [station["geometry"]["coordinates"][:2], 15])
    assert station["properties"]["name"] in page.evaluate(placed, ["stations.label"])
    page.evaluate(JUMP_AND_IDLE, [valve["geometry"]["coordinates"][:2], 17.2])
    LEGEND_SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(LEGEND_SCREENSHOT))
    watched.assert_clean()
