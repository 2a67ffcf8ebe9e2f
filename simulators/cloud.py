"""The retailer's cloud, as far as one store sees it: signs and publishes bundles and rosters, sends
commands and context, collects what the store sends up, dedups on uuid and reports what was lost or
duplicated. Used by the demo, the integration tests and the sync benchmark; it talks to the broker through
the agent's own link class, as any MQTT client would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import BaseModel

from edge_agent.cloud import sealed
from edge_agent.cloud.envelope import seal
from edge_agent.cloud.sealed import split
from edge_agent.config import MqttSettings
from edge_agent.keys import DevicePublic, open_sealed, public_key_b64
from edge_agent.mqtt import MqttLink
from edge_agent.store.enrolments import upload_info


class TlsFiles(TypedDict, total=False):
    """The TLS files of the simulated cloud's MQTT connection, as `MqttSettings` names them."""

    tls_ca_file: Path
    tls_cert_file: Path
    tls_key_file: Path


def to_json(bundle: BaseModel | dict[str, Any]) -> bytes:
    if isinstance(bundle, BaseModel):
        return bundle.model_dump_json().encode()
    return json.dumps(bundle).encode()


def as_dict(bundle: BaseModel | dict[str, Any]) -> dict[str, Any]:
    return bundle.model_dump(mode="json") if isinstance(bundle, BaseModel) else dict(bundle)


