"""The retailer's phone app and the cloud that signs its check-in tokens, for demo, tests and benchmarks.

`CheckinIssuer` plays the cloud: it holds the private key whose public half the store trusts. `Shoppers`
plays opted-in shoppers who open the app and check in at a touchpoint, over the agent's real HTTP API.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.keys import public_key_b64
from edge_agent.sources.checkin.token import CheckinClaims, issue


class CheckinIssuer:
    def __init__(self, store_id: str, key: Ed25519PrivateKey | None = None, lifetime_s: int = 300):
        self.store_id = store_id
        self.key = key or Ed25519PrivateKey.generate()
        self.lifetime_s = lifetime_s

    @property
    def public_key_b64(self) -> str:
        return public_key_b64(self.key.public_key())

    def token(
        self, customer_ref: str, touchpoint: str, *, now: float | None = None, lifetime_s: int | None = None
    ) -> str:
        issued = int(time.time() if now is None else now)
        claims = CheckinClaims(
            customer_ref=customer_ref,
            touchpoint=touchpoint,
            store=self.store_id,
            issued_at=issued,
            expires_at=issued + (self.lifetime_s if lifetime_s is None else lifetime_s),
            token_id=secrets.token_urlsafe(16),
        )
        return issue(self.key, claims)


async def post_checkin(session: aiohttp.ClientSession, base_url: str, token: str) -> tuple[int, dict[str, Any]]:
    async with session.post(f"{base_url}/api/checkin", json={"token": token}) as resp:
        return resp.status, await resp.json()


class Shoppers:
    """Opted-in shoppers checking in at random touchpoints, a few seconds apart."""

    def __init__(
        self,
        base_url: str,
        issuer: CheckinIssuer,
        customers: Sequence[str],
        touchpoints: Sequence[str],
        *,
        mean_gap_s: float = 2.0,
        seed: int = 7,
    ):
        self.base_url = base_url
        self.issuer = issuer
        self.customers = list(customers)
        self.touchpoints = list(touchpoints)
        self.mean_gap_s = mean_gap_s
        self.rng = random.Random(seed)
        self.outcomes: Counter[str] = Counter()

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                token = self.issuer.token(self.rng.choice(self.customers), self.rng.choice(self.touchpoints))
                try:
                    status, body = await post_checkin(session, self.base_url, token)
                    self.outcomes["accepted" if status == 202 else f"refused:{body.get('error', status)}"] += 1
                except (aiohttp.ClientError, TimeoutError):
                    self.outcomes["errors"] += 1
                await asyncio.sleep(self.rng.expovariate(1 / self.mean_gap_s))
