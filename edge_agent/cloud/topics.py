"""The MQTT topic tree of one store (DESIGN.md, "MQTT"), in one place so nothing spells a topic by hand."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Down(StrEnum):
    """What the cloud sends; the value is the topic below the store's prefix (commands add a device)."""

    OFFERS = "offers"
    ROSTER = "roster"
    ROSTER_DELTA = "roster/delta"
    CMD = "cmd"
    CONTEXT = "context"
    CONFIG = "config"
    BLE_REPORT = "ble/report"  # an app report the cloud relays (not retained)


@dataclass(frozen=True)
class Topics:
    prefix: str  # "retail/v1"
    store: str
    device: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.store}"

    def down(self, kind: Down) -> str:
        return f"{self.base}/{kind.value}"

    def subscriptions(self) -> list[str]:
        """Everything this device listens to: the store's bundles and context, its own and store-wide commands."""
        plain = [self.down(k) for k in Down if k is not Down.CMD]
        return [*plain, f"{self.base}/cmd/{self.device}", f"{self.base}/cmd/*"]

    def classify(self, topic: str) -> Down | None:
        """Which downlink a topic is, or None for a topic this device does not handle."""
        for kind in Down:
            if kind is not Down.CMD and topic == self.down(kind):
                return kind
        if topic in (f"{self.base}/cmd/{self.device}", f"{self.base}/cmd/*"):
            return Down.CMD
        return None

    def up(self, stream: str) -> str:
        """`status`, `events`, `ack`, `telemetry`: this device's uplink topics."""
        return f"{self.base}/{self.device}/{stream}"
