"""The dashboard page without a browser: `/` and the assets it names ship with the package,
are served with the right types, and hold nothing a strict Content-Security-Policy or an
offline call center would refuse."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cdrlog.service.settings import Settings
from cdrlog.web import dashboard
from cdrlog.web.app import create_app

STATIC = dashboard.static_directory()
CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".svg": ("image/svg+xml",),
    ".png": ("image/png",),
}
MODULE_IMPORT = re.compile(r"""^\s*(?:import|export)\b[^;]*?\bfrom\s+["']([^"']+)["']""", re.M)
TEST_ID_IN_JS = re.compile(r"""byTestId\("([\w-]+)"\)|data-testid="([\w-]+)"\]""")


class PageParts(HTMLParser):
    """What index.html loads and anything inline in it."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, dict[str, str]] = {}
        self.assets: list[str] = []
        self.module_scripts: list[str] = []
        self.inline_scripts: list[str] = []
        self.inline_styles: list[str] = []
        self.handlers: list[str] = []
        self.test_ids: set[str] = set()
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        for name in ("src", "href"):
            if name in values and tag in {"script", "link", "img"}:
                self.assets.append(values[name])
        if tag == "script" and values.get("type") == "module":
            self.module_scripts.append(values["src"])
        self._in_script = tag == "script"
        if tag == "style":
            self.inline_styles.append("<style> element")
        if "style" in values:
            self.inline_styles.append(f"<{tag} style=...>")
        self.handlers += [f"<{tag} {name}=...>" for name in values if name.startswith("on")]
        if "data-testid" in values:
            self.test_ids.add(values["data-testid"])
        if tag == "input" and "id" in values:
            self.inputs[values["id"]] = values

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data.strip()[:80])


def with_dashboard(app: FastAPI) -> FastAPI:
    """The app with the dashboard, whether or not `create_app` includes it yet."""
    paths = {getattr(route, "path", None) for route in app.routes}
    if "/" not in paths:
        app.include_router(dashboard.router)
    if "/static" not in paths:
        dashboard.mount_static(app)
    return app


@pytest.fixture
def page_client(sqlite_url: str) -> Iterator[TestClient]:
    with TestClient(with_dashboard(create_app(Settings(database_url=sqlite_url)))) as client:
        yield client


@pytest.fixture
def page(page_client: TestClient) -> PageParts:
    parts = PageParts()
    parts.feed(page_client.get("/").text)
    return parts


def test_the_page_is_html_with_a_strict_content_security_policy(page_client: TestClient) -> None:
    answer = page_client.get("/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert page_client.head("/").status_code == 200


def test_the_page_is_not_in_the_api_description(page_client: TestClient) -> None:
    assert "/" not in page_client.get("/openapi.json").json()["paths"]


def test_every_asset_is_local_and_served_with_its_type(
    page_client: TestClient, page: PageParts
) -> None:
    assert page.assets, "index.html names no asset"

    def read(url: str) -> str:
        text: str = page_client.get(url).text
        return text

    for url in page.assets + modules_imported(read, page.module_scripts):
        assert url.startswith("/static/"), url
        answer = page_client.get(url)
        assert answer.status_code == 200, url
        assert answer.headers["content-type"].startswith(CONTENT_TYPES[Path(url).suffix]), url


def modules_imported(read: Callable[[str], str], roots: list[str]) -> list[str]:
    """Every module reached from the page's module scripts by relative imports."""
    seen: list[str] = []
    pending = list(roots)
    while pending:
        url = pending.pop()
        for target in MODULE_IMPORT.findall(read(url)):
            assert target.startswith("./"), f"{url} imports {target}: only ./ modules ship"
            found = url.rsplit("/", 1)[0] + target[1:]
            if found not in seen:
                seen.append(found)
                pending.append(found)
    return seen


def read_packaged(url: str) -> str:
    return (STATIC / url.removeprefix("/static/")).read_text(encoding="utf-8")


def dashboard_files() -> list[Path]:
    """The page and the code and styles it loads; not the vendored library (which keeps
    its upstream banner) nor other pages' assets sharing /static."""
    parts = PageParts()
    parts.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    urls = parts.assets + modules_imported(read_packaged, parts.module_scripts)
    own = [url for url in urls if url.endswith((".js", ".css")) and "/vendor/" not in url]
    return [STATIC / "index.html"] + [STATIC / url.removeprefix("/static/") for url in own]


OWN_FILES = dashboard_files()


@pytest.mark.parametrize("path", OWN_FILES, ids=lambda path: path.name)
def test_no_file_of_ours_names_a_remote_address(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"https?://", text), "the dashboard must work without internet"


def test_nothing_runs_or_styles_inline(page: PageParts) -> None:
    assert page.inline_scripts == []
    assert page.inline_styles == []
    assert page.handlers == []


def test_the_chart_library_ships_with_its_license(page_client: TestClient) -> None:
    vendor = STATIC / "vendor"
    assert (vendor / "chart.umd.min.js").is_file()
    license_text = page_client.get("/static/vendor/chart.js-LICENSE.md").text
    assert "MIT License" in license_text


def test_every_test_id_the_scripts_use_is_on_the_page(page: PageParts) -> None:
    used: set[str] = set()
    for path in OWN_FILES:
        if path.suffix == ".js":
            for match in TEST_ID_IN_JS.finditer(path.read_text(encoding="utf-8")):
                used.add(match.group(1) or match.group(2))
    assert used, "the scripts look up no element by test id"
    assert used <= page.test_ids, f"missing from index.html: {sorted(used - page.test_ids)}"


def test_the_scripts_never_write_markup() -> None:
    for path in OWN_FILES:
        if path.suffix == ".js":
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"\b(innerHTML|outerHTML|insertAdjacentHTML)\b", text), path.name
            assert "document.write" not in text, path.name


def test_the_sign_in_field_hides_the_token_and_cannot_put_it_in_an_address(
    page: PageParts,
) -> None:
    field = page.inputs["signin-token"]
    assert field["type"] == "password"
    assert field.get("autocomplete") == "off"
    # Without a name, even a form submitted without the script (a GET to the page
    # itself) carries no token into the address bar, the history or an access log.
    assert "name" not in field
