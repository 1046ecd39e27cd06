"""What the code running now is serving: the request's id and its client's address, set for
each HTTP request and websocket by `web.middleware.RequestContextMiddleware` (tasks started
meanwhile inherit them). Log lines carry the id; the audit log, both."""

from __future__ import annotations

import contextvars

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
client_ip_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "client_ip", default=None
)
"""The client's address (behind trusted proxies, as `X-Forwarded-For` says); never logged."""
