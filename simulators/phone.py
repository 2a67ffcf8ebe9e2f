"""Reference phone side of the rotating BLE token, and the cloud that hands out day keys.

A retailer's app does what `Phone.advert` does: derive today's key, encrypt the interval number, advertise
it as manufacturer data. `python -m simulators.phone --secret HEX --chain acme --at UNIX` prints every
intermediate value as JSON, which is how the published test vectors (docs/protocols/ble-token.md) were made.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
from dataclasses import dataclass
from typing import TypedDict, Unpack

from edge_agent.sources.ble import frames, reports, tokens
from edge_agent.store.roster import RosterEntry


class RosterFields(TypedDict, total=False):
    """The rest of a roster entry, as `RosterEntry` takes it."""

    consent_epoch: int
    segments: tuple[str, ...]
    loyalty_id: str | None
    phone_hash: str | None
    phone_model: str | None


@dataclass(frozen=True)
class Phone:
    """One opted-in shopper's app: it holds the customer secret (provisioned by the cloud at sign-up)."""

    customer_ref: str
    secret: bytes
    chain_id: str
    company_id: int = tokens.TEST_COMPANY_ID

    def token(self, unix_seconds: float) -> bytes:
        j = tokens.interval_of(unix_seconds)
        return tokens.token(tokens.day_key(self.secret, self.chain_id, tokens.day_of(j)), j)

    def advert(self, unix_seconds: float) -> dict[int, bytes]:
        """The manufacturer data of the advert to broadcast now: {company id: 0x53 0x01 + token}."""
        return {self.company_id: tokens.advert_payload(self.token(unix_seconds))}

    def ibeacon_advert(self, unix_seconds: float, measured_power: int = -59) -> dict[int, bytes]:
        """The same token in iBeacon shape: {Apple: 0x02 0x15 + token + major/minor marker + power at 1 m}."""
        return {frames.APPLE: frames.ibeacon_payload(self.token(unix_seconds), measured_power)}

    def report(self, at: int, beacons: tuple[reports.HeardBeacon, ...], nonce: bytes | None = None) -> bytes:
        """What the app sends when it heard the store's beacons (an iPhone's way in): reports.py's JSON."""
        j = tokens.interval_of(at)
        day_key = tokens.day_key(self.secret, self.chain_id, tokens.day_of(j))
        return reports.make(day_key, tokens.token(day_key, j), at, nonce or os.urandom(reports.NONCE_BYTES), beacons)

    def day_keys(self, unix_seconds: float, before: int = 1, after: int = 1) -> dict[str, str]:
        """What the cloud puts in this customer's roster entry: base64 day keys around a date."""
        return {
            day: base64.b64encode(tokens.day_key(self.secret, self.chain_id, day)).decode("ascii")
            for day in tokens.days_around(unix_seconds, before, after)
        }

    def roster_entry(
        self, unix_seconds: float, consents: dict[str, bool], **fields: Unpack[RosterFields]
    ) -> RosterEntry:
        return RosterEntry(
            customer_ref=self.customer_ref, consents=consents, day_keys=self.day_keys(unix_seconds), **fields
        )


def phone_for(customer_ref: str, chain_id: str, seed: str = "test") -> Phone:
    """A phone whose secret is derived from a name: repeatable in tests, simulators and the demo."""
    secret = hashlib.sha256(f"{seed}:{customer_ref}".encode()).digest()
    return Phone(customer_ref, secret, chain_id)


def vector(secret: bytes, chain_id: str, unix_seconds: int, company_id: int) -> dict[str, object]:
    j = tokens.interval_of(unix_seconds)
    day = tokens.day_of(j)
    dk = tokens.day_key(secret, chain_id, day)
    tok = tokens.token(dk, j)
    return {
        "secret": secret.hex(),
        "chain_id": chain_id,
        "unix_seconds": unix_seconds,
        "interval": j,
        "day": day,
        "day_key": dk.hex(),
        "rpik": tokens.rpik(dk).hex(),
        "token": tok.hex(),
        "manufacturer_data": {"company_id": f"0x{company_id:04X}", "value": tokens.advert_payload(tok).hex()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulators.phone", description=__doc__)
    parser.add_argument("--secret", required=True, help="customer secret, hex")
    parser.add_argument("--chain", required=True, help="chain id (the day-key salt)")
    parser.add_argument("--at", required=True, type=int, help="unix seconds")
    parser.add_argument("--company-id", type=lambda s: int(s, 0), default=tokens.TEST_COMPANY_ID)
    args = parser.parse_args(argv)
    print(json.dumps(vector(bytes.fromhex(args.secret), args.chain, args.at, args.company_id), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
