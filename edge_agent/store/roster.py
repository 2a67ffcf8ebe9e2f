"""The opt-in roster and per-channel consent. Absent means not opted in: the agent fails closed."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlite_utils import Database

from .faces import MAX_PER_CUSTOMER, FaceEmbeddings, decode_embedding

CustomerRef = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
LoyaltyId = Annotated[str, Field(pattern=r"^[0-9]{6,20}$")]
PhoneHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
_DIGITS = re.compile(r"[0-9]{6,15}")
MAX_DAY_KEYS = 14


def phone_hash(salt: str, number: str) -> str | None:
    """The roster's form of a phone number: sha256 of the chain's salt, ':' and the digits (E.164, no '+').

    Spaces, dashes, dots, brackets and a leading '+' or '00' are ignored; None if what remains is not
    6..15 digits.
    """
    digits = re.sub(r"[\s().-]", "", number)
    digits = digits.removeprefix("+") if digits.startswith("+") else digits.removeprefix("00")
    if not _DIGITS.fullmatch(digits):
        return None
    return hashlib.sha256(f"{salt}:{digits}".encode()).hexdigest()


class RosterEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    customer_ref: CustomerRef
    consents: dict[str, bool] = Field(default_factory=dict)
    consent_epoch: Annotated[int, Field(ge=0)] = 0
    segments: tuple[str, ...] = ()
    loyalty_id: LoyaltyId | None = None
    phone_hash: PhoneHash | None = None
    language: Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")] | None = Field(
        default=None, description="the language the customer reads offers in (BCP 47)"
    )
    day_keys: dict[str, str] = Field(
        default_factory=dict, description="BLE day keys: yyyymmdd → base64 of 16 bytes (see sources/tokens.py)"
    )
    phone_model: Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_.+-]+$")] | None = Field(
        default=None, description="phone model the app reported, looked up in ble.reference_by_model"
    )

    @field_validator("day_keys")
    @classmethod
    def _day_keys_are_16_bytes_per_day(cls, keys: dict[str, str]) -> dict[str, str]:
        if len(keys) > MAX_DAY_KEYS:
            raise ValueError(f"at most {MAX_DAY_KEYS} day keys, got {len(keys)}")
        for day, key in keys.items():
            try:
                datetime.strptime(day, "%Y%m%d")
            except ValueError:
                raise ValueError(f"day {day!r} must be yyyymmdd") from None
            try:
                raw = base64.b64decode(key, validate=True)
            except binascii.Error:
                raise ValueError(f"day key of {day} must be base64") from None
            if len(raw) != 16:
                raise ValueError(f"day key of {day} must decode to 16 bytes, got {len(raw)}")
        return keys

    def decoded_day_keys(self) -> dict[str, bytes]:
        return {day: base64.b64decode(key) for day, key in self.day_keys.items()}

    face_embeddings: tuple[str, ...] = Field(
        default=(), max_length=MAX_PER_CUSTOMER, description="base64 float32 128-d, L2-normalised"
    )

    @field_validator("face_embeddings")
    @classmethod
    def _embeddings_decode(cls, embeddings: tuple[str, ...]) -> tuple[str, ...]:
        for i, text in enumerate(embeddings):
            try:
                decode_embedding(text)
            except ValueError as exc:
                raise ValueError(f"face_embeddings[{i}]: expected {exc}") from None
        return embeddings

    def consents_to(self, channel: str) -> bool:
        return self.consents.get(channel, False)


Held = tuple[int, dict[str, bool]]  # a customer's consent epoch and consents as this store holds them


def forward(entry: RosterEntry, held: Held | None) -> RosterEntry:
    """The entry as it may be applied: consent only moves forward.

    A roster made before a change the shopper made in the store (a lower epoch) keeps the store's consents
    whole; at the same epoch a channel withdrawn here stays withdrawn (a withdrawal wins until the cloud sends a
    higher epoch); only a higher epoch replaces them. The epoch never goes down. Secrets of a channel that ends
    up withdrawn are not written (`Roster.upsert` keeps day keys and embeddings only under consent).
    """
    if held is None or entry.consent_epoch > held[0]:
        return entry
    epoch, consents = held
    if entry.consent_epoch < epoch:
        merged = dict(consents)
    else:
        merged = {ch: ok and consents.get(ch, True) for ch, ok in entry.consents.items()}
        merged |= {ch: False for ch, ok in consents.items() if not ok}
    return entry.model_copy(update={"consent_epoch": epoch, "consents": merged})


class Roster:
    def __init__(self, db: Database):
        self._db = db
        self.faces = FaceEmbeddings(db)

    def held(self, refs: list[str]) -> dict[str, Held]:
        """The consent epoch and consents this store holds for each of these customers it knows."""
        out: dict[str, Held] = {}
        for i in range(0, len(refs), 500):
            chunk = refs[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for ref, epoch in self._db.execute(
                f"SELECT customer_ref, consent_epoch FROM customers WHERE customer_ref IN ({marks})", chunk
            ).fetchall():
                out[ref] = (epoch, {})
            for ref, channel, granted in self._db.execute(
                f"SELECT customer_ref, channel, granted FROM consents WHERE customer_ref IN ({marks})", chunk
            ).fetchall():
                out[ref][1][channel] = bool(granted)
        return out

    def upsert(self, entries: list[RosterEntry], updated_at: str) -> None:
        """Write entries with their full consent sets (a channel left out is no longer consented), moved only
        forward from what this store holds (`forward`)."""
        with self._db.atomic():
            held = self.held([e.customer_ref for e in entries])
            for cloud in entries:
                e = forward(cloud, held.get(cloud.customer_ref))
                self._db.execute(
                    "INSERT INTO customers (customer_ref, segments, consent_epoch, updated_at, loyalty_id, phone_hash,"
                    " language) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (customer_ref) DO UPDATE SET"
                    " segments = excluded.segments, consent_epoch = excluded.consent_epoch,"
                    " updated_at = excluded.updated_at, loyalty_id = excluded.loyalty_id,"
                    " phone_hash = excluded.phone_hash, language = excluded.language",
                    [
                        e.customer_ref,
                        json.dumps(list(e.segments)),
                        e.consent_epoch,
                        updated_at,
                        e.loyalty_id,
                        e.phone_hash,
                        e.language,
                    ],
                )
                self._db.execute("DELETE FROM consents WHERE customer_ref = ?", [e.customer_ref])
                self._db.conn.executemany(
                    "INSERT INTO consents (customer_ref, channel, granted, updated_at) VALUES (?, ?, ?, ?)",
                    [(e.customer_ref, ch, int(ok), updated_at) for ch, ok in e.consents.items()],
                )
                self._db.execute("DELETE FROM ble_day_keys WHERE customer_ref = ?", [e.customer_ref])
                self._db.execute("DELETE FROM ble_phones WHERE customer_ref = ?", [e.customer_ref])
                if e.consents_to("ble"):  # nothing BLE of anyone who did not consent to it is kept at all
                    self._db.conn.executemany(
                        "INSERT INTO ble_day_keys (customer_ref, day, day_key) VALUES (?, ?, ?)",
                        [(e.customer_ref, day, key) for day, key in e.decoded_day_keys().items()],
                    )
                    if e.phone_model:
                        self._db.execute(
                            "INSERT INTO ble_phones (customer_ref, phone_model) VALUES (?, ?)",
                            [e.customer_ref, e.phone_model],
                        )
                # Embeddings are kept only while the customer consents to face recognition.
                kept = list(e.face_embeddings) if e.consents_to("face") else []
                self.faces.replace(e.customer_ref, kept, updated_at)

    def get(self, customer_ref: str) -> RosterEntry | None:
        row = self._db.execute(
            "SELECT segments, consent_epoch, loyalty_id, phone_hash, language FROM customers WHERE customer_ref = ?",
            [customer_ref],
        ).fetchone()
        if row is None:
            return None
        consents = dict(
            self._db.execute("SELECT channel, granted FROM consents WHERE customer_ref = ?", [customer_ref]).fetchall()
        )
        day_keys = self._db.execute(
            "SELECT day, day_key FROM ble_day_keys WHERE customer_ref = ?", [customer_ref]
        ).fetchall()
        model = self._db.execute("SELECT phone_model FROM ble_phones WHERE customer_ref = ?", [customer_ref]).fetchone()
        return RosterEntry(
            customer_ref=customer_ref,
            consents={ch: bool(ok) for ch, ok in consents.items()},
            consent_epoch=row[1],
            segments=tuple(json.loads(row[0])),
            loyalty_id=row[2],
            phone_hash=row[3],
            day_keys={day: base64.b64encode(key).decode("ascii") for day, key in day_keys},
            phone_model=model[0] if model else None,
            language=row[4],
        )

    def ble_day_keys(self, days: list[str]) -> dict[str, dict[str, bytes]]:
        """customer_ref → {day: key} for the given days, only of customers whose consent covers BLE now."""
        marks = ",".join("?" * len(days))
        rows = self._db.execute(
            "SELECT k.customer_ref, k.day, k.day_key FROM ble_day_keys k"
            " JOIN consents c ON c.customer_ref = k.customer_ref AND c.channel = 'ble' AND c.granted = 1"
            f" WHERE k.day IN ({marks})",
            days,
        ).fetchall()
        out: dict[str, dict[str, bytes]] = {}
        for ref, day, key in rows:
            out.setdefault(ref, {})[day] = bytes(key)
        return out

    def ble_phone_models(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT customer_ref, phone_model FROM ble_phones").fetchall())

    def prune_day_keys(self, before_day: str) -> int:
        """Forget day keys of days before `before_day` (yyyymmdd): they can no longer make a live token."""
        with self._db.atomic():
            return self._db.execute("DELETE FROM ble_day_keys WHERE day < ?", [before_day]).rowcount

    def fingerprint(self) -> tuple[int, str | None, int, int, int]:
        """Cheap to read; changes whenever customers, their consents (each change bumps the epoch) or their
        day keys change."""
        row = self._db.execute(
            "SELECT (SELECT count(*) FROM customers), (SELECT max(updated_at) FROM customers),"
            " (SELECT total(consent_epoch) FROM customers),"
            " (SELECT count(*) FROM consents WHERE channel = 'ble' AND granted = 1),"
            " (SELECT count(*) FROM ble_day_keys)"
        ).fetchone()
        return (row[0], row[1], int(row[2]), row[3], row[4])

    def find(self, *, loyalty_id: str | None = None, phone_hash: str | None = None) -> str | None:
        """The customer_ref carrying that loyalty id or phone hash, if any."""
        column, value = ("loyalty_id", loyalty_id) if loyalty_id is not None else ("phone_hash", phone_hash)
        if value is None:
            return None
        row = self._db.execute(f"SELECT customer_ref FROM customers WHERE {column} = ?", [value]).fetchone()
        return row[0] if row else None

    def count(self) -> int:
        n: int = self._db.execute("SELECT count(*) FROM customers").fetchone()[0]
        return n
