"""Serial signs: profiles are validated, frames follow the profile, and the agent drives a simulated sign
over a real pty with pyserial; the sign's ACK becomes proof of play, NAKs are retried."""

import asyncio
import os
import subprocess
import sys
import tomllib
import tty

import aiohttp
import pytest
import tomli_w

from edge_agent.app import Agent
from edge_agent.config import from_dict
from edge_agent.profiles import firmware_dir
from edge_agent.signage.sign_profile import ProfileError, load, parse
from simulators.checkin_app import post_checkin
from simulators.pole_display import SimulatedPoleDisplay
from simulators.serial_sign import SimulatedSign
from tests.factories import config_dict, customer, offer, seed

PROFILE = "led-line-2x20"


def test_every_shipped_profile_is_valid():
    names = sorted(p.stem for p in (firmware_dir() / "signs").glob("*.toml"))
    assert PROFILE in names
    for name in names:
        load(name)


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"serial": {"baudrate": 12345}}, "serial.baudrate"),
        ({"frame": {"checksum": "crc99"}}, "frame.checksum"),
        ({"text": {"columns": 2}}, "text.columns"),
        ({"frame": {"bogus": 1}}, "frame.bogus"),
    ],
)
def test_a_bad_profile_is_refused_naming_the_key(change, key):
    data = tomllib.loads((firmware_dir() / "signs" / f"{PROFILE}.toml").read_text())
    for section, values in change.items():
        data[section] = {**data[section], **values}
    with pytest.raises(ProfileError, match=key.replace(".", r"\.")):
        parse(data, source="test.toml")


def test_frames_fit_the_sign_and_carry_the_checksum():
    profile = load(PROFILE)
    frame = profile.text_frame(["Café crème à 2 €, très bon et chaud", "EUR 2.00", "a third line"])
    assert frame[0] == 0x02 and frame[-3] == 0x03
    body = frame[1:-2]
    assert frame[-2:] == profile.checksum(body)
    line1, line2 = body[3:-1].split(b"\r")
    assert line1 == b"Cafe creme a 2 , tres"[:20] and len(line1) <= 20
    assert line2 == b"EUR 2.00"


async def _wait_for(predicate, timeout=15.0):
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


async def test_agent_drives_a_simulated_sign_over_a_pty_and_records_proof_of_play(tmp_path, issuer):
    master, slave = os.openpty()
    sign = SimulatedSign(load(PROFILE), master, nak_first=1).start()  # the first good frame is NAKed: retried
    data = config_dict(tmp_path, issuer)
    data["touchpoints"].append({"id": "shelf-1", "kind": "sign", "zone": "bakery"})
    data["surfaces"] = {
        "signs": [{"id": "shelf-1", "touchpoint": "shelf-1", "port": os.ttyname(slave), "profile": PROFILE}]
    }
    agent = Agent(from_dict(data))
    seed(
        agent,
        offers=[offer("bread", title="Sourdough loaf", price_cents=450, currency="EUR", zones=("bakery",))],
        roster=[customer("alice")],
    )
    await agent.start()
    try:
        # at start the engine decides anonymous content for every touchpoint: the sign shows the loaf
        assert await asyncio.to_thread(sign.wait_for, lambda s: s.lines == ["Sourdough loaf", "EUR 4.50"])
        await _wait_for(lambda: agent.proof.recorded >= 1)
        row = agent.store.db.execute("SELECT touchpoint, offer_id FROM impressions").fetchone()
        assert row == ("shelf-1", "bread")
        assert sign.counts["busy"] == 1 and agent.signs[0].counts["ack"] >= 1
        assert agent.sign_status()["shelf-1"]["state"] == "online"
        async with aiohttp.ClientSession() as http:
            await post_checkin(http, agent.url, issuer.token("alice", "screen-b"))
        await _wait_for(lambda: agent.proof.recorded >= 2)
        assert (
            agent.store.db.execute("SELECT count(*) FROM impressions WHERE customer_ref = 'alice'").fetchone()[0] == 1
        )
    finally:
        await agent.stop()
        sign.stop()
        os.close(master)
        os.close(slave)


