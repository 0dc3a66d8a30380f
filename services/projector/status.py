"""The projector's small HTTP face: liveness, per-partition position and lag, metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .metrics import ProjectorMetrics
from .projector import Projector


def status_app(projector: Projector, metrics: ProjectorMetrics) -> Starlette:
    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def status(_: Request) -> JSONResponse:
        return JSONResponse(projector.status())

    async def prometheus(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/status", status),
            Route("/metrics", prometheus),
        ]
    )
