"""What each screen is sent of an item's picture and video: the verified local copies, and only the videos its
player decodes (its profile, `screen_profile.py`); each video refused is kept with the reason, for /healthz and the
metrics, until the screen can play it.

A playlist item whose video a screen cannot play (yet: not downloaded) is left out of that screen's loop rather
than shown as a black screen; an offer keeps its picture and text without the video. An item plays for its
`duration_s`, by default its video's own length, else DEFAULT_ITEM_S.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from ..config import Settings
from ..store.assets import AssetRef
from . import screen_profile, video
from .assets import AssetCache

log = logging.getLogger(__name__)

DEFAULT_ITEM_S = 8.0


class ScreenMedia:
    def __init__(self, settings: Settings, assets: AssetCache):
        self._assets = assets
        self._profiles = {
            tp.id: screen_profile.load(tp.profile or screen_profile.DEFAULT)
            for tp in settings.touchpoints
            if tp.kind == "screen"
        }
        self.refused: dict[tuple[str, str], str] = {}  # (touchpoint, video url) → why it is not played there
        self.counts: Counter[str] = Counter()  # refusals by reason code, each (touchpoint, video, reason) once

    def item(self, touchpoint: str, item: dict[str, Any]) -> dict[str, Any] | None:
        """A playlist item as `touchpoint` is sent it, or None when it cannot play the item's video."""
        out = self._assets.localise(item)
        url = item.get("video") or ""
        if not url:
            return {**out, "duration_s": item.get("duration_s") or DEFAULT_ITEM_S}
        local = self._video(touchpoint, url)
        if local is None:
            return None
        return {**out, "video": f"/assets/{local.sha256}", "duration_s": item.get("duration_s") or local.duration_s}

    def offer(self, touchpoint: str, display: dict[str, Any]) -> dict[str, Any]:
        """An offer as `touchpoint` is sent it: without its video when it cannot play it."""
        out = self._assets.localise(display)
        url = display.get("video") or ""
        if not url:
            return out
        local = self._video(touchpoint, url)
        return {**out, "video": "" if local is None else f"/assets/{local.sha256}"}

    def refusals(self) -> list[dict[str, str]]:
        return [
            {"touchpoint": tp, "video": url.split("?", 1)[0], "reason": why} for (tp, url), why in self.refused.items()
        ]

    def _video(self, touchpoint: str, url: str) -> AssetRef | None:
        """The cached video asset `touchpoint` can play, or None (the reason recorded)."""
        asset = self._assets.named(url)
        profile = self._profiles.get(touchpoint)
        code, reason = None, None
        if asset is None or not asset.is_video:
            code, reason = "not_a_video", "the offer bundle names no video at this url"
        elif profile is None:
            code, reason = "not_a_screen", "only a screen plays videos"
        elif (why := video.unplayable(asset, profile)) is not None:
            code, reason = "unplayable", why
        elif self._assets.cached(url) is None:
            code, reason = "not_cached", "not downloaded yet"
        if code is None or reason is None:
            self.refused.pop((touchpoint, url), None)
            return asset
        if self.refused.get((touchpoint, url)) != reason:
            self.refused[(touchpoint, url)] = reason
            self.counts[code] += 1
            if code != "not_cached":  # a download in progress is not a problem to report
                log.warning("screen %s will not play %s: %s", touchpoint, url.split("?", 1)[0], reason)
        return None
