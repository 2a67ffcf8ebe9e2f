"""The kiosk in a real headless Chromium: identification by the app's QR (typed by the kiosk's scanner) or
the keypad, personal offers, a claim the till accepts, consent changes that take effect at once, face
enrolment only after explicit consent, and right-to-left layouts in Persian and Hebrew."""

import asyncio
import re

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from edge_agent.store.outbox import DropClass
from simulators.checkin_app import post_checkin
from tests.surfaces import ALICE_LOYALTY, ALICE_PHONE, KIOSK_TOKEN, TILL_TOKEN, seeded, started, surfaces_settings

from .chromium import artifact

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module")
async def agent(tmp_path, issuer):
    async with started(seeded(surfaces_settings(tmp_path, issuer))) as running:
        yield running


async def login(browser: Browser, url: str, path: str, token: str, shot: str | None = None) -> Page:
    """Open a staff page as its operator would: the agent sends us to the sign-in form first."""
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    await page.goto(f"{url}{path}")
    await expect(page).to_have_url(re.compile(r"/login\?"))
    if shot:
        await page.screenshot(path=artifact(shot))
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{url}{path}")
    return page


async def kiosk(browser: Browser, url: str, shot: str | None = None) -> Page:
    page = await login(browser, url, "/kiosk/kiosk-a", KIOSK_TOKEN, shot)
    await expect(page.locator("#welcome")).to_be_visible()
    return page


async def type_number(page: Page, kind: str, number: str, shot: str | None = None) -> None:
    await page.click("#choose-type")
    await page.click(f"#kind-{kind}")
    for digit in re.sub(r"\D", "", number):
        await page.click(f".keypad [data-key='{digit}']")
    if shot:
        await page.screenshot(path=artifact(shot))
    await page.click(".keypad [data-key='ok']")


def outbox_kinds(agent, kind: str) -> list[tuple[int, str]]:
    return agent.store.db.execute(
        "SELECT drop_class, payload FROM outbox WHERE kind = ? ORDER BY seq", [kind]
    ).fetchall()


async def test_kiosk_from_a_qr_scan_to_a_claim_the_till_accepts(browser, agent, issuer):
    page = await kiosk(browser, agent.url, shot="login.png")
    await page.screenshot(path=artifact("kiosk-welcome.png"))
    await page.keyboard.type(issuer.token("alice", "kiosk-a"))  # a 2D scanner in keyboard mode
    await page.keyboard.press("Enter")

    first = page.locator(".offer").first
    await expect(first.locator(".offer-title")).to_have_text("Flat white, half price")
    await expect(first.locator(".offer-kicker")).to_have_text("Just for you")
    await expect(page.locator(".offer")).to_have_count(3)
    await page.screenshot(path=artifact("kiosk-offers.png"))

    await first.locator(".offer-claim").click()
    code_el = page.locator("#claim-code")
    await expect(code_el).to_have_text(re.compile(r"^[2-9A-Z]{4}-[2-9A-Z]{4}$"))
    code = await code_el.inner_text()
    assert await page.evaluate("document.getElementById('claim-qr').naturalWidth") > 0
    await page.screenshot(path=artifact("kiosk-claim.png"))

    claim = agent.store.claims.get(code)
    assert (claim.customer_ref, claim.offer_id, claim.redeemed_at) == ("alice", "flat-white", None)
    assert [row[0] for row in outbox_kinds(agent, "claim")] == [DropClass.NEVER]

    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TILL_TOKEN}"}) as till:
        first_try = await till.post(f"{agent.url}/api/till/redeem", json={"code": code.lower().replace("-", "")})
        assert first_try.status == 200 and (await first_try.json())["offer_id"] == "flat-white"
        again = await till.post(f"{agent.url}/api/till/redeem", json={"code": code})
        assert again.status == 409 and (await again.json())["error"] == "already_redeemed"
    await page.close()


