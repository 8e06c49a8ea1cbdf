"""The API viewer's page keeps to the daemon's Content-Security-Policy: every script is a
file of the daemon (no inline script, style or handler) and no URL leads elsewhere."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from ipkeeper.api.docs import ASSETS, STARTER_URL, docs_page
from ipkeeper.web import STATIC


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        if self.tags and self.tags[-1][0] == "script":
            self.script_text += data.strip()


def test_the_docs_page_has_no_inline_script_and_only_local_urls() -> None:
    page = docs_page('ipkeeper "API"', "/api/v1/openapi.json")
    parsed = Tags()
    parsed.feed(page)
    scripts = [a.get("src") for t, a in parsed.tags if t == "script"]
    assert scripts == ["/docs-assets/swagger-ui-bundle.js", STARTER_URL]
    assert parsed.script_text == ""
    assert not [t for t, _ in parsed.tags if t == "style"]
    assert not [a for _, a in parsed.tags for k in a if k == "style" or k.startswith("on")]
    urls = [v for _, a in parsed.tags for k, v in a.items() if k in ("src", "href") and v]
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls)
    assert 'data-openapi-url="/api/v1/openapi.json"' in page
    assert "ipkeeper &quot;API&quot;" in page


def test_the_files_the_page_names_ship_with_the_package() -> None:
    assert (STATIC / STARTER_URL.removeprefix("/static/")).is_file()
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        assert (ASSETS / name).is_file()
    starter = (STATIC / "api-docs.js").read_text()
    assert "SwaggerUIBundle(" in starter and not re.search(r"https?://", starter)
