"""Logging set-up. Records carry ids and outcomes, never passwords, tokens, keys or message text."""

from __future__ import annotations

import logging

from gql_chat.config import Settings


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
