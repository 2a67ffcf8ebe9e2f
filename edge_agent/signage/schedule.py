"""What the screens play: the playlists, campaigns and layouts of the offer bundle (`store/screen_content.py`)
when it carries them, else the config's; checked against this store (its touchpoints) like the config is, and
swapped the moment a bundle is applied or the config changes, for whoever listens (the hub sends the screens
their new loops)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..bus import Bus
from ..config import ConfigError, Settings, with_screens
from ..events import OffersChanged
from ..store import Store

log = logging.getLogger(__name__)


class Schedule:
    def __init__(self, settings: Settings, store: Store, bus: Bus):
        self._base = settings
        self._store = store
        self.settings = settings  # the config with the bundle's screen content in place, when it carries some
        self.listeners: list[Callable[[], None]] = []
        self._load()
        bus.on(OffersChanged, "schedule", lambda _: self._load())

    def reconfigure(self, settings: Settings) -> None:
        self._base = settings
        self._load()

    def _load(self) -> None:
        content = self._store.screen_content.get()
        self.settings = self._base
        if content is not None:
            try:
                self.settings = with_screens(
                    self._base, content.playlists, content.campaigns, content.layouts, "the offer bundle's screens"
                )
            except ConfigError as exc:  # checked when the bundle came; the config has changed since
                log.warning("the offer bundle's screen content no longer fits this store, the config's plays: %s", exc)
        for listener in self.listeners:
            listener()
