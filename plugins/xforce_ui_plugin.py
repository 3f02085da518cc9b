"""Airflow 3 plugin: the "Data exchange" view (nav entry) served by the api-server under ``/xforce``.

* ``/xforce/grid?nights=N``: forces x datasets for the last N nights from the run ledger (status,
  rows published / quarantined, coloured), each cell linking to that night's Data Docs and to the
  extract's quarantine reasons; below it the 30-night supplier scorecard.
* ``/xforce/extract/<night>/<force>/<dataset>``: one extract's reasons, row ids, drift and alerts.
* ``/xforce/docs/...``: the Data Docs pages and results stored in the docs zone (``validation/``).

Every route needs an Airflow user allowed to read the ``xforce_nightly`` DAG: the api-server's own
auth manager decides (JWT in the ``Authorization`` header, or the UI's session cookie, as for
Airflow's own API). It also registers ``xforce_nightly``'s timetable (``xforce.airflow.timetable``).
Importing this file is cheap: FastAPI and the rest of the xforce package are imported on the first
request, not when Airflow loads plugins.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route signatures' annotations at
# definition time, and they are imported inside build_app (not module globals).
import threading
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from xforce.airflow.links import DataDocsLink, ExtractPageLink
from xforce.airflow.timetable import NightlyTimetable

URL_PREFIX = "/xforce"
DAG_ID = "xforce_nightly"  # who may read this DAG may see the exchange's view


def build_app() -> Any:
    """The FastAPI app (built on first use)."""
    from fastapi import Depends, FastAPI, HTTPException, Query, Request
    from fastapi.responses import HTMLResponse, Response
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

    bearer = Depends(HTTPBearer(auto_error=False))

    async def airflow_user(request: Request, credentials: HTTPAuthorizationCredentials | None = bearer) -> Any:
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
        from airflow.api_fastapi.core_api.security import get_user

        user = await get_user(request, None, credentials)  # 401 without a valid token or session cookie
        if not get_auth_manager().is_authorized_dag(method="GET", details=DagDetails(id=DAG_ID), user=user):
            raise HTTPException(status_code=403, detail="Forbidden")
        return user

    app = FastAPI(title="xforce data exchange", dependencies=[Depends(airflow_user)], docs_url=None, redoc_url=None)
    headers = {"Cache-Control": "no-store"}

    @app.get("/grid", response_class=HTMLResponse)
    def grid(nights: int = Query(7, ge=1, le=62), until: str | None = None) -> HTMLResponse:
        from xforce.airflow import views

        if until is not None:
            _night(until)
        return HTMLResponse(views.grid_html(views.sources_from_env(), nights, until), headers=headers)

    @app.get("/scorecard", response_class=HTMLResponse)
    def scorecard(until: str | None = None) -> HTMLResponse:
        from xforce.airflow import views

        src = views.sources_from_env()
        last = _night(until) if until else views.latest_night(src.ledger)
        body = views.scorecard_html(src, last) if last else "<p>No night has been run yet.</p>"
        return HTMLResponse(views._page("Supplier scorecard", body), headers=headers)

    @app.get("/extract/{night}/{force}/{dataset}", response_class=HTMLResponse)
    def extract(night: str, force: str, dataset: str) -> HTMLResponse:
        from xforce.airflow import views

        page = views.extract_page(views.sources_from_env(), _night(night), force, dataset)
        if page is None:
            raise HTTPException(status_code=404, detail="unknown force or dataset")
        return HTMLResponse(page, headers=headers)

    @app.get("/docs/{path:path}")
    def docs(path: str) -> Response:
        from xforce.airflow import views
        from xforce.errors import UnsafePathError
        from xforce.store.layout import VALIDATION as ROOT
        from xforce.store.zones import safe_relpath

        kinds = {".html": "text/html; charset=utf-8", ".json": "application/json"}
        kind = next((v for k, v in kinds.items() if path.endswith(k)), None)
        try:
            rel = safe_relpath(ROOT, path) if kind else None
        except UnsafePathError:
            rel = None
        zone = views.sources_from_env().docs
        if rel is None or not zone.exists(rel):
            raise HTTPException(status_code=404, detail="no such page")
        return Response(zone.read_bytes(rel), media_type=kind, headers=headers)

    def _night(value: str) -> str:
        from datetime import date

        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            raise HTTPException(status_code=422, detail="night must be YYYY-MM-DD") from None

    return app


class _LazyApp:
    """An ASGI app that builds the real one on its first request (keeps plugin loading cheap)."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = build_app()
        await self._app(scope, receive, send)


class XforceUiPlugin(AirflowPlugin):
    name = "xforce_ui"
    timetables = [NightlyTimetable]  # noqa: RUF012  (a custom timetable must be registered by a plugin)
    operator_extra_links = [ExtractPageLink(), DataDocsLink()]  # noqa: RUF012  (so the UI shows them)
    fastapi_apps = [{"app": _LazyApp(), "url_prefix": URL_PREFIX, "name": "xforce data exchange"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        {
            "name": "Data exchange",
            "href": f"{URL_PREFIX}/grid",
            "destination": "nav",
            "url_route": "data-exchange",
            "nav_top_level": True,
        }
    ]
