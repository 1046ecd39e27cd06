"""Logging set-up: text or JSON lines, each carrying the request id.

Records carry ids, names, durations and outcomes, never passwords, tokens, keys or message
text: call sites pass only such fields as `extra`, and nothing logs request bodies or URLs'
query strings."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from gql_chat.config import LogFormat, Settings
from gql_chat.request_scope import request_id_var

_STANDARD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "request_id",
    "color_message",
}


def record_extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRIBUTES}


def _printable(value: object) -> str:
    try:
        return str(value)
    except Exception:  # e.g. a dead weak proxy in a third-party record
        return f"<{type(value).__name__}>"


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            **record_extras(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=_printable)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = record_extras(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


DRIVER_LOGGERS = (
    "pymongo.command",
    "pymongo.connection",
    "pymongo.serverSelection",
    "pymongo.client",
    "pymongo.topology",
)
DRIVER_DOCUMENT_FIELDS = ("command", "reply", "failure")
OMITTED = {"omitted": True}


class DriverDocumentFilter(logging.Filter):
    """PyMongo's structured logs carry whole documents at DEBUG (message text, password hashes,
    token digests) and server errors that quote them (a duplicate key names the email). Keep
    each event, its command name, timing and server, and drop the documents. A record whose
    shape this does not know is dropped whole: fail closed."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg
        if isinstance(message, str):
            return True
        fields = getattr(message, "_kwargs", None)  # pymongo.logger.LogMessage
        if not isinstance(fields, dict):
            return False
        for name in DRIVER_DOCUMENT_FIELDS:
            if fields.get(name) is not None:
                # A document, not a string: PyMongo redacts a server-side failure by reading
                # its fields (a string made it raise while logging, printing the raw error).
                fields[name] = dict(OMITTED)
        return True


SECRET_DEBUG_LOGGERS = ("authlib",)
"""Libraries that log secrets at DEBUG (authlib: a sign-in's PKCE code verifier, OAuth
tokens): they log from INFO up, whatever the app's level."""


def protect_library_logs() -> None:
    """Idempotent; set on the loggers themselves, so every handler (and pytest's) is covered,
    whatever the level: drivers' documents are dropped, and secret-logging debug is off."""
    for name in SECRET_DEBUG_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    for name in DRIVER_LOGGERS:
        driver_logger = logging.getLogger(name)
        if not any(isinstance(f, DriverDocumentFilter) for f in driver_logger.filters):
            driver_logger.addFilter(DriverDocumentFilter())


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        JsonFormatter() if settings.log_format is LogFormat.JSON else TextFormatter()
    )
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)
