"""Logging set up once, at the entry points."""

from __future__ import annotations

import logging

CHATTY = ("faust", "mode", "aiokafka", "kafka", "uvicorn.error")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"
    )
    # the frameworks narrate every start-up step at INFO; perfplat's own INFO lines are enough
    if logging.getLogger().level <= logging.INFO:
        for name in CHATTY:
            logging.getLogger(name).setLevel(logging.WARNING)
