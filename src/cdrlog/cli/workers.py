"""Settings and metrics for `cdrlog serve --workers N`: each worker process builds its
app from the environment the parent prepares."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from cdrlog.service.settings import Settings


@contextmanager
def worker_environment(settings: Settings) -> Iterator[None]:
    """CDRLOG_* variables carrying `settings`, and a fresh directory where the workers'
    Prometheus metrics meet (a stale one would add old counts)."""
    metrics = tempfile.mkdtemp(prefix="cdrlog-metrics-")
    saved = dict(os.environ)
    os.environ.update(
        {
            # Lists travel as JSON, which is how the settings read them back.
            f"CDRLOG_{name.upper()}": value if isinstance(value, str) else json.dumps(value)
            for name, value in settings.model_dump(mode="json").items()
            # Unset (None) has no spelling in the environment: left out, it stays unset.
            if value is not None
        }
    )
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(metrics, ignore_errors=True)
