"""ESPHome Bluetooth proxies as receivers: the advertising-data reader (pure), the simulated proxy checked against
aioesphomeapi itself, and a running agent taking a proxy's raw adverts over the native API — encrypted and
plaintext, through a reboot, with a wrong key — placing only the consenting phone and never keeping an address."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import sys
import time

import pytest
from aioesphomeapi.client import APIClient
from aioesphomeapi.core import EncryptionPlaintextAPIError, InvalidEncryptionKeyAPIError, RequiresEncryptionAPIError
from aioesphomeapi.model import BluetoothProxyFeature
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.app import Agent
from edge_agent.clock import Clock
from edge_agent.config import from_dict
from edge_agent.ops import metrics
from edge_agent.sources.ble import ad_structures, esphome_proxies, frames
from edge_agent.sources.ble.esphome_proxies import EsphomeProxies
from simulators.esphome_proxy import EsphomeProxySim, ad_bytes
from simulators.phone import phone_for
from tests.factories import config_dict, seed, wait_for

ALICE = phone_for("alice", "chain-test")  # consents to BLE
BOB = phone_for("bob", "chain-test")  # opted in, but not to BLE
ADDRESSES = {"alice": 0xC1572B9A107E, "bob": 0xD4E5F6A7B8C9, "stranger": 0xF0E1D2C3B4A5}
RECEIVER = "proxy-dairy"
SCANNER_KEY = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="  # a bundle key the tests never sign with


def address_forms(address: int) -> list[str]:
    """Every way an address could be written into a log or a health document."""
    raw = address.to_bytes(6, "big")
    return [
        ":".join(f"{b:02X}" for b in raw),
        ":".join(f"{b:02x}" for b in raw),
        raw.hex(),
        raw.hex().upper(),
        str(address),
    ]


# --- the advertising data ---------------------------------------------------------------------------------------


def test_advertising_data_is_read_as_bleak_gives_it():
    ibeacon = bytes.fromhex(
        "020106"  # flags
        "1aff4c000215" + "e2c56db5dffb48d2b060d0f5a71096e0" + "0001" + "0002" + "c5"  # Apple iBeacon, -59 at 1 m
    )
    fields = ad_structures.parse(ibeacon)
    assert fields.intact and fields.tx_power is None and fields.service_data == {}
    beacon = frames.ibeacon_in(fields.manufacturer_data)
    assert beacon is not None and beacon.beacon_id == "ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:1:2"
    eddystone = bytes.fromhex("0303aafe" + "1716aafe00e7" + "00112233445566778899" + "aabbccddeeff" + "0000" + "020af4")
    fields = ad_structures.parse(eddystone)
    assert fields.service_data == {frames.EDDYSTONE_UUID: bytes.fromhex("00e700112233445566778899aabbccddeeff0000")}
    assert fields.tx_power == -12 and fields.manufacturer_data == {} and fields.intact
    wide = bytes.fromhex("0720" + "78563412" + "abcd" + "1221" + "00112233445566778899aabbccddeeff" + "01")
    assert ad_structures.parse(wide).service_data == {
        "12345678-0000-1000-8000-00805f9b34fb": b"\xab\xcd",
        "ffeeddcc-bbaa-9988-7766-554433221100": b"\x01",
    }


def test_a_phone_advert_and_its_scan_response_back_to_back_padding_between():
    advert = ad_bytes(manufacturer=ALICE.advert(time.time()))
    response = ad_bytes(flags=None, name="Pixel", tx_power=-7)
    fields = ad_structures.parse(advert + b"\x00\x00" + response)  # a chip padding its advertising data
    assert fields.intact and fields.tx_power == -7
    token = frames.token_in(fields.manufacturer_data, 0xFFFF)
    assert token is not None and token.token == ALICE.token(time.time())


def test_malformed_data_keeps_what_was_whole_and_says_so():
    good = ad_bytes(manufacturer={0x0059: b"\x01\x02"})
    cut = ad_structures.parse(good + bytes.fromhex("09ff4c00"))  # claims 9 bytes, 3 left
    assert cut.manufacturer_data == {0x0059: b"\x01\x02"} and not cut.intact
    short = ad_structures.parse(bytes.fromhex("02ff4c") + good)  # manufacturer data without a full company id
    assert short.manufacturer_data == {0x0059: b"\x01\x02"} and not short.intact
    assert ad_structures.parse(b"") == ad_structures.AdFields()


@given(st.binary(max_size=300))
def test_any_bytes_are_read_never_raised(data):
    fields = ad_structures.parse(data)
    assert isinstance(fields.manufacturer_data, dict) and isinstance(fields.service_data, dict)
    assert fields.tx_power is None or -128 <= fields.tx_power <= 127


@given(
    st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=24), max_size=4),
    st.dictionaries(st.integers(0, 0xFFFF).map(ad_structures.uuid16), st.binary(max_size=20), max_size=3),
    st.integers(0, 400),
)
def test_every_whole_structure_of_a_cut_advert_is_read(manufacturer, service, cut):
    data = ad_bytes(manufacturer=manufacturer, service=service)
    assert ad_structures.parse(data) == ad_structures.AdFields(manufacturer, service, None, True)
    prefix = ad_structures.parse(data[:cut])
    assert prefix.manufacturer_data.items() <= manufacturer.items() and prefix.service_data.items() <= service.items()
    assert prefix.intact == (cut >= len(data) or _ends_on_a_boundary(data, cut))


def _ends_on_a_boundary(data: bytes, cut: int) -> bool:
    at = 0
    while at < cut:
        at += 1 + data[at]
    return at == cut


# --- the simulated proxy, as aioesphomeapi itself sees it -------------------------------------------------------


async def _client(port, key=None) -> APIClient:
    client = APIClient("127.0.0.1", port, "", noise_psk=key)
    await client.connect(login=True, log_errors=False)
    return client


@pytest.mark.parametrize("encrypted", [True, False])
async def test_the_simulated_proxy_speaks_the_api_as_aioesphomeapi_expects(encrypted):
    key = os.urandom(32) if encrypted else None
    sim = EsphomeProxySim(key, name="proxy-dairy")
    port = await sim.start()
    client = await _client(port, sim.key_b64 if encrypted else None)
    other = await _client(port, sim.key_b64 if encrypted else None)
    try:
        info = await client.device_info()
        assert info.name == "proxy-dairy" and info.api_encryption_supported == encrypted
        assert info.bluetooth_proxy_feature_flags & BluetoothProxyFeature.RAW_ADVERTISEMENTS
        assert not info.bluetooth_proxy_feature_flags & BluetoothProxyFeature.ACTIVE_CONNECTIONS
        assert len(info.bluetooth_mac_address) == 17
        batches, elsewhere = [], []
        client.subscribe_bluetooth_le_raw_advertisements(batches.append)
        await wait_for(lambda: sim.subscribed, what="the subscription")
        other.subscribe_bluetooth_le_raw_advertisements(elsewhere.append)  # one subscriber at a time
        await wait_for(lambda: sim.counts["subscriptions_refused"] == 1, what="the second one ignored")
        for i in range(20):
            sim.advertise(-40 - i, ad_bytes(manufacturer={0x0059: bytes([i])}), address=ADDRESSES["alice"])
        await wait_for(lambda: sum(len(b.advertisements) for b in batches) == 20, what="all 20 adverts")
        assert [len(b.advertisements) for b in batches] == [16, 4]  # a full batch at once, the rest on the tick
        first = batches[0].advertisements[0]
        assert (first.rssi, first.address) == (-40, ADDRESSES["alice"])
        assert ad_structures.parse(first.data).manufacturer_data == {0x0059: b"\x00"}
        assert elsewhere == [] and sim.clients == ["aioesphomeapi", "aioesphomeapi"]
    finally:
        await client.disconnect()
        await other.disconnect()
        await sim.stop()


async def test_the_simulated_proxy_refuses_keys_as_the_firmware_does():
    sim = EsphomeProxySim(os.urandom(32))
    plain = EsphomeProxySim(None)
    port, plain_port = await sim.start(), await plain.start()
    try:
        with pytest.raises(InvalidEncryptionKeyAPIError):
            await _client(port, base64.b64encode(os.urandom(32)).decode())
        assert sim.counts["handshake_refused:Handshake MAC failure"] == 1
        with pytest.raises(RequiresEncryptionAPIError):
            await _client(port)
        with pytest.raises(EncryptionPlaintextAPIError):
            await _client(plain_port, sim.key_b64)
        assert sim.counts["handshakes"] == 0 and plain.counts["received:HelloRequest"] == 0
    finally:
        await sim.stop()
        await plain.stop()


# --- a running agent behind a proxy -----------------------------------------------------------------------------


def proxy_agent(tmp_path, issuer, sim: EsphomeProxySim, *, key: str | None = None, **ble) -> Agent:
    """An agent whose one receiver, in the bakery, is the simulated proxy; Alice consents to BLE, Bob does not."""
    profile = tmp_path / "proxy-dairy.toml"
    encrypted = "true" if sim.key is not None else "false"
    profile.write_text(
        f'kind = "esphome-proxy"\nname = "dairy proxy"\nhost = "127.0.0.1"\nport = {sim.port}\n'
        f"encrypted = {encrypted}\n"
    )
    receiver: dict[str, object] = {"id": RECEIVER, "zone": "bakery", "profile": str(profile)}
    if sim.key is not None or key is not None:
        key_file = tmp_path / "proxy-dairy.key"
        key_file.write_text((key or sim.key_b64) + "\n")
        key_file.chmod(0o600)
        receiver["api_key_file"] = str(key_file)
    data = config_dict(tmp_path, issuer)
    data["ble"] = {"receivers": [receiver], **ble}
    agent = Agent(from_dict(data))
    now = time.time()
    seed(agent, roster=[ALICE.roster_entry(now, {"ble": True}), BOB.roster_entry(now, {"checkin": True})])
    return agent


def advertise_phones(sim: EsphomeProxySim) -> None:
    now = time.time()
    sim.advertise(-52, ad_bytes(manufacturer=ALICE.advert(now)), address=ADDRESSES["alice"])
    sim.advertise(-50, ad_bytes(manufacturer=BOB.advert(now)), address=ADDRESSES["bob"])
    sim.advertise(-45, ad_bytes(manufacturer={0x0075: bytes(range(20))}, name="TV"), address=ADDRESSES["stranger"])


async def until_placed(agent: Agent, sim: EsphomeProxySim, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while ("customer:alice", "bakery") not in agent.presence.placed():
        assert time.monotonic() < deadline, f"no presence; proxy {agent.health().get('esphome_proxies')}"
        advertise_phones(sim)
        await asyncio.sleep(0.2)


async def until_more_adverts(agent: Agent, sim: EsphomeProxySim, timeout: float = 30.0) -> None:
    proxy = agent.esphome_proxies.proxies[RECEIVER]
    before = proxy.adverts
    deadline = time.monotonic() + timeout
    while proxy.adverts == before:
        assert time.monotonic() < deadline, f"no adverts since; proxy {agent.health()['esphome_proxies']}"
        advertise_phones(sim)
        await asyncio.sleep(0.2)


def our_lines(caplog, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == esphome_proxies.__name__ and text in r.getMessage()]


def assert_no_address_anywhere(caplog, agent: Agent) -> None:
    health = json.dumps(agent.health())
    scraped = metrics.render(agent.metrics).decode()
    for device, address in ADDRESSES.items():
        for form in address_forms(address):
            assert form not in caplog.text, f"{device}'s address in the log"
            assert form not in health and form not in scraped, f"{device}'s address in health or metrics"


async def test_an_encrypted_proxy_places_the_consenting_phone_and_survives_a_reboot(tmp_path, issuer, caplog):
    caplog.set_level(logging.DEBUG)
    sim = EsphomeProxySim(os.urandom(32), name="proxy-dairy")
    await sim.start()
    agent = proxy_agent(tmp_path, issuer, sim)
    await agent.start()
    proxy = agent.esphome_proxies.proxies[RECEIVER]
    try:
        await wait_for(lambda: proxy.connected and sim.subscribed, what="the agent subscribed to the proxy")
        await until_placed(agent, sim)
        assert {key for key, _ in agent.presence.placed()} == {"customer:alice"}
        assert agent.ble.resolver.counts["unknown_token"] >= 1  # Bob's adverts arrived and resolved to nobody
        assert sim.counts["handshakes"] == 1 and sim.clients == ["edge-agent"]
        health = agent.health()["esphome_proxies"][RECEIVER]
        assert health["connected"] is True and health["adverts"] >= 3 and health["last_heard_s_ago"] is not None
        assert health["adverts_per_s"] > 0 and health["refused"] == {} and health["problem"] is None
        scraped = metrics.render(agent.metrics).decode()
        assert f'edge_ble_proxy_connected{{receiver="{RECEIVER}"}} 1.0' in scraped
        assert f'edge_ble_proxy_adverts_total{{receiver="{RECEIVER}"}}' in scraped

        await sim.reboot(1.0)  # a power cut: the connection just dies
        await wait_for(lambda: proxy.connected and sim.subscribed and proxy.reconnects == 1, what="back after reboot")
        await until_more_adverts(agent, sim)
        assert len(our_lines(caplog, "connection lost")) == 1 and len(our_lines(caplog, "connected again")) == 1
        assert agent.health()["esphome_proxies"][RECEIVER]["reconnects"] == 1
        assert agent.restarts["ble.esphome"] == 0 and agent.health()["components"]["ble.esphome"] == "running"
        assert_no_address_anywhere(caplog, agent)
    finally:
        await agent.stop()
        await sim.stop()
    assert sim.counts["received:DisconnectRequest"] == 1  # the agent left cleanly


async def test_a_plaintext_proxy_restarting_cleanly_is_taken_back_and_silence_is_noticed(tmp_path, issuer, caplog):
    caplog.set_level(logging.DEBUG)
    sim = EsphomeProxySim(None, name="proxy-dairy")
    await sim.start()
    agent = proxy_agent(tmp_path, issuer, sim, stall_s=1.5)
    await agent.start()
    proxy = agent.esphome_proxies.proxies[RECEIVER]
    try:
        await wait_for(lambda: proxy.connected and sim.subscribed, what="the agent subscribed to the proxy")
        await wait_for(lambda: proxy.silent, what="nothing heard: silent")
        assert 'edge_ble_node_silent{scanner="proxy-dairy"} 1.0' in metrics.render(agent.metrics).decode()
        await until_placed(agent, sim)
        assert not proxy.silent and len(our_lines(caplog, "heard again")) == 1
        assert len(our_lines(caplog, "nothing heard")) == 1

        await sim.reboot(0.5, graceful=True)  # a restart from the firmware: a DisconnectRequest first
        await wait_for(lambda: proxy.connected and sim.subscribed and proxy.reconnects == 1, what="back after reboot")
        await until_more_adverts(agent, sim)
        [lost] = our_lines(caplog, "connection lost")
        assert "closed it" in lost.getMessage() and len(our_lines(caplog, "connected again")) == 1
        assert {key for key, _ in agent.presence.placed()} == {"customer:alice"}
        assert agent.restarts["ble.esphome"] == 0
        assert_no_address_anywhere(caplog, agent)
    finally:
        await agent.stop()
        await sim.stop()


async def test_a_wrong_key_is_one_clear_line_and_no_crash(tmp_path, issuer, caplog, monkeypatch):
    monkeypatch.setattr(esphome_proxies, "MAX_RETRY_S", 0.2)  # retry often: still said once
    caplog.set_level(logging.DEBUG)
    sim = EsphomeProxySim(os.urandom(32), name="proxy-dairy")
    await sim.start()
    agent = proxy_agent(tmp_path, issuer, sim, key=base64.b64encode(os.urandom(32)).decode())
    await agent.start()
    proxy = agent.esphome_proxies.proxies[RECEIVER]
    try:
        await wait_for(lambda: proxy.refused["wrong_key"] >= 3, what="several refused attempts")
        lines = [r for r in caplog.records if "api_key_file" in r.getMessage()]
        assert len(lines) == 1 and lines[0].levelno == logging.ERROR
        assert RECEIVER in lines[0].getMessage() and "encryption key" in lines[0].getMessage()
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
        assert sim.counts["handshake_refused:Handshake MAC failure"] >= 3 and sim.counts["handshakes"] == 0
        health = agent.health()
        assert health["esphome_proxies"][RECEIVER]["problem"] == "wrong_key"
        assert health["esphome_proxies"][RECEIVER]["connected"] is False
        assert health["components"]["ble.esphome"] == "running" and agent.restarts["ble.esphome"] == 0
        scraped = metrics.render(agent.metrics).decode()
        assert any(
            line.startswith("edge_ble_proxy_refused_total{") and 'reason="wrong_key"' in line and RECEIVER in line
            for line in scraped.splitlines()
        )
    finally:
        await agent.stop()
        await sim.stop()


async def test_a_key_file_others_can_read_is_refused_before_connecting(tmp_path, issuer, caplog, monkeypatch):
    monkeypatch.setattr(esphome_proxies, "MAX_RETRY_S", 0.2)
    sim = EsphomeProxySim(os.urandom(32))
    await sim.start()
    agent = proxy_agent(tmp_path, issuer, sim)
    (tmp_path / "proxy-dairy.key").chmod(0o644)
    await agent.start()
    proxy = agent.esphome_proxies.proxies[RECEIVER]
    try:
        await wait_for(lambda: proxy.refused["key_file"] >= 2, what="refused key file")
        [line] = [r for r in caplog.records if "api_key_file" in r.getMessage()]
        assert "chmod 600" in line.getMessage() and sim.key_b64 not in caplog.text
        assert sim.counts["connections"] == 0
    finally:
        await agent.stop()
        await sim.stop()


async def test_without_aioesphomeapi_one_line_says_how_to_install_it(tmp_path, issuer, caplog, monkeypatch):
    sim = EsphomeProxySim(None)
    sim.port = 6053  # never reached
    data = config_dict(tmp_path, issuer)
    profile = tmp_path / "p.toml"
    profile.write_text('kind = "esphome-proxy"\nname = "p"\nhost = "127.0.0.1"\nencrypted = false\n')
    data["ble"] = {"receivers": [{"id": RECEIVER, "zone": "bakery", "profile": str(profile)}]}
    proxies = EsphomeProxies(from_dict(data), source=None, clock=Clock())
    monkeypatch.setitem(sys.modules, "aioesphomeapi", None)  # `import aioesphomeapi` now fails
    await asyncio.wait_for(proxies.run(), 5)  # returns: nothing to run without it
    [line] = [r for r in caplog.records if "edge-agent[esphome]" in r.getMessage()]
    assert RECEIVER in line.getMessage() and line.levelno == logging.ERROR
    assert proxies.health()[RECEIVER]["problem"] == "aioesphomeapi_missing"


def test_scanner_nodes_and_proxies_share_one_silence_family(tmp_path, issuer):
    proxy = tmp_path / "proxy.toml"
    proxy.write_text('kind = "esphome-proxy"\nname = "p"\nhost = "127.0.0.1"\nencrypted = false\n')
    data = config_dict(tmp_path, issuer)
    data["mqtt"] = {"host": "127.0.0.1", "port": 1, "bundle_public_keys": [SCANNER_KEY]}
    data["ble"] = {
        "remote_scanners": True,
        "receivers": [
            {"id": "esp32-bakery", "zone": "bakery", "profile": "esp32-bakery"},
            {"id": RECEIVER, "zone": "entrance", "profile": str(proxy)},
        ],
    }
    agent = Agent(from_dict(data))
    try:
        scraped = metrics.render(agent.metrics).decode()
    finally:
        agent.store.close()
    assert scraped.count("# TYPE edge_ble_node_silent gauge") == 1
    assert 'edge_ble_node_silent{scanner="esp32-bakery"} 0.0' in scraped
    assert f'edge_ble_node_silent{{scanner="{RECEIVER}"}} 0.0' in scraped
    assert f'edge_ble_proxy_connected{{receiver="{RECEIVER}"}} 0.0' in scraped
