"""The API's documentation page (Swagger UI at /api/docs), from files in a Python package.

The Swagger UI script, style sheet and icon come from the `fastapi-offline`
wheel and are served by the daemon itself under /docs-assets: the page works
on a cluster with no way out, and no third-party script runs on a page that
holds the API token. The script that starts Swagger UI is a file of the GUI
(/static/api-docs.js), not inline, so that the page keeps to the daemon's
Content-Security-Policy (api/headers.py: scripts from the daemon's files only);
it reads the OpenAPI document's URL from the page. The online validator badge
is off (it would call out).
"""

from __future__ import annotations

import html
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs-assets"
STARTER_URL = "/static/api-docs.js"  # in ipkeeper/web/static, served by create_app

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
  <link rel="icon" href="{assets}/favicon.png">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script src="{starter}"></script>
</body>
</html>
"""


def docs_page(title: str, openapi_url: str) -> str:
    """The Swagger UI page: local files only, no inline script or style."""
    return PAGE.format(
        title=html.escape(title),
        assets=ASSETS_URL,
        openapi_url=html.escape(openapi_url, quote=True),
        starter=STARTER_URL,
    )


def add_docs(app: FastAPI, path: str = "/api/docs") -> None:
    """Serve Swagger UI for `app`'s OpenAPI document at `path`, with local assets only."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    page = docs_page(f"{app.title} API", app.openapi_url or "/openapi.json")

    @app.get(path, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        """Swagger UI, reading the OpenAPI document of this daemon."""
        return HTMLResponse(page)
