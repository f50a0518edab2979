"""`GET /health`: readiness for scripts and CI, no key needed."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

router = APIRouter(tags=["Operations"])


@router.get("/health", summary="Readiness")
async def health() -> JSONResponse:
    return JSONResponse({"status": "ok"})