async def test_a_sign_that_never_answers_gets_no_proof_of_play(tmp_path, issuer):
    master, slave = os.openpty()
    sign = SimulatedSign(load(PROFILE), master, silent=True).start()
    data = config_dict(tmp_path, issuer)
    data["touchpoints"].append({"id": "shelf-1", "kind": "sign", "zone": "bakery"})
    data["surfaces"] = {
        "signs": [{"id": "shelf-1", "touchpoint": "shelf-1", "port": os.ttyname(slave), "profile": PROFILE}]
    }
    agent = Agent(from_dict(data))
    seed(agent, offers=[offer("bread", title="Sourdough loaf", zones=("bakery",))], roster=[])
    await agent.start()
    try:
        await _wait_for(lambda: agent.signs[0].counts["timeout"] >= 1)
        assert sign.counts["ignored"] >= 4  # the frame and its three retries
        assert agent.sign_status()["shelf-1"]["state"] == "not answering"
        assert (
            agent.store.db.execute("SELECT count(*) FROM impressions WHERE touchpoint = 'shelf-1'").fetchone()[0] == 0
        )
    finally:
        await agent.stop()
        sign.stop()
        os.close(master)
        os.close(slave)


def test_check_config_refuses_a_sign_whose_profile_is_bad(tmp_path, issuer):
    profile = tmp_path / "broken.toml"
    profile.write_text('name = "broken"\n[serial]\nbaudrate = 12345\n')
    data = config_dict(tmp_path, issuer)
    data["touchpoints"].append({"id": "shelf-1", "kind": "sign", "zone": "bakery"})
    data["surfaces"] = {"signs": [{"id": "s", "touchpoint": "shelf-1", "port": "/dev/null", "profile": str(profile)}]}
    config = tmp_path / "edge-agent.toml"
    config.write_text(tomli_w.dumps(data))
    done = subprocess.run(
        [sys.executable, "-m", "edge_agent", "check-config", str(config)], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "surfaces.signs[0].profile" in done.stderr and "serial.baudrate" in done.stderr and "12345" in done.stderr


async def test_the_agent_drives_a_pole_display_with_escpos_customer_display_commands(tmp_path, issuer):
    """A customer pole display (2 × 20, Epson ESC/POS customer-display commands) on a pty: a simulator that does what
    the commands say shows the shopper the offer's two lines, accents in the display's character table."""
    master, slave = os.openpty()
    tty.setraw(slave)
    display = SimulatedPoleDisplay(master).start()
    data = config_dict(tmp_path, issuer)
    data["touchpoints"].append({"id": "till-pole", "kind": "sign", "zone": "bakery"})
    data["surfaces"] = {
        "signs": [{"id": "pole", "touchpoint": "till-pole", "port": os.ttyname(slave), "profile": "pole-display-2x20"}]
    }
    agent = Agent(from_dict(data))
    seed(
        agent,
        offers=[offer("cake", title="Crème brûlée, two for one", price_cents=390, currency="EUR", zones=("bakery",))],
        roster=[],
    )
    await agent.start()
    try:
        await _wait_for(lambda: display.lines() == ["Crème brûlée, two fo", "EUR 3.90"])
        await _wait_for(lambda: agent.proof.recorded >= 1)  # written whole: the display's proof of play
        assert agent.signs[0].counts["shown"] >= 1 and display.unknown == 0 and display.frames >= 1
        assert agent.sign_status()["pole"]["state"] == "online"
    finally:
        await agent.stop()
        display.stop()
        os.close(master)
        os.close(slave)


def test_a_pole_display_frame_is_what_the_command_set_says():
    profile = load("pole-display-2x20")
    frame = profile.text_frame(["Fresh bread", "EUR 1.20"])
    assert frame == b"\x1b@\x1bt\x00\x0c\x1f$\x01\x01Fresh bread\x1f$\x01\x02EUR 1.20"
    assert profile.fit(["Ćevapi \u2014 ça va", "Łódź"]) == ["Cevapi  ça va", "ódz"]  # no Ć, —, Ł in PC437
