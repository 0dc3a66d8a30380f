"""Routes: the Atlas, the web page over the API (its pages, its assets, signing in and out).

Every page path answers with the same shell; the page's script reads the path and asks the
JSON API for what it shows. A page's address may carry `?token=<API key>` (the link `make
run` prints, after Jupyter): the browser is then signed in with a session cookie and sent
to the same address without the token. See services/api/sessions.py for the cookie.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi.types import DecoratedCallable
from pydantic import BaseModel, Field

from chancery.auth import AuthenticationError, PermissionDeniedError, utcnow
from services.api.atlas import (
    IMMUTABLE,
    PAGE_HEADERS,
    AtlasFiles,
    build_dir,
    login_page,
    not_built_page,
    safe_next,
)
from services.api.context import ApiContext, context_of
from services.api.examples import ok
from services.api.sessions import clearing_header, cookie_header, signer_of
from services.platform.web import Problem

router = APIRouter(tags=["atlas"])

MAX_FORM_BYTES = 8192
HTML = "text/html; charset=utf-8"
FAILED_LINK = "That sign-in link is not valid (or its key was revoked): sign in with an API key."

SHELL_EXAMPLE = (
    '<!doctype html><html lang="en"><head>...<script type="module" '
    'src="/atlas/assets/app-5NQ3XKBD.js"></script></head><body>...</body></html>'
)


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"example": SHELL_EXAMPLE}}}


PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: _html("The Atlas's page; its script shows what the address names."),
    303: {
        "description": "With `token`: signed in (Set-Cookie), and sent to the same address "
        "without the token; or, the token not valid, to the sign-in page."
    },
    503: _html("The Atlas is not built (`make atlas`)."),
}

Token = Annotated[
    str | None,
    Query(
        description="An API key that signs the browser in (the link `make run` prints); the "
        "answer is a redirect to the same page without it.",
        include_in_schema=True,
    ),
]
AsOfPage = Annotated[
    str | None,
    Query(
        description="What the page shows: as of this day (YYYY-MM-DD); checked by the page.",
        openapi_examples={"before Beijing's mediation": {"value": "2023-02-28"}},
    ),
]
KnownAtPage = Annotated[
    str | None,
    Query(
        description="What the page shows: as Chancery knew it at this instant (RFC 3339).",
        openapi_examples={"before the seeds": {"value": "2023-05-12T00:00:00Z"}},
    ),
]


@lru_cache(maxsize=8)
def _files(root: FilePath) -> AtlasFiles:
    return AtlasFiles(root)


def _atlas(ctx: ApiContext) -> AtlasFiles:
    return _files(build_dir(ctx.settings.atlas_dir))


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _redirect(location: str, *headers: tuple[str, str]) -> Response:
    response = Response(
        status_code=303,
        headers={
            "Location": location,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )
    for name, value in headers:
        response.headers.append(name, value)
    return response


def _without_token(request: Request) -> str:
    rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
    return request.url.path + (f"?{urlencode(rest)}" if rest else "")


def _sign_in_by_link(request: Request, ctx: ApiContext, token: str) -> Response:
    location = _without_token(request)
    signer = signer_of(ctx.authenticator)
    if not ctx.authenticator.enabled or signer is None:
        return _redirect(location)
    now = utcnow()
    try:
        session = signer.open(token, now=now)
    except (AuthenticationError, PermissionDeniedError):
        return _redirect("/login?" + urlencode({"next": location, "failed": "link"}))
    return _redirect(
        location, ("Set-Cookie", cookie_header(session, now=now, secure=_secure(request)))
    )


def _page(request: Request, token: str | None) -> Response:
    ctx = context_of(request)
    if token is not None:
        return _sign_in_by_link(request, ctx, token)
    atlas = _atlas(ctx)
    build = atlas.current()
    if build is None:
        return Response(
            not_built_page(atlas.root), status_code=503, media_type=HTML, headers=PAGE_HEADERS
        )
    return Response(build.shell, media_type=HTML, headers=PAGE_HEADERS)


def _page_route(path: str, *, summary: str) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """A page of the Atlas: the shell, or a redirect that signs in (see _page)."""
    return router.get(path, response_class=Response, responses=PAGE_RESPONSES, summary=summary)


@_page_route("/", summary="The Atlas: the world map, a country's relations")
async def world_page(
    *,
    request: Request,
    token: Token = None,
    country: Annotated[
        str | None, Query(description="The country chosen on the map (checked by the page).")
    ] = None,
    as_of: AsOfPage = None,
    known_at: KnownAtPage = None,
) -> Response:
    return _page(request, token)


@_page_route(
    "/relations/{a}/{b}", summary="The Atlas: a pair's relation, its score over time and its record"
)
async def pair_page(
    *,
    request: Request,
    a: Annotated[str, Path(description="A state or organisation code (checked by the page).")],
    b: Annotated[str, Path(description="The other party.")],
    token: Token = None,
    as_of: AsOfPage = None,
    known_at: KnownAtPage = None,
) -> Response:
    return _page(request, token)


@_page_route(
    "/people/{person_id}", summary="The Atlas: a person, their trips on a map and a timeline"
)
async def person_page(
    *,
    request: Request,
    person_id: Annotated[str, Path(description="The person's id (checked by the page).")],
    token: Token = None,
    as_of: AsOfPage = None,
    known_at: KnownAtPage = None,
) -> Response:
    return _page(request, token)


@router.get(
    "/atlas/assets/{name}",
    response_class=Response,
    responses={
        200: {"description": "The asset, in the best encoding accepted (br, gzip)."},
        404: {"description": "No such asset in the build."},
    },
    summary="The Atlas's script, style sheet and world shapes (names carry their hash)",
)
async def asset(
    *,
    request: Request,
    name: Annotated[str, Path(description="The asset's file name, as the page names it.")],
) -> Response:
    build = _atlas(context_of(request)).current()
    found = build.assets.get(name) if build is not None else None
    if found is None:
        raise Problem(404, "Not Found", "no such asset in the Atlas's build")
    coding, body = found.pick(request.headers.get("accept-encoding"))
    headers = {
        "Cache-Control": IMMUTABLE,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if coding != "identity":
        headers["Content-Encoding"] = coding
    return Response(body, media_type=found.media_type, headers=headers)


# --- signing in and out ------------------------------------------------------------------------


def _login_response(
    request: Request, ctx: ApiContext, next_path: str, message: str | None, status: int = 200
) -> Response:
    build = _atlas(ctx).current()
    page = login_page(
        stylesheet=build.stylesheet if build is not None else None,
        icon=build.icon if build is not None else None,
        next_path=next_path,
        message=message,
    )
    return Response(page, status_code=status, media_type=HTML, headers=PAGE_HEADERS)


def _same_origin(request: Request) -> None:
    """A form post from a page of this origin, or from a client that is no browser (which
    sends neither header and carries no one's cookies): nothing else may sign in or out.
    Browsers say where a request comes from in Sec-Fetch-Site; older ones only in Origin."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    expected = f"{request.url.scheme}://{request.headers.get('host', '')}"
    allowed = site in {"same-origin", "none"} if site is not None else origin in {None, expected}
    if not allowed:
        raise Problem(403, "Forbidden", "signing in or out is only possible from this site")


@router.get(
    "/login",
    response_class=Response,
    responses={200: _html("The sign-in page."), 303: {"description": "Auth is disabled."}},
    summary="The Atlas's sign-in page (an API key)",
)
async def login_form(
    *,
    request: Request,
    next_path: Annotated[
        str | None, Query(alias="next", description="Where to go once signed in.")
    ] = None,
    failed: Annotated[
        str | None, Query(description="`link`: the sign-in link was not valid.")
    ] = None,
) -> Response:
    ctx = context_of(request)
    if not ctx.authenticator.enabled:
        return _redirect(safe_next(next_path))
    return _login_response(
        request, ctx, safe_next(next_path), FAILED_LINK if failed == "link" else None
    )


async def _form(request: Request) -> dict[str, str]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise Problem(415, "Unsupported Media Type", "send the form urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise Problem(
                413, "Content Too Large", f"a sign-in form is at most {MAX_FORM_BYTES} bytes"
            )
    try:
        fields = parse_qs(body.decode("ascii"), max_num_fields=10, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise Problem(400, "Bad Request", "the form is not valid urlencoded UTF-8") from None
    return {name: values[0] for name, values in fields.items() if values}


@router.post(
    "/login",
    response_class=Response,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["key"],
                        "properties": {
                            "key": {"type": "string", "description": "An API key."},
                            "next": {"type": "string", "description": "Where to go then."},
                        },
                    }
                }
            },
        }
    },
    responses={
        303: {"description": "Signed in (Set-Cookie: the session), sent on to `next`."},
        400: {"description": "The form is not urlencoded ASCII."},
        401: _html("The key is not valid: the sign-in page again, saying so."),
        403: _html("The key cannot read events, or the form came from another site."),
        413: {"description": "The form is too large."},
        415: {"description": "Not a urlencoded form."},
    },
    summary="Sign in with an API key: a session cookie, not the key, is kept",
)
async def login(request: Request) -> Response:
    ctx = context_of(request)
    _same_origin(request)
    fields = await _form(request)
    next_path = safe_next(fields.get("next"))
    signer = signer_of(ctx.authenticator)
    if not ctx.authenticator.enabled or signer is None:
        return _redirect(next_path)
    now = utcnow()
    try:
        session = signer.open(fields.get("key", "").strip(), now=now)
    except AuthenticationError:
        return _login_response(request, ctx, next_path, "That API key is not valid.", 401)
    except PermissionDeniedError:
        message = "That API key cannot read events (it lacks the scope events:read)."
        return _login_response(request, ctx, next_path, message, 403)
    return _redirect(
        next_path, ("Set-Cookie", cookie_header(session, now=now, secure=_secure(request)))
    )


