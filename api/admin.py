"""The admin API for data sets (``/_admin/data-sets``): list, create, configure, rotate a token.

Guarded by ``PERFPLAT_ADMIN_TOKEN`` (switched off while it is empty). Changes go to the registry
file, which every process re-reads; ``perfplat datasets …`` edits the same file.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.responses import JSONBody
from api.writes import error
from pipeline.datasets import DataSetConfig, RegistryFile

NO_STORE = {"Cache-Control": "no-store"}


def admin_router(registry: RegistryFile, admin_token: str) -> APIRouter:
    router = APIRouter()

    def denied(request: Request) -> Response | None:
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

    async def json_object(request: Request) -> dict[str, Any] | Response:
        try:
            doc = await request.json()
        except ValueError:
            return error(400, "the body must be a JSON object")
        return doc if isinstance(doc, dict) else error(400, "the body must be a JSON object")

    @router.get("/_admin/data-sets")
    async def list_sets(request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        sets = registry.reload().sets.values()
        return JSONBody([c.as_public() for c in sorted(sets, key=lambda c: c.name)], headers=NO_STORE)

    @router.post("/_admin/data-sets")
    async def create(request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        doc = await json_object(request)
        if isinstance(doc, Response):
            return doc
        token = doc.pop("bearer_token", None)
        try:
            config = DataSetConfig.from_doc(doc)
            token = registry.create(config, str(token) if token else None)
        except (TypeError, ValueError) as exc:
            status = 409 if "already exists" in str(exc) else 400
            return error(status, str(exc))
        return JSONBody({**config.as_public(), "bearer_token": token}, status_code=201, headers=NO_STORE)

    @router.patch("/_admin/data-sets/{name}")
    async def configure(name: str, request: Request) -> Response:
        if (refused := denied(request)) is not None:
            return refused
        doc = await json_object(request)
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
        if (refused := denied(request)) is not None:
            return refused
        try:
            token = registry.rotate_token(name)
        except KeyError:
            return error(404, f"No data set named {name}")
        return JSONBody({"name": name, "bearer_token": token}, headers=NO_STORE)

    return router
