"""Consent changes a shopper makes in the store: the new state and its report up, in one transaction."""

from __future__ import annotations

from sqlite_utils import Database

from .outbox import DropClass, Outbox

CHANNELS = ("checkin", "ble", "face", "personalisation", "assisted")
IDENTIFYING = ("ble", "face")  # channels that let the store recognise a shopper who did nothing to be recognised


class ConsentLedger:
    def __init__(self, db: Database, outbox: Outbox):
        self._db = db
        self._outbox = outbox

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
            self._db.execute("DELETE FROM face_enrolment_requests WHERE customer_ref = ?", [customer_ref])
        if channel == "ble" and not granted:  # the phone can no longer be recognised: its keys go
            self._db.execute("DELETE FROM ble_day_keys WHERE customer_ref = ?", [customer_ref])
            self._db.execute("DELETE FROM ble_phones WHERE customer_ref = ?", [customer_ref])

    def request_face_enrolment(self, customer_ref: str, *, at: str, touchpoint: str) -> None:
        """Queue enrolment for the camera host; only with face consent already recorded."""
        with self._db.atomic():
            ok = self._db.execute(
                "SELECT 1 FROM consents WHERE customer_ref = ? AND channel = 'face' AND granted = 1", [customer_ref]
            ).fetchone()
            if ok is None:
                raise PermissionError("face enrolment needs the shopper's face consent first")
            self._db.execute(
                "INSERT INTO face_enrolment_requests (customer_ref, touchpoint, requested_at) VALUES (?, ?, ?)"
                " ON CONFLICT (customer_ref) DO UPDATE SET touchpoint = excluded.touchpoint,"
                " requested_at = excluded.requested_at",
                [customer_ref, touchpoint, at],
            )
            self._outbox.add(
                stream="events",
                kind="face_enrolment_requested",
                payload={"customer_ref": customer_ref, "touchpoint": touchpoint},
                created_at=at,
                drop_class=DropClass.NEVER,
                customer_ref=customer_ref,
            )

    def face_enrolment_requested(self, customer_ref: str) -> bool:
        row = self._db.execute("SELECT 1 FROM face_enrolment_requests WHERE customer_ref = ?", [customer_ref])
        return row.fetchone() is not None
