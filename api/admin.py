"""The admin API: data sets (``/_admin/data-sets``) and services (``/_admin/services``): list,
create, configure, rotate a token.

Guarded by ``PERFPLAT_ADMIN_TOKEN`` (switched off while it is empty). Changes go to the registry
files, which every process re-reads; ``perfplat datasets …`` and ``perfplat services …`` edit
the same files.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.responses import JSONBody
from api.writes import error
from pipeline.datasets import DataSetConfig, RegistryFile
from pipeline.registry_file import AlreadyExists
from pipeline.services import ServiceConfig, ServiceRegistryFile

NO_STORE = {"Cache-Control": "no-store"}


def _denied(request: Request, admin_token: str) -> Response | None:
    """None when the request carries the admin token; otherwise the 403 or 401 to answer."""
    if not admin_token:
        return error(403, "the admin API is switched off: set PERFPLAT_ADMIN_TOKEN to use it")
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer ") or not hmac.compare_digest(
        header[len("Bearer ") :].encode(), admin_token.encode()
    ):
        return error(
            401,
            "Expected header of form: Authorization: Bearer <admin token>",
            {"WWW-Authenticate": "bearer"},
        )
    return None


async def _json_object(request: Request) -> dict[str, Any] | Response:
    try:
        doc = await request.json()
    except ValueError:
        return error(400, "the body must be a JSON object")
    return doc if isinstance(doc, dict) else error(400, "the body must be a JSON object")


def admin_router(registry: RegistryFile, admin_token: str) -> APIRouter:
    router = APIRouter()

    @router.get("/_admin/data-sets")
    async def list_sets(request: Request) -> Response:
        if (refused := _denied(request, admin_token)) is not None:
            return refused
        sets = registry.reload().sets.values()
        return JSONBody([c.as_public() for c in sorted(sets, key=lambda c: c.name)], headers=NO_STORE)

    @router.post("/_admin/data-sets")
    async def create(request: Request) -> Response:
        if (refused := _denied(request, admin_token)) is not None:
            return refused
        doc = await _json_object(request)
        if isinstance(doc, Response):
            return doc
        token = doc.pop("bearer_token", None)
        try:
            config = DataSetConfig.from_doc(doc)
            token = registry.create(config, str(token) if token else None)
        except (TypeError, ValueError) as exc:
            status = 409 if isinstance(exc, AlreadyExists) else 400
            return error(status, str(exc))
        return JSONBody({**config.as_public(), "bearer_token": token}, status_code=201, headers=NO_STORE)

    @router.patch("/_admin/data-sets/{name}")
    async def configure(name: str, request: Request) -> Response:
        if (refused := _denied(request, admin_token)) is not None:
            return refused
        doc = await _json_object(request)
        if isinstance(doc, Response):
            return doc
        if {"data_group", "data_type", "name", "token_hash", "bearer_token"} & set(doc):
            return error(400, "name, group, type and token cannot be changed here (rotate the token instead)")
        try:
            config = registry.configure(name, **doc)
        except KeyError:
            return error(404, f"No data set named {name}")
        except (TypeError, ValueError) as exc:
            return error(400, str(exc))
        return JSONBody(config.as_public(), headers=NO_STORE)

    @router.post("/_admin/data-sets/{name}/token")
    async def rotate(name: str, request: Request) -> Response:
        if (refused := _denied(request, admin_token)) is not None:
            return refused
        try:
            token = registry.rotate_token(name)
        except KeyError:
            return error(404, f"No data set named {name}")
        return JSONBody({"name": name, "bearer_token": token}, headers=NO_STORE)

    return router


def services_admin_router(services: ServiceRegistryFile, admin_token: str) -> APIRouter:
    """``/_admin/services``: the services registry, with the data-set admin API's auth and errors."""
    router = APIRouter()

    @router.get("/_admin/services")
    async def list_services(request: Request) -> Response:
        if (refused := _denied(request, admin_token)) is not None:
            return refused
        found = services.reload().services
        return JSONBody([found[slug].as_public() for slug in sorted(found)], headers=NO_STORE)

    @router.post("/_admin/services")
    async def create(request: Request) -> Response:
        if (refused := _denied(request, admin_token)) is not None:
            return refused
        doc = await _json_object(request)
        if isinstance(doc, Response):
            return doc
        token = doc.pop("bearer_token", None)
        if "token_hash" in doc:
            return error(400, "token_hash cannot be set here (give bearer_token, or let one be generated)")
        try:
            config = ServiceConfig.from_doc(doc)
            token = services.create(config, str(token) if token else None)
        except (TypeError, ValueError) as exc:
            status = 409 if isinstance(exc, AlreadyExists) else 400
            return error(status, str(exc))
        return JSONBody({**config.as_public(), "bearer_token": token}, status_code=201, headers=NO_STORE)

    @router.patch("/_admin/services/{slug}")
    async def configure(slug: str, request: Request) -> Response:
        if (refused := _denied(request, admin_token)) is not None:
            return refused
        doc = await _json_object(request)
        if isinstance(doc, Response):
            return doc
        if {"slug", "token_hash", "bearer_token"} & set(doc):
            return error(400, "the slug and the token cannot be changed here (rotate the token instead)")
        try:
            config = services.configure(slug, **doc)
        except KeyError:
            return error(404, f"No service named {slug}")
        except (TypeError, ValueError) as exc:
            return error(400, str(exc))
        return JSONBody(config.as_public(), headers=NO_STORE)

    @router.post("/_admin/services/{slug}/token")
    async def rotate(slug: str, request: Request) -> Response:
        if (refused := _denied(request, admin_token)) is not None:
            return refused
        try:
            token = services.rotate_token(slug)
        except KeyError:
            return error(404, f"No service named {slug}")
        return JSONBody({"slug": slug, "bearer_token": token}, headers=NO_STORE)

    return router