async def test_consent_withdrawn_at_the_kiosk_takes_effect_at_once(browser, agent, issuer):
    screen = await browser.new_page(viewport={"width": 1280, "height": 720})
    await screen.goto(f"{agent.url}/screen/screen-a")
    page = await kiosk(browser, agent.url)
    await type_number(page, "phone", ALICE_PHONE, shot="kiosk-keypad.png")
    await expect(page.locator("#offers")).to_be_visible()
    # identifying at the kiosk is a check-in: the screen beside it greets her with her offer
    await expect(screen.locator("#offer-title")).to_have_text("Flat white, half price")
    await expect(screen.locator("#offer-kicker")).to_have_text(re.compile("just for you", re.I))

    await page.click("#nav-privacy")
    checkin = page.locator("li[data-channel=checkin] .switch")
    await expect(checkin).to_have_attribute("aria-checked", "true")
    await checkin.click()
    await expect(checkin).to_have_attribute("aria-checked", "false")
    await page.screenshot(path=artifact("kiosk-privacy.png"))

    # no longer identified by check-in: the screen turns to content for anyone, the app is refused
    await expect(screen.locator("#offer-title")).to_have_text("Butter croissant + any coffee")
    await expect(screen.locator("#offer-kicker")).not_to_have_text(re.compile("just for you", re.I))
    async with aiohttp.ClientSession() as http:
        status, body = await post_checkin(http, agent.url, issuer.token("alice", "screen-a"))
    assert (status, body["error"]) == (403, "no_consent")
    assert not agent.store.roster.get("alice").consents_to("checkin")
    [(drop_class, payload)] = outbox_kinds(agent, "consent")
    assert drop_class == DropClass.NEVER and '"granted": false' in payload and '"channel": "checkin"' in payload

    # withdrawing personalisation: the kiosk's own list loses the members' offer straight away
    await page.locator("li[data-channel=personalisation] .switch").click()
    await expect(page.locator("li[data-channel=personalisation] .switch")).to_have_attribute("aria-checked", "false")
    await page.click("#nav-offers")
    await expect(page.locator(".offer")).to_have_count(2)
    await expect(page.locator(".offer[data-offer-id=flat-white]")).to_have_count(0)
    await page.close()
    await screen.close()


async def test_a_typed_number_cannot_turn_on_recognition(browser, agent):
    page = await kiosk(browser, agent.url)
    await type_number(page, "loyalty", ALICE_LOYALTY)
    await page.click("#nav-privacy")
    for channel in ("ble", "face"):
        row = page.locator(f"li[data-channel={channel}]")
        await expect(row.locator(".switch")).to_be_disabled()
        await expect(row.locator(".channel-text")).to_contain_text("scan the code in the app")
    await expect(page.locator("li[data-channel=personalisation] .switch")).to_be_enabled()
    await page.screenshot(path=artifact("kiosk-typed-number-privacy.png"))
    entry = agent.store.roster.get("alice")
    assert not entry.consents_to("ble") and not entry.consents_to("face")
    await page.close()


async def test_face_enrolment_only_after_explicit_consent_with_an_alternative(browser, agent, issuer):
    page = await kiosk(browser, agent.url)
    await page.keyboard.type(issuer.token("alice", "kiosk-a"))  # the app's code: proof of the phone
    await page.keyboard.press("Enter")
    await expect(page.locator(".offer").first).to_be_visible()
    await page.click("#nav-privacy")
    face = page.locator("li[data-channel=face] .switch")
    await face.click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#face-decline")).to_have_text(re.compile("app or my card"))
    await page.screenshot(path=artifact("kiosk-face-consent.png"))
    await page.click("#face-decline")
    await expect(dialog).to_be_hidden()
    await expect(face).to_have_attribute("aria-checked", "false")
    assert not agent.store.roster.get("alice").consents_to("face")
    assert agent.store.enrolments.last("alice") is None

    await face.click()
    await page.click("#face-agree")
    await expect(face).to_have_attribute("aria-checked", "true")
    # This store's kiosk has no camera: the consent is kept and the page says where to enrol instead.
    await expect(page.locator("#enrolment-note")).to_have_text(re.compile("no camera for enrolment"))
    assert agent.store.roster.get("alice").consents_to("face")
    assert agent.store.enrolments.last("alice") is None
    await page.close()


