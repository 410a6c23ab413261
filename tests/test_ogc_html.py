"""The OGC API's HTML pages in Debian's Chromium, offline: every asset from this server, none missing.

pygeoapi 0.21's own templates load Bootstrap, Leaflet and Swagger UI from CDNs and its static files
from /ogc/static/, which 404'd: on a network without internet the pages were blank or unstyled.
Each page here is opened with every request routed: anything not addressed to the test server is
aborted and recorded, and every response status is recorded.

The pages need an account (issue 18): the browser sends the city regulator's token with every
request; the static files need none, and a browser that has not signed in is sent to the login page.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from browser_support import Watched, watch

from app.ogc.html import column_title, static_file, value_labels


@pytest.fixture
def visit(browser, live_server, http: requests.Session) -> Iterator[Watched]:
    """A page of a browser signed in as the city's regulator (the token on every request)."""
    with watch(browser, live_server.url, viewport={"width": 1280, "height": 900},
               extra_http_headers={"Authorization": http.headers["Authorization"]}) as seen:
        yield seen


def test_static_files_and_vendored_assets_only() -> None:
    assert static_file("css/default.css") is not None
    assert static_file("vendor/swagger-ui-dist/swagger-ui-bundle.js") is not None
    assert static_file("vendor/leaflet/images/marker-icon.png") is not None
    assert static_file("vendor/swagger-ui-dist/package.json") is None  # only what a browser loads
    assert static_file("vendor/left-pad/index.js") is None
    assert static_file("../templates/_base.html") is None
    assert static_file("vendor/leaflet/../package.json") is None


def test_column_titles_and_value_labels_from_comments() -> None:
    assert column_title("管径 DN (mm)", "diameter_mm") == "管径"
    assert column_title("", "remarks") == "remarks"
    assert value_labels("管道类型 trunk 输气干线/main 干管/branch 支管/yard 庭院管/service 引入管") == {
        "trunk": "输气干线", "main": "干管", "branch": "支管", "yard": "庭院管", "service": "引入管"}
    assert value_labels("使用状态 in_service/idle/abandoned/under_construction/planned") == {}
    assert value_labels("管道材质 dt_pipe_material") == {}


def test_static_paths_answer_and_unknown_ones_404(live_server) -> None:
    """Without an account: the static files are public (the login page uses them too)."""
    css = requests.get(f"{live_server.url}/ogc/static/css/default.css", timeout=30)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    bundle = requests.get(f"{live_server.url}/ogc/static/vendor/bootstrap/bootstrap.min.css", timeout=30)
    assert bundle.status_code == 200 and "Bootstrap" in bundle.text[:300]
    assert requests.get(f"{live_server.url}/ogc/static/vendor/bootstrap/../../package.json",
                        timeout=30).status_code == 404
    assert requests.get(f"{live_server.url}/ogc/static/nothing.css", timeout=30).status_code == 404


def login_return(page) -> str:
    """Where the login page's form sends the browser once signed in (its hidden `next`)."""
    return page.get_attribute("form[action='/login'] input[name=next]", "value")


def test_a_browser_not_signed_in_is_sent_to_the_login_page(browser, live_server) -> None:
    base = live_server.url
    r = requests.get(f"{base}/ogc/collections?f=html", headers={"Accept": "text/html"}, allow_redirects=False,
                     timeout=30)
    assert (r.status_code, r.headers["Location"]) == (303, "/login?next=/ogc/collections%3Ff%3Dhtml")  # quoted
    with watch(browser, base) as seen:   # no credentials
        response = seen.page.goto(f"{base}/ogc/collections/pipes/items?f=html", wait_until="load")
        assert response.status == 200 and response.request.redirected_from.url == \
            f"{base}/ogc/collections/pipes/items?f=html"
        assert seen.page.url == f"{base}/login?next=/ogc/collections/pipes/items%3Ff%3Dhtml"
        assert seen.page.locator("input[type=password]").count() == 1
        assert login_return(seen.page) == "/ogc/collections/pipes/items?f=html"
        assert seen.requests == [f"{base}/ogc/collections/pipes/items?f=html"]  # nothing of the items page
        seen.assert_clean()


def test_the_login_page_returns_to_the_page_with_all_its_parameters(browser, live_server) -> None:
    with watch(browser, live_server.url) as seen:
        seen.page.goto(f"{live_server.url}/ogc/collections/pipes/items?f=html&limit=5", wait_until="load")
        assert login_return(seen.page) == "/ogc/collections/pipes/items?f=html&limit=5"


def test_html_pages_load_everything_from_the_server(visit: Watched, live_server) -> None:
    base = live_server.url
    page = visit.page
    for path in ("/ogc?f=html", "/ogc/collections?f=html", "/ogc/conformance?f=html",
                 "/ogc/collections/pipes?f=html", "/ogc/processes?f=html"):
        response = page.goto(f"{base}{path}", wait_until="load")
        assert response.status == 200, path
        # pygeoapi's own stylesheet and the vendored Bootstrap loaded
        assert page.evaluate("[...document.styleSheets].some(s => (s.href || '').endsWith('/static/css/default.css'))")
        assert page.evaluate("[...document.styleSheets].some(s => (s.href || '')"
                             ".endsWith('/vendor/bootstrap/bootstrap.min.css') && s.cssRules.length > 100)")
    # the collection page draws its extent with the vendored Leaflet
    page.goto(f"{base}/ogc/collections/pipes?f=html", wait_until="load")
    assert page.evaluate("typeof L === 'object' && L.version") == "1.9.4"
    visit.assert_clean(responses=True)


