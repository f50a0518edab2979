"""`GET /health`: readiness for scripts, load balancers and CI, no key needed.

200 `{"status": "ok", "database": "ok"}` while the database answers; 503
`{"status": "error", "database": "unreachable"}` when it does not, so a load
balancer sends requests to processes that can serve them.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

router = APIRouter(tags=["Operations"])


@router.get("/health", summary="Readiness")
async def health(request: Request) -> JSONResponse:
    if await request.app.state.health.database_ok():
        return JSONResponse({"status": "ok", "database": "ok"})
    return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)