class CloudSim:
    def __init__(
        self,
        host: str,
        port: int,
        store: str,
        *,
        key: Ed25519PrivateKey | None = None,
        prefix: str = "retail/v1",
        client_id: str | None = None,
        tls: TlsFiles | None = None,
        devices: dict[str, DevicePublic] | None = None,
        login: tuple[str, Path] | None = None,
    ):
        self.store = store
        self.devices = dict(devices or {})  # the store's agents whose device keys the operator registered
        self.context_version = 0
        self.host, self.port = host, port
        self.key = key or Ed25519PrivateKey.generate()
        self.enrolment_key = X25519PrivateKey.generate()  # the enrolment service's: face uploads are sealed to it
        self.base = f"{prefix}/{store}"
        settings = MqttSettings(
            host=host,
            port=port,
            reconnect_min_s=0.1,
            reconnect_max_s=1.0,
            inflight_batches=50,
            username=login[0] if login else None,
            password_file=login[1] if login else None,
            **(tls or {}),
        )
        self.link = MqttLink(
            settings,
            client_id or f"cloud-sim-{uuid.uuid4().hex[:8]}",
            subscriptions=[
                f"{self.base}/+/{stream}" for stream in ("events", "ack", "status", "telemetry", "config/reported")
            ],
        )
        self.events: dict[str, dict[str, Any]] = {}  # uuid -> event, first copy
        self.order: list[str] = []
        self.device_of: dict[str, str] = {}  # uuid -> the device that sent it
        self.duplicates: Counter[str] = Counter()
        self.acks: list[dict[str, Any]] = []
        self.telemetry: list[dict[str, Any]] = []
        self.status: dict[str, str] = {}
        self.reported: dict[str, dict[str, Any]] = {}  # device -> its latest reported config state
        self.status_history: list[tuple[str, str]] = []
        self.garbage = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()

    @property
    def public_key_b64(self) -> str:
        return public_key_b64(self.key.public_key())

    @property
    def enrolment_key_b64(self) -> str:
        """What the store's `vision.faces.enrolment.cloud_key` says."""
        raw = self.enrolment_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")

    async def start(self, timeout: float = 15.0) -> CloudSim:
        self._tasks = [
            asyncio.create_task(self.link.run(), name="cloud-sim.link"),
            asyncio.create_task(self.link.deliver(self._received), name="cloud-sim.collect"),
        ]
        async with asyncio.timeout(timeout):
            await self.link.connected.wait()
        return self

    async def close(self) -> None:
        await self.link.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- down ----------------------------------------------------------------------------------------

    def sign(self, kind: str, bundle: BaseModel | dict[str, Any]) -> bytes:
        """Signed for this store; a roster's day keys and face embeddings sealed to each registered agent (a roster
        given with secrets in clear, as a test writes it, goes out with them only sealed)."""
        if kind in ("roster", "roster_delta"):
            bundle = self.sealed_roster(kind, as_dict(bundle))
        return seal(self.key, kind, self.store, to_json(bundle))

    def sealed_roster(self, kind: str, bundle: dict[str, Any]) -> dict[str, Any]:
        field = "customers" if kind == "roster" else "upsert"
        public, secrets = split(bundle.get(field, []))
        if not secrets:
            return bundle
        recipients = {device: key.seal for device, key in self.devices.items()}
        locked = sealed.seal(secrets, recipients, store=self.store, kind=kind, version=bundle["version"])
        return {**bundle, field: public, "sealed": locked}

    async def publish(self, suffix: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish on `{prefix}/{store}/{suffix}` and wait for the broker's PUBACK."""
        await self.link.connected.wait()
        await self.link.publish(f"{self.base}/{suffix}", payload, qos=1, retain=retain)

    async def publish_offers(self, bundle: BaseModel | dict[str, Any]) -> None:
        await self.publish("offers", self.sign("offers", bundle), retain=True)

    async def publish_roster(self, bundle: BaseModel | dict[str, Any]) -> None:
        await self.publish("roster", self.sign("roster", bundle), retain=True)

    async def publish_delta(self, delta: BaseModel | dict[str, Any]) -> None:
        await self.publish("roster/delta", self.sign("roster_delta", delta))

    async def publish_config(self, document: dict[str, Any]) -> None:
        """The desired config, shadow style: signed, retained, the whole document each time."""
        await self.publish("config", self.sign("config", document), retain=True)

    def signed_command(self, device: str, type_: str, **fields: Any) -> tuple[str, bytes]:
        """A command as the cloud sends it: signed for this store, naming its device (`*`: all), issued now."""
        command_id = fields.pop("command_id", None) or uuid.uuid4().hex
        issued_at = fields.pop("issued_at", None) or datetime.now(UTC).isoformat()
        body = {"command_id": command_id, "device": device, "issued_at": issued_at, "type": type_, **fields}
        return command_id, self.sign("command", body)

    async def command(self, device: str, type_: str, **fields: Any) -> str:
        command_id, envelope = self.signed_command(device, type_, **fields)
        await self.publish(f"cmd/{device}", envelope)
        return command_id

    async def relay_report(self, report: bytes) -> None:
        """An app report the phone sent to the cloud, relayed to the store as it came: signed, QoS 1, not retained."""
        await self.publish("ble/report", seal(self.key, "ble_report", self.store, report))

    async def context(self, weather: dict[str, Any], local_events: list[dict[str, Any]] | None = None) -> None:
        """Weather and local events, signed, each a newer version than the last."""
        self.context_version += 1
        body = {
            "version": self.context_version,
            "issued_at": datetime.now(UTC).isoformat(),
            "weather": weather,
            "local_events": local_events or [],
        }
        await self.publish("context", self.sign("context", body), retain=True)

    # --- up ------------------------------------------------------------------------------------------

    def _received(self, topic: str, payload: bytes) -> None:
        try:
            self._take(topic, payload)
        finally:
            self._changed.set()

    def _take(self, topic: str, payload: bytes) -> None:
        device, stream = topic.removeprefix(self.base + "/").split("/", 1)
        if stream == "status":
            state = payload.decode("utf-8", "replace")
            self.status[device] = state
            self.status_history.append((device, state))
            return
        if stream == "config/reported":
            try:
                self.reported[device] = json.loads(payload)
            except ValueError:
                self.garbage += 1
            return
        try:
            batch = json.loads(payload)
            items = batch["events"]
        except (ValueError, KeyError, TypeError):
            self.garbage += 1
            return
        for item in items:
            if stream == "telemetry":
                self.telemetry.append(item)
                continue
            key = item["uuid"]
            if key in self.events:
                self.duplicates[key] += 1
                continue
            self.events[key] = item
            self.device_of[key] = device
            self.order.append(key)
            if stream == "ack":
                self.acks.append(item)

    def open_enrolment(self, event: dict[str, Any]) -> dict[str, Any]:
        """A face enrolment sent up, as the cloud takes it (docs/protocols/face-enrolment.md): signed by the
        registered device it names, sealed to the enrolment key for that customer and enrolment, its content
        agreeing with the event. Returns {customer_ref, enrolment_id, model, face_embeddings}; ValueError says
        what is wrong."""
        device = self.devices.get(event["device"])
        if device is None:
            raise ValueError(f"device {event['device']!r} is not registered")
        info = upload_info(self.store, event["device"], event["customer_ref"], event["enrolment_id"])
        sealed_bytes = base64.b64decode(event["sealed"], validate=True)
        try:
            device.sign.verify(base64.b64decode(event["signature"], validate=True), info + sealed_bytes)
        except InvalidSignature:
            raise ValueError("the signature is not the device's") from None
        try:
            content: dict[str, Any] = json.loads(open_sealed(self.enrolment_key, sealed_bytes, info))
        except Exception as exc:
            raise ValueError(f"does not open with the enrolment key ({type(exc).__name__})") from None
        for name in ("customer_ref", "enrolment_id", "model"):
            if content[name] != event[name]:
                raise ValueError(f"{name} inside ({content[name]!r}) is not the event's ({event[name]!r})")
        return content

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [self.events[k] for k in self.order if self.events[k]["kind"] == kind]

    def ack_for(self, command_id: str) -> dict[str, Any] | None:
        return next((a for a in self.acks if a.get("command_id") == command_id), None)

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Wait until `predicate()` is truthy (checked whenever something arrives, and every 0.1 s)."""
        async with asyncio.timeout(timeout):
            while not (result := predicate()):
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.1)
        return result

    def report(self, expected: Iterable[str], key: str = "uuid") -> dict[str, Any]:
        """What arrived of `expected` (values of `key`, by default uuids): lost, duplicated (and removed)."""
        expected = set(expected)
        got = {event.get(key) for event in self.events.values()}
        return {
            "expected": len(expected),
            "received": len(got & expected),
            "lost": sorted(expected - got),
            "duplicates_removed": sum(self.duplicates.values()),
        }


def offer_bundle(version: int, offers: list[BaseModel], issued_at: datetime | None = None) -> dict[str, Any]:
    return {
        "version": version,
        "issued_at": (issued_at or datetime.now(UTC)).isoformat(),
        "offers": [o.model_dump(mode="json") for o in offers],
    }


def roster_bundle(version: int, customers: Iterable[BaseModel], issued_at: datetime | None = None) -> dict[str, Any]:
    return {
        "version": version,
        "issued_at": (issued_at or datetime.now(UTC)).isoformat(),
        "customers": [c.model_dump(mode="json") for c in customers],
    }
