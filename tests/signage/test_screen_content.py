"""Screen content from the cloud: an offer bundle's playlists, campaigns and layouts take the place of the config's
the moment the bundle is applied — the screens are sent their new loop and layout, and their plays are recorded
under the bundle's campaigns — and a bundle whose screen content does not fit this store is refused with why."""

import asyncio

import aiohttp

from simulators.cloud import offer_bundle
from tests.factories import DEVICE, mqtt_settings, offer, paired_screen

SCREENS = {
    "playlists": [
        {
            "id": "winter",
            "layout": "split",
            "items": [
                {"id": "soup", "title": "Soup of the day", "campaign": "brand-s", "duration_s": 6},
                {"id": "tea", "title": "Tea", "duration_s": 6},
            ],
        }
    ],
    "campaigns": [{"id": "brand-s", "share": 0.5, "start": "2026-01-01"}],
    "layouts": [
        {
            "id": "split",
            "regions": [
                {"id": "main", "kind": "loop", "width": 70},
                {"id": "side", "kind": "offer", "x": 70, "width": 30},
            ],
        }
    ],
}


async def test_the_bundles_screen_content_replaces_the_configs_and_a_misfit_is_refused(
    tmp_path, issuer, broker, cloud, running
):
    settings = mqtt_settings(tmp_path, issuer, broker, cloud)
    agent = await running(settings, seeded=False)
    await cloud.wait_for(lambda: cloud.status.get(DEVICE) == "online")
    async with aiohttp.ClientSession() as http:
        ws = await paired_screen(http, agent, "screen-b")
        hello = await ws.receive_json()
        assert hello["layout"]["id"] == "full-screen" and [i["id"] for i in hello["idle"]] == ["idle.1"]

        await cloud.publish_offers({**offer_bundle(1, [offer("welcome")]), "screens": SCREENS})
        frame = await ws.receive_json()
        while frame["type"] != "playlist":
            frame = await ws.receive_json()
        assert frame["layout"]["id"] == "split" and [r["kind"] for r in frame["layout"]["regions"]] == ["loop", "offer"]
        assert {i["id"] for i in frame["idle"]} == {"soup", "tea"}
        aired = {i["id"]: 0.0 for i in frame["idle"]}
        for item in frame["idle"]:
            aired[item["id"]] += item["duration_s"]
        assert aired["soup"] / sum(aired.values()) == 0.5  # the bundle's campaign: half the loop
        await ws.send_json(
            {
                "type": "played", "play_id": "p1", "item": "soup", "started_at": "2026-12-05T10:00:00Z",
                "ended_at": "2026-12-05T10:00:06Z", "completed": True,
            }
        )  # fmt: skip
        reply = await ws.receive_json()
        while reply["type"] != "play_recorded":
            reply = await ws.receive_json()
        assert agent.store.db.execute("SELECT campaign FROM plays").fetchall() == [("brand-s",)]

        # a bundle for another store's screens: refused, with the reason; the content in force stays
        misfit = {**SCREENS, "campaigns": [{"id": "brand-s", "share": 0.5, "touchpoints": ["screen-z"]}]}
        await cloud.publish_offers({**offer_bundle(2, [offer("welcome")]), "screens": misfit})
        result = await cloud.wait_for(
            lambda: next((r for r in cloud.of_kind("bundle_result") if r.get("version") == 2), None)
        )
        assert result["status"] == "rejected" and result["code"] == "bad_screens"
        assert "surfaces.campaigns[0].touchpoints[0]: got 'screen-z', expected a touchpoint id" in result["reason"]
        await asyncio.sleep(0.2)
        assert {i["id"] for i in agent.hub.idle_items("screen-b")} == {"soup", "tea"}

        # a bundle without screen content: the config's playlists play again
        await cloud.publish_offers(offer_bundle(3, [offer("welcome")]))
        await cloud.wait_for(lambda: agent.store.bundle_versions.current("offers") == 3)
        assert [i["id"] for i in agent.hub.idle_items("screen-b")] == ["idle.1"]
        await ws.close()