def test_item_tables_show_chinese_column_names_and_labels(visit: Watched, live_server,
                                                          http: requests.Session) -> None:
    base = live_server.url
    page = visit.page
    params: dict[str, str | int] = {"filter": "pressure_class = 1 AND pipe_type = 'main'", "limit": 1}
    feature = http.get(f"{base}/ogc/collections/pipes/items", timeout=30, params=params).json()["features"][0]
    code = feature["properties"]["code"]
    page.goto(f"{base}/ogc/collections/pipes/items?f=html&limit=5", wait_until="load")
    page.wait_for_selector("#items-map .leaflet-interactive")  # the features on the vendored Leaflet map
    headers = page.eval_on_selector_all(
        "th[data-property]", "els => Object.fromEntries(els.map(e => [e.dataset.property, e.textContent.trim()]))")
    assert headers["pressure_class"] == "压力级制"
    assert headers["material"] == "管道材质"
    assert headers["pipe_type"] == "管道类型"
    assert headers["diameter_mm"] == "管径"
    assert page.locator("tbody tr").count() == 5

    page.goto(f"{base}/ogc/collections/pipes/items/{code}?f=html", wait_until="load")
    row = "tr[data-property='{}'] td:nth-child({})"
    assert page.inner_text(row.format("pressure_class", 1)) == "压力级制"
    assert page.inner_text(row.format("pressure_class", 2)).split() == ["1", "中压"]
    assert page.inner_text(row.format("pipe_type", 2)).split() == ["main", "干管"]
    assert page.inner_text(row.format("material", 1)) == "管道材质"
    visit.assert_clean(responses=True)


def open_swagger_ui(visit: Watched, url: str) -> None:
    response = visit.page.goto(url, wait_until="load")
    assert response.status == 200
    visit.page.wait_for_selector(".swagger-ui .info .title")


def test_swagger_ui_renders_offline(visit: Watched, live_server) -> None:
    page = visit.page
    for ui in ("", "&ui=redoc"):  # ReDoc would come from a CDN: it shows the vendored Swagger UI too
        open_swagger_ui(visit, f"{live_server.url}/ogc/openapi?f=html{ui}")
        assert "气网 Qiwang OGC API" in page.inner_text(".swagger-ui .info .title")
        page.wait_for_selector(".swagger-ui .opblock-tag[data-tag='pipes']")
        paths = page.eval_on_selector_all(".swagger-ui .opblock-summary-path", "els => els.map(e => e.textContent)")
        assert paths[:5] == ["/", "/openapi", "/conformance", "/collections", "/processes"]
        assert page.is_visible(".swagger-ui .models")  # the schemas section: the whole page was laid out
    visit.assert_clean(responses=True)


def test_swagger_ui_draws_every_tag_and_operation(visit: Watched, live_server, http: requests.Session) -> None:
    """The OpenAPI document declares exactly the tags its operations use (pygeoapi's own list
    named coverages, EDR, records … and left the processes undeclared), and Swagger UI lays out
    every one of them with all their operations."""
    doc = http.get(f"{live_server.url}/ogc/openapi?f=json", timeout=60).json()
    used = list(dict.fromkeys(tag for path in doc["paths"].values() for op in path.values() for tag in op["tags"]))
    assert [t["name"] for t in doc["tags"]] == used
    assert {"coverages", "edr", "records", "stac", "maps"}.isdisjoint(used) and "burst-analysis" in used
    operations = sum(len(path) for path in doc["paths"].values())
    assert operations > 100 and not any("options" in path for path in doc["paths"].values())
    open_swagger_ui(visit, f"{live_server.url}/ogc/openapi?f=html")
    page = visit.page
    page.wait_for_function("n => document.querySelectorAll('.swagger-ui .opblock-tag').length === n",
                           arg=len(used), timeout=10_000)
    drawn = page.eval_on_selector_all(".swagger-ui .opblock-tag", "els => els.map(e => e.dataset.tag)")
    assert drawn == used
    page.wait_for_function("n => document.querySelectorAll('.swagger-ui .opblock').length === n",
                           arg=operations, timeout=10_000)


def test_collection_descriptions_read_as_sentences(live_server, http: requests.Session) -> None:
    doc = http.get(f"{live_server.url}/ogc/collections/pipes?f=json", timeout=30).json()
    assert doc["description"] == "管道数字化档案 (辽宁智慧燃气建设手册 附录A.1 第4项)"
    html = http.get(f"{live_server.url}/ogc/collections?f=html", timeout=30).text
    assert "000 appendix" not in html
