"""The browser's side of a provider sign-in: `GET /auth/oidc/{provider}/login?code_challenge=`
sends it to the provider; the provider sends it back to `GET /auth/oidc/{provider}/callback`,
which sends it on to the frontend's return page (`GQL_CHAT_OIDC_RETURN_URL`) with `?code=`
(for `exchangeSignInCode`), `?link_code=` (for a signed-in user's `completeIdentityLink`), or
`?error=<code>` (`oidc/errors.py`). Tokens never appear in a URL.

The browser is bound to its flows by a cookie holding a random value (HttpOnly, SameSite=Lax,
scoped to `/auth/oidc/`, Secure over https) whose hash each flow keeps: a callback URL opened
in another browser fails. The frontend is bound to the code by its challenge: a code carried
to another frontend cannot be redeemed (both are login CSRF defences)."""

from __future__ import annotations

import logging
import re
import secrets
from urllib.parse import urlencode

from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from gql_chat.api.attachments import public_base
from gql_chat.api.client_ip import client_ip
from gql_chat.config import Settings
from gql_chat.errors import NotFound, RateLimited
from gql_chat.oidc.errors import SignInFailed, SignInFailure
from gql_chat.services.registry import Services
from gql_chat.services.single_sign_on import FLOW_TTL

logger = logging.getLogger(__name__)

BROWSER_COOKIE = "gql_chat_sign_in"
BROWSER_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")
COOKIE_PATH = "/auth/oidc/"


def server_base(settings: Settings, connection: HTTPConnection) -> str:
    """This server's address as browsers reach it (see `GQL_CHAT_OIDC_REDIRECT_BASE`)."""
    return (settings.oidc_redirect_base or public_base(settings, connection)).rstrip("/")


def login_url(settings: Settings, connection: HTTPConnection, provider: str) -> str:
    return f"{server_base(settings, connection)}/auth/oidc/{provider}/login"


async def start_provider_sign_in(request: Request) -> Response:
    services: Services = request.app.state.services
    settings = services.settings
    provider = request.path_params["provider"]
    # One value per browser, kept while it lasts: two flows at once (two tabs) share it.
    secret = request.cookies.get(BROWSER_COOKIE) or ""
    if not BROWSER_SECRET.fullmatch(secret):
        secret = secrets.token_urlsafe(32)
    base = server_base(settings, request)
    try:
        url = await services.single_sign_on.start(
            provider,
            f"{base}/auth/oidc/{provider}/callback",
            secret,
            client_ip(request, settings.trusted_proxies),
            request.query_params.get("code_challenge"),
            link_ticket=request.query_params.get("link"),
        )
    except NotFound:
        return PlainTextResponse("No such sign-in provider.", status_code=404)
    except Exception as exc:
        return _back_to_frontend(request, settings, error=_failure(exc, provider))
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(
        BROWSER_COOKIE,
        secret,
        max_age=int(FLOW_TTL.total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back to the callback
        secure=base.startswith("https://"),
    )
    return response


async def finish_provider_sign_in(request: Request) -> Response:
    services: Services = request.app.state.services
    settings = services.settings
    provider = request.path_params["provider"]
    query = request.query_params
    try:
        result = await services.single_sign_on.finish(
            provider,
            query.get("state"),
            query.get("code"),
            query.get("error"),
            request.cookies.get(BROWSER_COOKIE),
            public_base(settings, request),
        )
    except NotFound:
        return PlainTextResponse("No such sign-in provider.", status_code=404)
    except Exception as exc:
        response = _back_to_frontend(request, settings, error=_failure(exc, provider))
    else:
        response = (
            _back_to_frontend(request, settings, link_code=result.code, provider=provider)
            if result.linking
            else _back_to_frontend(request, settings, code=result.code)
        )
    return response


def _failure(error: Exception, provider: str) -> str:
    """The code the frontend is shown; the details go to the log (never a token or code)."""
    if isinstance(error, SignInFailed):
        logger.warning(
            "a provider sign-in failed: %s (%s)",
            error.failure.value,
            error.detail,
            extra={"provider": provider},
        )
        return error.failure.value
    if isinstance(error, RateLimited):
        return SignInFailure.RATE_LIMITED.value
    logger.error(
        "a provider sign-in failed: %s", type(error).__name__, extra={"provider": provider}
    )
    return SignInFailure.SERVER_ERROR.value


def _back_to_frontend(request: Request, settings: Settings, **params: str) -> RedirectResponse:
    target = settings.oidc_return_url or (
        f"{public_base(settings, request).rstrip('/')}/auth/callback"
    )
    separator = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{separator}{urlencode(params)}", status_code=303)
