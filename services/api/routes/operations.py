"""Routes for operators: liveness, readiness, metrics (no credentials needed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.api.reader import NotReadyError

from .common import Context

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Redis answers and a read-model version is ready")
async def readyz(ctx: Context) -> JSONResponse:
    checks: dict[str, dict[str, object]] = {}
    try:
        snapshot = await ctx.reader.snapshot()
    except NotReadyError as exc:
        checks["read_models"] = {"ok": False, "detail": f"rebuilding ({exc.state})"}
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        checks["read_models"] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    else:
        checks["read_models"] = {
            "ok": True,
            "detail": f"version {snapshot.version}, lag {snapshot.lag}",
        }
    ready = all(bool(c["ok"]) for c in checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks}
    headers = {} if ready else {"Retry-After": str(5)}
    return JSONResponse(body, status_code=200 if ready else 503, headers=headers)


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(ctx: Context) -> Response:
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
