"""Consent changes a shopper makes in the store: the new state and its report up, in one transaction."""

from __future__ import annotations

from sqlite_utils import Database

from .enrolments import FaceEnrolments
from .outbox import DropClass, Outbox

CHANNELS = ("checkin", "ble", "face", "personalisation", "assisted")
IDENTIFYING = ("ble", "face")  # channels that let the store recognise a shopper who did nothing to be recognised


class ConsentLedger:
    def __init__(self, db: Database, outbox: Outbox, enrolments: FaceEnrolments):
        self._db = db
        self._outbox = outbox
        self._enrolments = enrolments

    def set(self, customer_ref: str, channel: str, granted: bool, *, at: str, touchpoint: str) -> int:
        """Record the shopper's choice for one channel; returns the customer's new consent epoch.

        The epoch goes up with every change so the cloud can order changes made here and in the app.
        """
        if channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}")
        with self._db.atomic():
            cur = self._db.execute(
                "UPDATE customers SET consent_epoch = consent_epoch + 1, updated_at = ? WHERE customer_ref = ?"
                " RETURNING consent_epoch",
                [at, customer_ref],
            )
            row = cur.fetchone()
            if row is None:
                raise KeyError(customer_ref)
            epoch: int = row[0]
            self._record(customer_ref, channel, granted, at)
            self._outbox.add(
                stream="events",
                kind="consent",
                payload={
                    "customer_ref": customer_ref,
                    "channel": channel,
                    "granted": granted,
                    "consent_epoch": epoch,
                    "touchpoint": touchpoint,
                },
                created_at=at,
                drop_class=DropClass.NEVER,
                customer_ref=customer_ref,
            )
        return epoch

    def withdraw(self, customer_ref: str, channel: str, *, epoch: int, at: str) -> bool:
        """A withdrawal another host of the store took (and reports to the cloud itself): the channel goes off
        here too, with its secrets, and the epoch becomes at least `epoch`. False for a customer not held here."""
        if channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r}")
        with self._db.atomic():
            cur = self._db.execute(
                "UPDATE customers SET consent_epoch = max(consent_epoch, ?), updated_at = ? WHERE customer_ref = ?",
                [epoch, at, customer_ref],
            )
            if cur.rowcount == 0:
                return False
            self._record(customer_ref, channel, False, at)
        return True

    def _record(self, customer_ref: str, channel: str, granted: bool, at: str) -> None:
        self._db.execute(
            "INSERT INTO consents (customer_ref, channel, granted, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (customer_ref, channel) DO UPDATE SET granted = excluded.granted,"
            " updated_at = excluded.updated_at",
            [customer_ref, channel, int(granted), at],
        )
        if channel == "face" and not granted:
            self._enrolments.withdrawn(customer_ref, at)
        if channel == "ble" and not granted:  # the phone can no longer be recognised: its keys go
            self._db.execute("DELETE FROM ble_day_keys WHERE customer_ref = ?", [customer_ref])
            self._db.execute("DELETE FROM ble_phones WHERE customer_ref = ?", [customer_ref])
