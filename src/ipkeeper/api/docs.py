"""The API's documentation page (Swagger UI at /api/docs), from files in a Python package.

The Swagger UI script, style sheet and icon come from the `fastapi-offline`
wheel and are served by the daemon itself under /docs-assets: the page works
on a cluster with no way out, and no third-party script runs on a page that
holds the API token. The online validator badge is off (it would call out).
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs-assets"


def add_docs(app: FastAPI, path: str = "/api/docs") -> None:
    """Serve Swagger UI for `app`'s OpenAPI document at `path`, with local assets only."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(path, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        """Swagger UI, reading the OpenAPI document of this daemon."""
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )
