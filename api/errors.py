"""Errors to HTTP status, in one place: BadInput → its 4xx, RetryableError → 503 + Retry-After."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from api.responses import JSONBody
from pipeline.errors import BadInput, RetryableError


def install_error_handlers(app: FastAPI, retry_after_s: int) -> None:
    async def bad_input(_: Request, exc: Exception) -> JSONBody:
        assert isinstance(exc, BadInput)
        return JSONBody({"status": "error", "message": exc.message}, status_code=exc.status)

    async def retryable(_: Request, exc: Exception) -> JSONBody:
        return JSONBody(
            {"status": "error", "message": f"temporarily unavailable, retry later: {exc}"},
            status_code=503,
            headers={"Retry-After": str(retry_after_s)},
        )

    async def http_error(_: Request, exc: Exception) -> JSONBody:
        assert isinstance(exc, HTTPException)
        return JSONBody(
            {"status": "error", "message": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    async def validation(_: Request, exc: Exception) -> JSONBody:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()
        )
        return JSONBody({"status": "error", "message": problems}, status_code=400)

    app.add_exception_handler(BadInput, bad_input)
    app.add_exception_handler(RetryableError, retryable)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation)
