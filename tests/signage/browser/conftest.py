"""Fixtures for the page tests: one headless Chromium per module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Any]:
    """One headless Chromium for a whole module of page tests (chromium.py)."""
    from .chromium import chromium  # Playwright is loaded only by the modules that open pages

    async with chromium() as opened:
        yield opened
