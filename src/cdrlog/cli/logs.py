"""Logging for `cdrlog serve`: uvicorn's readable lines, or one JSON object per line."""

from __future__ import annotations

import copy
from typing import Any

from uvicorn.config import LOGGING_CONFIG

JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


def log_config(kind: str) -> dict[str, Any]:
    """uvicorn's configuration, plus cdrlog's own logger; `kind` is text or json."""
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["cdrlog"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    # On the handlers, so that no line of any logger carries a token out.
    config.setdefault("filters", {})["redact"] = {"()": "cdrlog.web.redaction.RedactTokens"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    if kind == "json":
        for name in ("default", "access"):
            config["formatters"][name] = {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": JSON_FIELDS,
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            }
    return config
