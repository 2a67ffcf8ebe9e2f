"""The demo store: its config, offers, opted-in customers and the offer bundle with a holdout."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..store.bundles import OfferBundle
from ..store.offers import Offer
from ..store.policy import Holdout
from ..store.roster import RosterEntry, phone_hash

ZONES = [
    {"id": "entrance", "name": "Entrance"},
    {"id": "bakery", "name": "Bakery"},
    {"id": "dairy", "name": "Dairy"},
]
TOUCHPOINTS = [
    {"id": "screen-entrance", "kind": "screen", "zone": "entrance", "name": "Entrance screen"},
    {"id": "screen-bakery", "kind": "screen", "zone": "bakery", "name": "Bakery screen"},
    {"id": "kiosk-entrance", "kind": "kiosk", "zone": "entrance", "name": "Entrance kiosk"},
]


DEMO_PHONE_SALT = "demo-chain-phone-salt"


def demo_config(
    workdir: Path, port: int, checkin_public_key: str, staff_token: str = "", ble: bool = False
) -> dict[str, Any]:
    """The demo store; with a staff token the kiosk, associate tablet and dashboard open with it; with
    `ble`, this host's adapter (the simulated BlueZ) hears the entrance and advertises its zone beacon, and the
    phones that cannot advertise (iPhones) report the zone beacons they hear to the report listener (on a free
    port: the demo prints it). Its till is a pty behind `workdir/ttyTILL` printing ESC/POS receipts, which a
    receipt tap reads with `workdir/till-profile.toml`."""
    from simulators.shoppers import BEACON_KEY, BEACON_MAJOR, BEACON_POWER_DBM, BEACON_UUID

    key_file = workdir / "zone-beacon.key"
    if ble and not key_file.exists():
        key_file.write_text(BEACON_KEY.hex() + "\n", encoding="ascii")  # the simulated phones' store
        key_file.chmod(0o600)
    return {
        "sources": {"checkin": True, "ble": ble, "ble_reports": ble, "pos": True},
        "ble": {
            "receivers": [{"id": "edge-demo", "zone": "entrance"}],
            "stall_s": 30.0,
            "zone_beacon": {
                "advertise": ble,
                "uuid": BEACON_UUID,
                "major": BEACON_MAJOR,
                "key_file": str(key_file),
                "measured_power_dbm": BEACON_POWER_DBM,
            }
            if ble
            else {},
        },
        "surfaces": {
            "auth": {f"{role}_tokens": [staff_token] for role in ("kiosk", "associate", "dashboard", "till", "ops")}
            if staff_token
            else {},
            "kiosk": {"phone_salt": DEMO_PHONE_SALT},
        },
        "store": {"id": "demo-store", "chain_id": "demo-chain", "device_id": "edge-demo"},
        "zones": ZONES,
        "touchpoints": TOUCHPOINTS,
        "database": {"path": str(workdir / "edge-agent.db")},
        "http": {
            "host": "127.0.0.1",
            "port": port,
            # every simulated phone posts from this host, so one address carries the whole floor's reports
            **(
                {"report_listen": f"127.0.0.1:{port + 1 if port else 0}", "report_rate_per_minute": 100_000}
                if ble
                else {}
            ),
        },
        "checkin": {"public_keys": [checkin_public_key]},
        "pos": {"port": str(workdir / "ttyTILL"), "profile": str(workdir / "till-profile.toml"), "reconnect_s": 1.0},
        "presence": {"hold_down_s": 20.0, "checkin_hold_s": 45.0, "dwell_interval_s": 10.0},
        "signage": {
            "rotate_s": 15.0,
            "idle": [
                {
                    "title": "Welcome to the demo store",
                    "text": "Check in with the app for offers made for you",
                },
                {
                    "title": "Fresh every morning",
                    "text": "Bread baked in store from 7 am",
                    "image": "/static/demo-croissant.svg",
                },
            ],
        },
    }


def demo_offers(now: datetime) -> list[Offer]:
    valid_from, valid_to = now - timedelta(days=1), now + timedelta(days=7)
    return [
        Offer(
            offer_id="croissant-3for2",
            sku="croissant",
            title="Croissants: 3 for 2",
            body="Butter croissants, baked this morning.",
            price_cents=249,
            currency="EUR",
            image="/static/demo-croissant.svg",
            zones=("bakery", "entrance"),
            priority=2.0,
            valid_from=valid_from,
            valid_to=valid_to,
        ),
        Offer(
            offer_id="coffee-loyalty",
            sku="coffee",
            title="Your coffee, half price",
            body="For members: any hot drink today.",
            price_cents=150,
            currency="EUR",
            image="/static/demo-coffee.svg",
            audience="personalised",
            segments=("coffee-lover",),
            priority=1.5,
            valid_from=valid_from,
            valid_to=valid_to,
        ),
        Offer(
            offer_id="milk-organic",
            sku="milk-1l",
            title="Organic milk 1 l",
            body="From farms within 50 km.",
            price_cents=119,
            currency="EUR",
            image="/static/demo-milk.svg",
            zones=("dairy", "entrance"),
            priority=1.0,
            stock=40,
            valid_from=valid_from,
            valid_to=valid_to,
        ),
        Offer(
            offer_id="apples-family",
            sku="apples-2kg",
            title="Family bag of apples",
            body="2 kg of crisp apples for the week.",
            price_cents=299,
            currency="EUR",
            image="/static/demo-apples.svg",
            audience="personalised",
            segments=("family", "healthy"),
            priority=1.0,
            valid_from=valid_from,
            valid_to=valid_to,
        ),
        Offer(
            offer_id="bread-evening",
            sku="bread",
            title="Evening bread deal",
            body="Any loaf after 6 pm.",
            price_cents=199,
            currency="EUR",
            image="/static/demo-croissant.svg",
            zones=("bakery",),
            audience="personalised",
            segments=("bread",),
            priority=0.5,
            valid_from=valid_from,
            valid_to=valid_to,
        ),
    ]


def demo_roster() -> list[RosterEntry]:
    segments = [("coffee-lover",), ("family", "healthy"), ("bread",), ("coffee-lover", "family"), ()]
    return [
        RosterEntry(
            customer_ref=f"cust-{i:03d}",
            consents={"checkin": True, "personalisation": i % 4 != 3, "assisted": i % 3 == 0},
            segments=segments[i % len(segments)],
            loyalty_id=f"{40000000 + i}",  # at the kiosk: loyalty number 40000001 … 40000012
            phone_hash=phone_hash(DEMO_PHONE_SALT, f"+1555010{i:04d}"),  # or phone +1 555 010 0001 …
        )
        for i in range(1, 13)
    ]


def demo_bundle(now: datetime) -> OfferBundle:
    """The demo's offers with a 25 % global holdout, so the report can show uplift."""
    return OfferBundle(version=1, issued_at=now, offers=demo_offers(now), holdout=Holdout(fraction=0.25, seed="demo"))
