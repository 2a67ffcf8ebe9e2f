"""The authenticated surfaces over real HTTP (no browser): sign-in, refusals with reasons, kiosk sessions,
rate limits, claims and consent records; plus the pure parts (phone hashes, playlists, config checks)."""

import time
from datetime import datetime

import aiohttp
import pytest

from edge_agent.app import Agent
from edge_agent.clock import Clock
from edge_agent.config import ConfigError, PlaylistItem, from_dict
from edge_agent.config import Playlist as PlaylistConfig
from edge_agent.signage import playlists
from edge_agent.store.claims import normalise_code
from edge_agent.store.roster import phone_hash
from tests.factories import config_dict, seed
from tests.surfaces import (
    ALICE_LOYALTY,
    ASSOCIATE_TOKEN,
    DASHBOARD_TOKEN,
    KIOSK_TOKEN,
    OFFERS,
    ROSTER,
    member,
    seeded,
    surfaces_settings,
)


@pytest.fixture
async def agent(tmp_path, issuer):
    agent = seeded(surfaces_settings(tmp_path, issuer))
    agent.store.roster.upsert([*ROSTER, member("carol", loyalty="40055555", checkin=False)], updated_at="2026-01-01")
    await agent.start()
    yield agent
    await agent.stop()


def kiosk_client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(headers={"Authorization": f"Bearer {KIOSK_TOKEN}"})


async def test_staff_surfaces_need_their_own_sign_in_and_screens_do_not(agent):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:  # unsafe: an IP host
        for path in ("/kiosk/kiosk-a", "/associate", "/dashboard"):
            resp = await http.get(f"{agent.url}{path}", allow_redirects=False)
            assert resp.status == 303 and resp.headers["Location"].startswith("/login?role=")
        for path in ("/api/associate", "/api/dashboard", "/api/kiosk/kiosk-a/session"):
            resp = await http.get(f"{agent.url}{path}")
            assert resp.status == 401 and (await resp.json())["error"] == "unauthorised"
        assert (await http.get(f"{agent.url}/screen/screen-a")).status == 200

        bad = await http.post(
            f"{agent.url}/login",
            data={"role": "dashboard", "token": "wrong" * 4, "next": "/dashboard"},
            allow_redirects=False,
        )
        assert "failed=1" in bad.headers["Location"]
        good = await http.post(
            f"{agent.url}/login",
            data={"role": "associate", "token": ASSOCIATE_TOKEN, "next": "//evil.example/"},
            allow_redirects=False,
        )
        assert good.status == 303 and good.headers["Location"] == "/"  # no open redirect
        assert (await http.get(f"{agent.url}/api/associate")).status == 200
        assert (await http.get(f"{agent.url}/api/dashboard")).status == 401  # one role does not open another

    forged = {"ea_dashboard": "dashboard.99999999999.00ff"}
    async with aiohttp.ClientSession(cookies=forged) as http:
        assert (await http.get(f"{agent.url}/api/dashboard")).status == 401
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {DASHBOARD_TOKEN}"}) as http:
        resp = await http.get(f"{agent.url}/api/dashboard")
        assert resp.status == 200
        assert (await resp.json())["sync"]["uplink"] == "not configured"  # this store has no [mqtt]


async def test_a_role_without_tokens_is_switched_off(running, settings):
    agent = await running(settings)  # the default test config has no surfaces.auth tokens
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KIOSK_TOKEN}"}) as http:
        resp = await http.get(f"{agent.url}/api/kiosk/kiosk-a/session")
        assert resp.status == 403 and "kiosk_tokens" in (await resp.json())["reason"]


