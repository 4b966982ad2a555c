"""The API documentation at /docs, offline: Swagger UI's script and style are the asset files of
the installed ``fastapi-offline`` package (Swagger UI 5, which reads FastAPI's OpenAPI 3.1), never
a CDN. The page is our own, with a Content-Security-Policy that allows nothing but 'self' (and
data: images, which Swagger UI's stylesheet uses).

/docs is on in every environment: it shows what /openapi.json (always served) already says, and
loads nothing from elsewhere. Also the favicon at /favicon.ico, for the console and /docs.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response

from qunyun.console.web import STATIC_DIR

DOCS_URL = "/docs"
SWAGGER_DIR = Path(fastapi_offline.__file__).parent / "static"
FAVICON = STATIC_DIR / "favicon.svg"
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
# Swagger UI asks validator.swagger.io about the schema unless told not to: the page stays offline.
_INIT_JS = """\
window.addEventListener("load", function () {
  var node = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: node.getAttribute("data-openapi"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""
_ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
}
_CACHE = {"cache-control": "public, max-age=86400"}


def docs_page(title: str, openapi_url: str) -> str:
    """The HTML of /docs: no inline script or style, every URL on this server."""
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)} — API</title>\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="/favicon.ico" type="image/svg+xml">\n'
        f'<link rel="stylesheet" href="{DOCS_URL}/swagger-ui.css">\n'
        "</head>\n<body>\n"
        f'<div id="swagger-ui" data-openapi="{escape(openapi_url)}"></div>\n'
        f'<script src="{DOCS_URL}/swagger-ui-bundle.js"></script>\n'
        f'<script src="{DOCS_URL}/init.js"></script>\n'
        "</body>\n</html>\n"
    )


def install_docs(app: FastAPI) -> None:
    """Add /docs (Swagger UI from the installed package), its assets and /favicon.ico to ``app``.
    Create the app with ``docs_url=None`` so that FastAPI's CDN-based page is not registered."""
    openapi_url = app.openapi_url or "/openapi.json"
    csp = {"content-security-policy": DOCS_CSP}

    @app.get(DOCS_URL, include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(docs_page(app.title, openapi_url), headers=csp)

    @app.get(f"{DOCS_URL}/init.js", include_in_schema=False)
    def docs_init() -> Response:
        return Response(_INIT_JS, media_type="text/javascript; charset=utf-8", headers={**csp, **_CACHE})

    def asset_route(name: str, media_type: str) -> None:
        path = SWAGGER_DIR / name

        @app.get(f"{DOCS_URL}/{name}", include_in_schema=False, name=f"docs-{name}")
        def asset() -> FileResponse:
            return FileResponse(path, media_type=media_type, headers={**csp, **_CACHE})

    for name, media_type in _ASSETS.items():
        asset_route(name, media_type)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        # An SVG under the conventional name: browsers that ask for /favicon.ico accept it.
        return FileResponse(FAVICON, media_type="image/svg+xml", headers=_CACHE)
