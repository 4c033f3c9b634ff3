"""What the browser tests of the web pages share: one Chromium per module, and the list
of script errors a page logged (none may happen)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from support.browsers import chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def problems() -> Iterator[list[str]]:
    """Script errors and refusals the page logs; none may happen."""
    seen: list[str] = []
    yield seen
    assert seen == []