async def test_kiosk_identification_refusals_say_why_and_are_rate_limited(agent):
    url = f"{agent.url}/api/kiosk/kiosk-a/identify"
    async with kiosk_client() as http:
        cases = [
            ({"method": "loyalty"}, 400, "malformed"),
            ({"method": "iris", "value": "1"}, 400, "malformed"),
            ({"method": "loyalty", "value": "12"}, 400, "malformed"),
            ({"method": "qr", "value": "SEA1.garbage"}, 400, "malformed"),
            ({"method": "loyalty", "value": "40055555"}, 404, "not_found"),  # carol: no check-in consent
            ({"method": "phone", "value": "+1 555 0100 999"}, 404, "not_found"),
        ]
        for body, status, code in cases:
            resp = await http.post(url, json=body)
            assert (resp.status, (await resp.json())["error"]) == (status, code), body
        for _ in range(3):
            await http.post(url, json={"method": "loyalty", "value": "99999999"})
        locked = await http.post(url, json={"method": "loyalty", "value": ALICE_LOYALTY})
        assert locked.status == 429 and (await locked.json())["error"] == "locked"
        other_kiosk = await http.post(
            f"{agent.url}/api/kiosk/screen-a/identify", json={"method": "loyalty", "value": "1"}
        )
        assert other_kiosk.status == 404 and (await other_kiosk.json())["error"] == "unknown_kiosk"


async def test_kiosk_session_claims_and_consent(agent, issuer):
    base = f"{agent.url}/api/kiosk/kiosk-a"
    async with kiosk_client() as http:
        resp = await http.post(f"{base}/identify", json={"method": "loyalty", "value": ALICE_LOYALTY})
        assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
        body = await resp.json()
        assert "alice" not in str(body)  # the page never learns the customer_ref
        session = {"X-Kiosk-Session": body["session"]}
        assert body["offers"][0]["offer_id"] == "flat-white"

        assert (await http.post(f"{base}/claim", json={"offer_id": "flat-white"})).status == 401
        nope = await http.post(f"{base}/claim", json={"offer_id": "caviar"}, headers=session)
        assert (nope.status, (await nope.json())["error"]) == (404, "not_offered")
        first = await (await http.post(f"{base}/claim", json={"offer_id": "flat-white"}, headers=session)).json()
        again = await (await http.post(f"{base}/claim", json={"offer_id": "flat-white"}, headers=session)).json()
        assert first["code"] == again["code"] and normalise_code(first["code"]) == first["code"]
        assert first["qr"].startswith("data:image/svg+xml")

        bad = await http.post(f"{base}/consent", json={"channel": "telepathy", "granted": True}, headers=session)
        assert bad.status == 400
        epoch = agent.store.roster.get("alice").consent_epoch
        assert body["app_proven"] is False  # a typed number: anyone could have typed it
        for channel in ("ble", "face"):
            typed = await http.post(f"{base}/consent", json={"channel": channel, "granted": True}, headers=session)
            assert (typed.status, (await typed.json())["error"]) == (403, "app_needed")
        enrol = await http.post(f"{base}/face", json={"agree": True}, headers=session)
        assert (enrol.status, (await enrol.json())["error"]) == (403, "app_needed")
        entry = agent.store.roster.get("alice")
        assert entry.consent_epoch == epoch and not entry.consents_to("ble") and not entry.consents_to("face")
        assert agent.store.enrolments.last("alice") is None
        off = await http.post(f"{base}/consent", json={"channel": "personalisation", "granted": False}, headers=session)
        assert off.status == 200 and (await off.json())["consents"]["personalisation"] is False  # withdrawing is fine

        scanned = await http.post(f"{base}/identify", json={"method": "qr", "value": issuer.token("alice", "kiosk-a")})
        app = await scanned.json()
        assert scanned.status == 200 and app["app_proven"] is True
        session = {"X-Kiosk-Session": app["session"]}
        ok = await http.post(f"{base}/consent", json={"channel": "ble", "granted": True}, headers=session)
        assert ok.status == 200 and (await ok.json())["consents"]["ble"] is True
        assert agent.store.roster.get("alice").consent_epoch == epoch + 2
        face = await http.post(f"{base}/face", json={"agree": True}, headers=session)
        assert (face.status, (await face.json())["error"]) == (409, "not_offered")  # no camera on this host

        # the next shopper at the same kiosk ends the last one's session
        await http.post(f"{base}/identify", json={"method": "loyalty", "value": "40099999"})
        assert (await http.get(f"{base}/session", headers=session)).status == 401

    # erasure removes the shopper's claims with them
    agent.store.db.execute("DELETE FROM customers WHERE customer_ref = 'alice'")
    assert agent.store.claims.get(first["code"]) is None


