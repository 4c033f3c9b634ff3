"""What the dashboard's browser tests share: where screenshots go, how long to wait."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Locator, Page

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"


WAIT_MS = 20_000


def by_id(page: Page, test_id: str) -> Locator:
    return page.get_by_test_id(test_id)
