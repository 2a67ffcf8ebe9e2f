"""Face enrolment at a kiosk with a camera, in a real headless Chromium: the page shows how far the camera got
and what to change, says how it ended, and a Cancel stops it (the camera's video rendered, the real models)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from edge_agent.app import Agent
from simulators.camera import Walker, kiosk_shopper, render
from simulators.checkin_app import CheckinIssuer
from simulators.cloud import CloudSim
from tests.surfaces import seeded, started
from tests.vision.factories import OFFLINE_MQTT, enrolment_config

from .chromium import artifact
from .test_browser_kiosk import kiosk

pytestmark = pytest.mark.asyncio(loop_scope="module")


def store(tmp_path: Path, issuer: CheckinIssuer, models_path: Path, walkers: list[Walker]) -> Agent:
    render(tmp_path / "kiosk.avi", walkers, seconds=2.0, size=(640, 480))
    cloud = CloudSim("127.0.0.1", 1, "store-test")  # only its enrolment key: nothing goes up in these tests
    return seeded(enrolment_config(tmp_path, issuer, models_path, cloud.enrolment_key_b64, OFFLINE_MQTT))


async def agree_to_enrol(browser: Browser, agent: Agent, issuer: CheckinIssuer) -> Page:
    page = await kiosk(browser, agent.url)
    await page.keyboard.type(issuer.token("alice", "kiosk-a"))  # the app's code: proof of the phone
    await page.keyboard.press("Enter")
    await expect(page.locator(".offer").first).to_be_visible()
    await page.click("#nav-privacy")
    await page.locator("li[data-channel=face] .switch").click()
    await page.click("#face-agree")
    return page


async def test_the_page_follows_the_camera_to_a_template_sent(browser, tmp_path, issuer, models_path) -> None:
    async with started(store(tmp_path, issuer, models_path, [kiosk_shopper()])) as agent:
        page = await agree_to_enrol(browser, agent, issuer)
        box = page.locator("#enrolment-box")
        await expect(page.get_by_role("dialog")).to_be_visible()
        await expect(box).to_have_attribute("data-state", "capturing")
        await expect(page.locator("#enrolment-text")).to_contain_text("Look at the camera")
        await page.screenshot(path=artifact("kiosk-enrolment-capturing.png"))
        await expect(box).to_have_attribute("data-state", "sent", timeout=30_000)
        await expect(page.locator("#enrolment-text")).to_have_text(re.compile("sent securely.*No photo was kept"))
        await expect(page.locator("#enrolment-cancel")).to_be_hidden()
        await page.screenshot(path=artifact("kiosk-enrolment-sent.png"))
        await page.click("#enrolment-close")
        await expect(page.get_by_role("dialog")).to_be_hidden()
        await expect(page.locator("#enrolment-note")).to_have_text(re.compile("sent securely"))
        kinds = [e.kind for e in agent.store.outbox.peek("events", 1000) if e.kind.startswith("face_enrolment")]
        assert kinds == ["face_enrolment"]
        await page.close()


async def test_the_page_says_what_to_change_and_cancel_keeps_nothing(browser, tmp_path, issuer, models_path) -> None:
    crowd = [kiosk_shopper(), Walker("hopper", -10, 1e9, 0.72, 0.75)]  # someone right behind her
    async with started(store(tmp_path, issuer, models_path, crowd)) as agent:
        page = await agree_to_enrol(browser, agent, issuer)
        text = page.locator("#enrolment-text")
        await expect(text).to_contain_text("Only you in view, please.", timeout=30_000)
        await page.screenshot(path=artifact("kiosk-enrolment-hint.png"))
        await page.click("#enrolment-cancel")
        await expect(page.locator("#enrolment-box")).to_have_attribute("data-state", "cancelled")
        await expect(text).to_have_text("Enrolment stopped. Nothing of your face was kept.")
        await page.click("#enrolment-close")
        await expect(page.locator("#enrolment-start")).to_be_visible()  # the shopper may try again
        assert agent.store.enrolments.last("alice").reason == "cancelled_by_shopper"
        await page.close()