@router.post(
    "/logout",
    response_class=Response,
    responses={303: {"description": "Signed out (the cookie cleared), sent to the sign-in page."}},
    summary="Sign out of the Atlas",
)
async def logout(request: Request) -> Response:
    _same_origin(request)
    return _redirect("/login", ("Set-Cookie", clearing_header(secure=_secure(request))))


class SessionBody(BaseModel):
    auth_enabled: bool = Field(description="False: every request may read, no sign-in needed.")
    signed_in: bool = Field(description="Whether the request's credentials are valid.")
    subject: str | None = Field(description="Whose: the API key's name, or the JWT's subject.")
    kind: str | None = Field(description="`session` (the cookie), `api-key` or `jwt`.")


SESSION_EXAMPLE = {
    "auth_enabled": True,
    "signed_in": True,
    "subject": "development",
    "kind": "session",
}


@router.get(
    "/atlas/session",
    response_model=SessionBody,
    responses={200: ok(SESSION_EXAMPLE)},
    summary="Whether this browser is signed in, and as whom",
)
async def session(request: Request) -> JSONResponse:
    ctx = context_of(request)
    if not ctx.authenticator.enabled:
        body = SessionBody(auth_enabled=False, signed_in=True, subject=None, kind=None)
    else:
        try:
            principal = ctx.principals.authenticate(
                request.headers.get("authorization"), now=utcnow()
            )
        except AuthenticationError:
            body = SessionBody(auth_enabled=True, signed_in=False, subject=None, kind=None)
        else:
            body = SessionBody(
                auth_enabled=True,
                signed_in=True,
                subject=principal.subject,
                kind=principal.kind,
            )
    return JSONResponse(body.model_dump(), headers={"Cache-Control": "no-store"})


@router.get("/{path:path}", include_in_schema=False)
async def elsewhere(request: Request, path: str) -> Response:
    """Any other address a browser asks for: the shell, with 404, so the page can say that
    nothing is there. Every other client (and every /v1 path) gets the API's own 404."""
    accept = request.headers.get("accept", "")
    if path.startswith(("v1/", "atlas/")) or "text/html" not in accept:
        raise Problem(404, "Not Found", "Not Found")
    response = _page(request, None)
    if response.status_code == 200:
        response.status_code = 404
    return response