def test_phone_numbers_are_compared_as_the_rosters_salted_hash():
    same = {phone_hash("s", n) for n in ("+44 7700 900123", "0044-7700-900123", "447700900123", "(44) 7700.900123")}
    assert len(same) == 1 and len(same.pop()) == 64
    assert phone_hash("t", "+44 7700 900123") != phone_hash("s", "+44 7700 900123")
    assert phone_hash("s", "12345") is None and phone_hash("s", "call me maybe") is None


def test_the_playlist_for_the_time_of_day():
    item = PlaylistItem(title="x")
    breakfast = PlaylistConfig(id="breakfast", start="06:00", end="11:00", items=[item])
    weekend = PlaylistConfig(id="weekend", days=["sat", "sun"], items=[item], touchpoints=["screen-a"])
    rules = [breakfast, weekend]
    monday_9, monday_12, saturday_12 = datetime(2026, 11, 23, 9), datetime(2026, 11, 23, 12), datetime(2026, 11, 28, 12)
    assert playlists.active(rules, "screen-a", monday_9) is breakfast
    assert playlists.active(rules, "screen-a", monday_12) is None
    assert playlists.active(rules, "screen-a", saturday_12) is weekend
    assert playlists.active(rules, "screen-b", saturday_12) is None


def test_surfaces_config_errors_name_the_key(tmp_path, issuer):
    data = config_dict(tmp_path, issuer)
    data["store"]["timezone"] = "Mars/Olympus"
    data["surfaces"] = {
        "playlists": [
            {"id": "p", "touchpoints": ["nowhere"], "start": "12:00", "end": "09:00", "items": [{"title": "t"}]}
        ],
        "signs": [{"id": "s", "touchpoint": "screen-a", "port": "/dev/ttyUSB0", "profile": "led-line-2x20"}],
        "auth": {"kiosk_tokens": ["short"]},
    }
    with pytest.raises(ConfigError) as info:
        from_dict(data)
    keys = {p.key for p in info.value.problems}
    assert {"store.timezone", "surfaces.auth.kiosk_tokens[0]"} <= keys
    data["store"]["timezone"] = "Europe/Berlin"
    data["surfaces"]["auth"] = {}
    with pytest.raises(ConfigError) as info:
        from_dict(data)
    keys = {p.key for p in info.value.problems}
    assert keys == {"surfaces.playlists[0].touchpoints[0]", "surfaces.playlists[0].end", "surfaces.signs[0].touchpoint"}


async def test_a_device_in_use_stays_signed_in(agent):
    fresh = agent.auth.session("dashboard")
    aging = agent.auth.session("dashboard", now=time.time() - 0.75 * agent.settings.surfaces.auth.session_s)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        resp = await http.get(f"{agent.url}/api/dashboard", cookies={"ea_dashboard": fresh})
        assert resp.status == 200 and "ea_dashboard" not in resp.cookies
        resp = await http.get(f"{agent.url}/api/dashboard", cookies={"ea_dashboard": aging})
        assert resp.status == 200
        renewed = resp.cookies["ea_dashboard"]
        assert int(renewed.value.split(".")[1]) > int(aging.split(".")[1]) and renewed["httponly"]


class SteppedClock(Clock):
    """Real time plus a step the test adds, for timeouts without sleeping."""

    def __init__(self):
        super().__init__()
        self.step = 0.0

    def mono(self) -> float:
        return super().mono() + self.step


async def test_a_kiosk_session_ends_after_inactivity(tmp_path, issuer):
    clock = SteppedClock()
    agent = Agent(surfaces_settings(tmp_path, issuer), clock=clock)
    seed(agent, offers=OFFERS, roster=ROSTER)
    await agent.start()
    try:
        base = f"{agent.url}/api/kiosk/kiosk-a"
        async with kiosk_client() as http:
            body = await (
                await http.post(f"{base}/identify", json={"method": "loyalty", "value": ALICE_LOYALTY})
            ).json()
            session = {"X-Kiosk-Session": body["session"]}
            clock.step += 100  # a touch within the 120 s keeps it alive
            assert (await http.get(f"{base}/session", headers=session)).status == 200
            clock.step += 100
            assert (await http.get(f"{base}/session", headers=session)).status == 200
            clock.step += 121
            gone = await http.get(f"{base}/session", headers=session)
            assert gone.status == 401 and (await gone.json())["error"] == "no_session"
            assert agent.kiosk.active() == 0
    finally:
        await agent.stop()
