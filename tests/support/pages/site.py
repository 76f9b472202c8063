"""A demo public service's pages, served from an origin of their own as a real service's are.

The pages in this folder carry Stageprompt markup and perfplat's one script tag. :class:`ServiceSite`
serves them on a free port of 127.0.0.2, so a page and the API it reports to (on 127.0.0.1) are
different origins and different sites, and the beacon crosses origins exactly as it does from a
real service. Each ``.html`` page is a template: ``{{api}}`` becomes the API's origin and
``{{service}}`` the ``service`` query parameter of the page's URL, so one site serves every
test's own service. Other files are served as they are.

``stageprompt.html`` needs the unmodified Stageprompt and jQuery; :func:`install_stageprompt`
installs them from the npm registry with the lockfile beside this module (``node_modules/`` is
ignored by git).
"""

from __future__ import annotations

import html
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

PAGES = Path(__file__).resolve().parent
HOST = "127.0.0.2"
"""Loopback, but not the API's address: another origin and another site."""
STAGEPROMPT_JS = PAGES / "node_modules" / "govuk_frontend_toolkit" / "javascripts" / "stageprompt.js"
JQUERY_JS = PAGES / "node_modules" / "jquery" / "dist" / "jquery.min.js"
AXE_JS = PAGES / "node_modules" / "axe-core" / "axe.min.js"
"""axe-core, the accessibility checker the dashboard tests run in the page."""


class ServiceSite:
    """The pages of this folder on ``http://127.0.0.2:<free port>``, reporting to ``api_origin``.

    Use it as a context manager; :meth:`url` names a page for a service.
    """

    def __init__(self, api_origin: str) -> None:
        self.api_origin = api_origin.rstrip("/")
        site = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(PAGES), **kwargs)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if not parts.path.endswith(".html"):
                    return super().do_GET()
                page = (PAGES / parts.path.lstrip("/")).resolve()
                if page.parent != PAGES or not page.is_file():
                    return self.send_error(404)
                service = parse_qs(parts.query).get("service", [""])[0]
                body = site.render(page.read_text(), service).encode()
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.send_header("cache-control", "no-store")
                self.end_headers()
                self.wfile.write(body)
                return None

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a test's output is no place for an access log

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.origin = f"http://{HOST}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="service-site", daemon=True)

    def render(self, template: str, service: str) -> str:
        return template.replace("{{api}}", html.escape(self.api_origin)).replace(
            "{{service}}", html.escape(service)
        )

    def url(self, page: str, service: str) -> str:
        """The address of ``page`` (e.g. ``start.html``) as ``service``'s page."""
        return f"{self.origin}/{page}?{urlencode({'service': service})}"

    def __enter__(self) -> ServiceSite:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def install_stageprompt(timeout_s: float = 180) -> None:
    """``npm ci`` in this folder unless Stageprompt, jQuery and axe-core are already there. Raises with npm's
    output when it fails (no npm, or the registry out of reach)."""
    if STAGEPROMPT_JS.is_file() and JQUERY_JS.is_file() and AXE_JS.is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed: it fetches Stageprompt and jQuery for the browser tests")
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=PAGES,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0 or not STAGEPROMPT_JS.is_file() or not AXE_JS.is_file():
        raise RuntimeError(f"npm ci in {PAGES} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
