"""The library logger (core layer): silent by default, like Optuna's."""

from __future__ import annotations

import logging

logger = logging.getLogger("omgmagics")
logger.addHandler(logging.NullHandler())

_LEVELS = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}


def set_verbosity(level: int) -> None:
    """Show the kit's log on stderr: -1 errors only, 0 warnings, 1 info, 2 debug."""
    logger.setLevel(_LEVELS[max(-1, min(2, level))])
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.NullHandler)
               for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s omg: %(message)s"))
        logger.addHandler(handler)


def get_logger(name: str) -> logging.Logger:
    """A child of the library logger, for module ``name``."""
    return logger.getChild(name.removeprefix("omgmagics."))
