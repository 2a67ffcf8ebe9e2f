"""Operator tools for running without our cloud: a signing key pair, signing a bundle or a desired config,
publishing it."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel

from .. import json_input
from ..config import MqttSettings
from ..keys import DeviceKey, new_zone_beacon_key, public_key_b64
from ..mqtt import LinkError, MqttLink
from ..secret_files import SecretFileError, read_private
from ..store.bundles import OfferBundle, RosterBundle, RosterDelta
from .desired import check_document
from .envelope import BundleRejected, parse_payload, seal
from .topics import Down, Topics

MODELS: dict[str, type[BaseModel]] = {"offers": OfferBundle, "roster": RosterBundle, "roster_delta": RosterDelta}
TOPICS = {"offers": Down.OFFERS, "roster": Down.ROSTER, "roster_delta": Down.ROSTER_DELTA, "config": Down.CONFIG}


class ToolError(Exception):
    """What the operator must fix, said plainly."""


def new_key_pair(folder: Path, name: str) -> tuple[Path, str]:
    """Write NAME.key (PEM, readable by its owner only) and NAME.pub (base64); returns the key path and public key."""
    key_path, pub_path = folder / f"{name}.key", folder / f"{name}.pub"
    for path in (key_path, pub_path):
        if path.exists():
            raise ToolError(f"{path} exists; choose another --name or move it away (keys are never overwritten)")
    folder.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = public_key_b64(key.public_key())
    pub_path.write_text(public + "\n", encoding="utf-8")
    return key_path, public


def load_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(read_private(path, "--key"), password=None)
    except SecretFileError as exc:
        raise ToolError(str(exc)) from None
    except ValueError as exc:
        raise ToolError(f"{path}: not a readable PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ToolError(f"{path}: not an Ed25519 key (make one with `edge-agent keys new`)")
    return key


def new_device_key(folder: Path, name: str) -> tuple[Path, dict[str, str]]:
    """A host's device key, NAME.key (never overwritten), and its public keys as the cloud registers them."""
    key = DeviceKey.generate()
    return _new_key_file(folder, name, key.write), key.public().as_json()


def new_zone_beacon_key_file(folder: Path, name: str) -> Path:
    """The store's zone-beacon key, NAME.key (never overwritten): the same file goes to every host of the store."""
    return _new_key_file(folder, name, new_zone_beacon_key)


def _new_key_file(folder: Path, name: str, write: Callable[[Path], None]) -> Path:
    """FOLDER/NAME.key written by `write`, which never overwrites: an existing one is a ToolError saying so."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.key"
    try:
        write(path)
    except FileExistsError:
        raise ToolError(f"{path} exists; choose another --name or move it away (keys are never overwritten)") from None
    return path


def infer_kind(data: dict[str, Any]) -> str:
    if "offers" in data:
        return "offers"
    if "customers" in data:
        return "roster"
    if "base_version" in data:
        return "roster_delta"
    if "settings" in data:
        return "config"
    raise ToolError(
        "cannot tell the kind: an offer bundle has `offers`, a roster `customers`, a delta `base_version`,"
        " a desired config `settings`"
    )


def sign_file(path: Path, key: Ed25519PrivateKey, kind: str | None, store: str) -> tuple[str, bytes]:
    """Validate a bundle file against its model (so a mistake is caught here, not in every store) and seal it
    for one store."""
    try:
        payload = path.read_bytes()
        data = json_input.loads(payload)
    except (OSError, ValueError) as exc:
        raise ToolError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise ToolError(f"{path}: a bundle is a JSON object")
    kind = kind or infer_kind(data)
    try:
        if kind == "config":
            check_document(payload)
        else:
            parse_payload(payload, MODELS[kind])
    except BundleRejected as exc:
        raise ToolError(f"{path}: not a valid {kind} bundle: {exc.reason}") from None
    try:
        return kind, seal(key, kind, store, payload)
    except ValueError as exc:
        raise ToolError(f"--store: {exc}") from None


def envelope_kind(envelope: bytes, store: str) -> str:
    """The kind of a signed envelope meant for `store`; ToolError for anything else."""
    try:
        opened = json_input.loads(envelope)
        kind, signed_for = opened["kind"], opened["store"]
    except (ValueError, KeyError, TypeError):
        raise ToolError("not a signed envelope (sign the bundle with `edge-agent bundle sign` first)") from None
    if not isinstance(kind, str) or kind not in TOPICS:  # `"kind": []` must not reach a dict lookup
        raise ToolError(f"unknown envelope kind {kind!r}")
    if signed_for != store:
        raise ToolError(f"signed for store {signed_for!r:.70}, not {store!r}: the store would refuse it")
    return kind


async def publish(settings: MqttSettings, store: str, envelope: bytes, timeout: float = 30.0) -> str:
    """Publish a signed envelope on the store's topic (retained for full bundles); returns the topic."""
    kind = envelope_kind(envelope, store)
    topic = Topics(settings.topic_prefix, store, "-").down(TOPICS[kind])
    link = MqttLink(settings, f"edge-agent-publish-{os.getpid()}", persistent=False)
    runner = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(timeout):
            await link.connected.wait()
            await link.publish(topic, envelope, qos=1, retain=kind != "roster_delta")
    except TimeoutError:
        raise ToolError(f"no answer from the broker {settings.host}:{settings.port} within {timeout:.0f} s") from None
    except LinkError as exc:
        raise ToolError(f"the broker did not take the message: {exc}") from None
    finally:
        await link.close()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    return topic
