"""Proof of play: a screen's acknowledgement becomes an impression only if it names a stored decision
made for that very touchpoint; repeated acknowledgements are recorded once."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric

from .. import json_input
from ..bus import Bus
from ..clock import Clock
from ..errors import Refused
from ..events import Impression
from ..store import Store
from ..store.impressions import ImpressionRecord
from .audience import Audience


class AckRejected(Refused):
    """A screen's, kiosk's or sign's acknowledgement that cannot become an impression."""


class ProofOfPlay:
    def __init__(self, store: Store, bus: Bus, clock: Clock, audience: Audience | None = None):
        self._store = store
        self._audience = audience  # people reached, where a camera watches the touchpoint
        self._bus = bus
        self._clock = clock
        self.recorded = 0
        self.duplicates = 0
        self.rejected: Counter[str] = Counter()

    def acknowledge(self, touchpoint: str, message: dict[str, Any]) -> bool:
        """Record the impression; True if new, False if this show was already acknowledged.

        Raises AckRejected for a bad acknowledgement, StorageRefused when the disk is full."""
        try:
            with self._store.faults.writing("proof", "the impression"):
                return self._acknowledge(touchpoint, message)
        except AckRejected as exc:
            self.rejected[exc.code] += 1
            raise

    def _acknowledge(self, touchpoint: str, message: dict[str, Any]) -> bool:
        show_id = json_input.short_id(message.get("show_id"), "show_id", "bad_show_id", AckRejected)
        shown = _displayed_at(message.get("displayed_at"))
        decision = self._store.decisions.get(show_id)
        if decision is None or decision.offer_id is None:
            raise AckRejected("unknown_show", f"no decision {show_id!r} was shown here")
        if decision.touchpoint != touchpoint:
            raise AckRejected("wrong_touchpoint", f"decision {show_id!r} was made for another touchpoint")
        wall = self._clock.wall()
        displayed_at = shown or wall.at
        people = self._audience.reached(touchpoint, displayed_at) if self._audience is not None else None
        record = ImpressionRecord(
            impression_id=uuid.uuid4().hex,
            decision_id=show_id,
            at=wall.iso(),
            ntp_synced=wall.ntp_synced,
            displayed_at=displayed_at.isoformat(timespec="milliseconds"),
            touchpoint=touchpoint,
            offer_id=decision.offer_id,
            customer_ref=decision.customer_ref,
            arm=decision.arm,
            people=people,
        )
        if not self._store.impressions.record(record):
            self.duplicates += 1
            return False
        self.recorded += 1
        self._bus.publish(
            Impression(
                impression_id=record.impression_id,
                show_id=show_id,
                touchpoint=touchpoint,
                offer_id=decision.offer_id,
                customer_ref=decision.customer_ref,
                wall=wall,
                arm=decision.arm,
            )
        )
        return True

    def metrics(self) -> Iterator[Metric]:
        yield CounterMetricFamily("edge_impressions", "Impressions recorded (proof of play)", value=self.recorded)
        acks = CounterMetricFamily("edge_acks_refused", "Screen acknowledgements refused", labels=["reason"])
        for reason, n in self.rejected.items():
            acks.add_metric([reason], n)
        yield acks


def _displayed_at(value: Any) -> datetime | None:
    """The screen's own display time, if it sent a sane one (ISO 8601 with a zone)."""
    if value is None:
        return None
    return json_input.aware_time(value, "displayed_at", "bad_displayed_at", AckRejected)
