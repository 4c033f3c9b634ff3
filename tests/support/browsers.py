"""Debian's Chromium, headless, driven by Playwright: one way to start it for every
browser test (the flags keep it off a network this machine does not have)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

from conftest import skip_unless_optional

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium(*extra_args: str) -> Iterator[Browser]:
    """A running headless Chromium; skipped (or failed in CI) when it is not installed."""
    if not CHROMIUM.exists():
        skip_unless_optional(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*LAUNCH_ARGS, *extra_args], headless=True
        )
        yield launched
        launched.close()