@pytest.mark.parametrize(
    ("lang", "label", "heading"), [("fa", "فارسی", "پیشنهادهای شما"), ("he", "עברית", "המבצעים שלכם")]
)
async def test_persian_and_hebrew_lay_the_kiosk_out_right_to_left(browser, agent, lang, label, heading):
    page = await kiosk(browser, agent.url)
    await page.get_by_role("button", name=label).click()
    await expect(page.locator("html")).to_have_attribute("dir", "rtl")
    await expect(page.locator("html")).to_have_attribute("lang", lang)
    brand = await page.locator(".brandmark").bounding_box()
    languages = await page.locator("#languages").bounding_box()
    assert brand["x"] > languages["x"], "the brand should sit on the right, the language buttons on the left"
    scan, typed = await page.locator(".choice.scan").bounding_box(), await page.locator("#choose-type").bounding_box()
    assert scan["x"] > typed["x"], "the first choice should be on the right"
    await page.screenshot(path=artifact(f"kiosk-{lang}-welcome.png"))

    await type_number(page, "loyalty", ALICE_LOYALTY)
    await expect(page.locator("#offers-title")).to_have_text(heading)
    card = await page.locator(".offer .offer-title").first.bounding_box()
    price = await page.locator(".offer .offer-price").first.bounding_box()
    assert price["x"] > card["x"] + card["width"] / 2, "the price should start from the right"
    direction = "e => getComputedStyle(e).direction"
    assert await page.locator("#offers-title").evaluate(direction) == "rtl"
    # the offer's own text keeps its own direction (this one is English) inside the right-to-left page
    assert await page.locator(".offer-title").first.evaluate(direction) == "ltr"
    await page.screenshot(path=artifact(f"kiosk-{lang}-offers.png"))
    await page.close()


async def test_the_kiosk_list_is_proof_of_play_and_a_claim_converts_via_its_decision(browser, agent, issuer):
    from datetime import UTC, datetime

    from edge_agent.events import Purchase, PurchaseLine, WallTime

    page = await kiosk(browser, agent.url)
    await page.keyboard.type(issuer.token("alice", "kiosk-a"))
    await page.keyboard.press("Enter")
    await expect(page.locator(".offer")).to_have_count(3)

    def kiosk_rows(table):
        return agent.store.db.execute(
            f"SELECT offer_id, customer_ref FROM {table} WHERE touchpoint = 'kiosk-a' ORDER BY offer_id"
        ).fetchall()

    # the page acknowledged what it displayed: one impression per listed offer, each of a logged decision
    async with asyncio.timeout(15):
        while len(kiosk_rows("impressions")) < 3:
            await asyncio.sleep(0.05)
    assert {r[1] for r in kiosk_rows("impressions")} == {"alice"}
    assert set(kiosk_rows("impressions")) <= set(kiosk_rows("decisions"))
    arms = agent.store.db.execute("SELECT DISTINCT arm FROM decisions WHERE touchpoint = 'kiosk-a'").fetchall()
    assert arms and all(arm for (arm,) in arms)
    # the list counts no frequency cap, also when the caps are rebuilt after a restart
    since = agent.store.db.execute("SELECT min(at) FROM decisions").fetchone()[0]
    for_caps = [row for row in agent.store.decisions.shown_since(since) if row[0] == "kiosk-a"]
    assert len(for_caps) == len(kiosk_rows("decisions")) - 3

    await page.locator(".offer").first.locator(".offer-claim").click()
    await expect(page.locator("#claim-code")).to_have_text(re.compile(r"^[2-9A-Z]{4}-[2-9A-Z]{4}$"))
    code = await page.locator("#claim-code").inner_text()
    claim = agent.store.claims.get(code)
    decision = agent.store.decisions.get(claim.decision_id)
    assert (decision.touchpoint, decision.offer_id, decision.customer_ref) == ("kiosk-a", claim.offer_id, "alice")
    sku = agent.store.offers.get(claim.offer_id).sku
    wall = WallTime(datetime.now(UTC), True)
    purchase = Purchase("txn-1", "till-1", None, (PurchaseLine(sku or "any", 1, claim_code=code),), wall)
    [conversion] = agent.attribution.on_purchase(purchase)
    assert (conversion.via, conversion.decision_id) == ("claim", claim.decision_id)
    await page.close()
