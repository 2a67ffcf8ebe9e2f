"""The demo's cloud: the cloud simulator on a broker (one the demo starts, or yours), or none."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from ..app import Agent
from ..keys import DeviceKey
from ..store.bundles import OfferBundle
from ..store.roster import RosterEntry


async def start_cloud(stack: contextlib.AsyncExitStack, workdir: Path, broker: str | None) -> Any:
    """The cloud simulator on a broker, or None (and the reason, said plainly) when the demo runs offline."""
    from simulators.broker import Mosquitto, find_mosquitto
    from simulators.cloud import CloudSim

    if broker == "off":
        print("cloud: off (--broker off); offers and roster are seeded locally", flush=True)
        return None
    if broker is None:
        if find_mosquitto() is None:
            print(
                "cloud: running OFFLINE: no MQTT broker (install mosquitto, or pass --broker HOST:PORT); "
                "offers and roster are seeded locally",
                flush=True,
            )
            return None
        mosquitto = await asyncio.to_thread(Mosquitto(workdir / "mosquitto").start)
        stack.callback(mosquitto.stop)
        host, port = mosquitto.host, mosquitto.port
        where = f"a mosquitto the demo started on {host}:{port}"
    else:
        host, _, port_text = broker.rpartition(":")
        host, port = host or "127.0.0.1", int(port_text or 1883)
        where = f"the broker at {host}:{port}"
    cloud = CloudSim(host, port, "demo-store")
    try:
        await cloud.start(timeout=5.0)
    except (TimeoutError, OSError) as exc:
        await cloud.close()
        why = str(exc) or "no answer within 5 s"
        print(f"cloud: running OFFLINE: cannot reach {where} ({why}); offers and roster are seeded locally", flush=True)
        return None
    stack.push_async_callback(cloud.close)
    print(f"cloud: the cloud simulator signs and sends offers and roster through {where}", flush=True)
    return cloud


def provision(config: dict[str, Any], workdir: Path, cloud: Any) -> None:
    """What an operator does when installing a host: give it a device key of its own (`store.device_key_file`)
    and register its public keys with the cloud, which from then on seals the roster's secrets to it."""
    path = workdir / "device.key"
    if path.exists():
        key = DeviceKey.load(path, "store.device_key_file")
    else:
        key = DeviceKey.generate()
        key.write(path)
    config["store"] = {**config["store"], "device_key_file": str(path)}
    cloud.devices[config["store"]["device_id"]] = key.public()


def mqtt_section(cloud: Any, telemetry_interval_s: float = 10.0, reconnect_max_s: float = 5.0) -> dict[str, Any]:
    """The `[mqtt]` config of a store synced by the cloud simulator `cloud` (its broker, its signing key)."""
    return {
        "host": cloud.host,
        "port": cloud.port,
        "bundle_public_keys": [cloud.public_key_b64],
        "telemetry_interval_s": telemetry_interval_s,
        "reconnect_max_s": reconnect_max_s,
    }


async def sync_from_cloud(agent: Agent, cloud: Any, bundle: OfferBundle, roster: list[RosterEntry]) -> bool:
    """Offers and roster as signed bundles through the broker; False if they did not arrive in time."""
    from simulators.cloud import roster_bundle

    await cloud.publish_offers(bundle.model_dump(mode="json"))
    await cloud.publish_roster(roster_bundle(1, roster))
    try:
        async with asyncio.timeout(15):
            while not (agent.store.bundle_versions.current("offers") and agent.store.bundle_versions.current("roster")):
                await asyncio.sleep(0.05)
    except TimeoutError:
        print("cloud: the bundles did not arrive within 15 s; seeding locally instead", flush=True)
        return False
    return True
