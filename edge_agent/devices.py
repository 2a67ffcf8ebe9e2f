"""The device kinds a store runs, each with its schema where it is used (beacons and scanner nodes in
sources/ble, cameras in sources/vision, tills in sources/pos, serial signs and screen players in signage), and
the check that every profile a config names is good and agrees with the config. Composition level, like app.py.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from . import profiles
from .config import BeaconPosition, Settings
from .signage import screen_profile
from .signage.screen_profile import ScreenProfile
from .signage.sign_profile import SignKinds
from .signage.sign_profile import load as load_sign
from .sources.ble.node_format import topic_filter
from .sources.ble.profiles import (
    BeaconProfile,
    EsphomeProxyProfile,
    ReceiverKinds,
    ScannerProfile,
    load_receiver,
)
from .sources.pos.tills import TillKinds, load_till
from .sources.vision.profile import CameraProfile

KINDS: dict[str, tuple[str, type[BaseModel]]] = {
    "beacon": ("beacons", BeaconProfile),
    "scanner": ("scanners", ReceiverKinds),
    "camera": ("cameras", CameraProfile),
    "sign": ("signs", SignKinds),
    "screen": ("screens", ScreenProfile),
    "pos": ("pos", TillKinds),
}


def load(kind: str, name: str | Path) -> BaseModel:
    """The profile of that kind (a key of KINDS), by bare name or `.toml` path, with the kind's own checks."""
    if kind == "sign":
        return load_sign(name)  # adds the sign's own cross-field checks
    if kind == "scanner":
        return load_receiver(name)  # one of the receiver kinds, by the file's `kind`
    if kind == "pos":
        return load_till(name)  # one of the till kinds, by the file's `kind`
    folder, model = KINDS[kind]
    return profiles.load(name, model, folder)


def referenced(settings: Settings) -> list[str]:
    """Every problem with the profiles the config names, as 'config key: file: key: reason'; empty if none."""
    problems: list[str] = []

    def check(key: str, name: str | Path, kind: str) -> BaseModel | None:
        try:
            return load(kind, name)
        except profiles.ProfileError as exc:
            problems.append(f"{key}: {exc}")
            return None

    for i, sign in enumerate(settings.surfaces.signs):
        check(f"surfaces.signs[{i}].profile", sign.profile, "sign")
    for i, tp in enumerate(settings.touchpoints):
        if tp.kind == "screen":
            check(f"touchpoints[{i}].profile", tp.profile or screen_profile.DEFAULT, "screen")
    if settings.pos is not None:
        check("pos.profile", settings.pos.profile, "pos")
    for i, name in enumerate(settings.ble.beacon_profiles):
        check(f"ble.beacon_profiles[{i}]", name, "beacon")
    for i, rx in enumerate(settings.ble.receivers):
        if rx.profile is not None:
            node = check(f"ble.receivers[{i}].profile", rx.profile, "scanner")
            if node is not None and not isinstance(node, ScannerProfile):
                problems += _receiver_agrees(f"ble.receivers[{i}]", node, rx.api_key_file, settings)
            if isinstance(node, ScannerProfile):
                problems += _node_agrees(f"ble.receivers[{i}].profile", node, rx.id, settings)
    for i, cam in enumerate(settings.vision.cameras):
        if cam.profile is not None:
            model = check(f"vision.cameras[{i}].profile", cam.profile, "camera")
            if isinstance(model, CameraProfile) and cam.max_fps > model.capture.fps:
                problems.append(
                    f"vision.cameras[{i}].max_fps: got {cam.max_fps}, expected at most the camera's "
                    f"capture.fps ({model.capture.fps}) in {profiles.resolve(cam.profile, 'cameras')}"
                )
    return problems


def _node_agrees(key: str, node: ScannerProfile, receiver_id: str, s: Settings) -> list[str]:
    """A node that publishes where the agent does not listen would be silently unheard: say so now."""
    problems = [
        f"{key}: {field}: got {has!r}, expected {want!r}"
        for field, has, want in (
            ("scanner_id", node.scanner_id, receiver_id),
            ("broker.store", node.broker.store, s.store.id),
        )
        if has != want
    ]
    prefix = s.mqtt.topic_prefix if s.mqtt is not None else "retail/v1"
    listened = topic_filter(s.store.id, prefix).replace("+", node.scanner_id)
    if not problems and node.topic() != listened:
        problems.append(
            f"{key}: broker.topic_prefix: got {node.broker.topic_prefix!r}, the agent listens on {listened}"
        )
    return problems


def _receiver_agrees(key: str, profile: BaseModel, key_file: Path | None, s: Settings) -> list[str]:
    """A receiver the agent cannot reach as configured would be silently unheard: say so now."""
    if isinstance(profile, EsphomeProxyProfile):
        if profile.encrypted and key_file is None:
            return [f"{key}.api_key_file: missing, expected the proxy's API key file (its profile says encrypted)"]
        return []
    if not s.ble.remote_scanners or s.mqtt is None:
        kind = getattr(profile, "kind", "receiver")
        return [f"{key}.profile: a {kind} publishes to the store's broker: expected ble.remote_scanners and [mqtt]"]
    return []


def beacon_ids(settings: Settings) -> list[str]:
    """`ble.beacons` plus the ids of the beacon profiles it names (profiles already checked)."""
    ids = list(settings.ble.beacons)
    for name in settings.ble.beacon_profiles:
        ids += [i for i in profiles.load(name, BeaconProfile, "beacons").ids() if i not in ids]
    return ids


def _positions_by_id(settings: Settings) -> list[BeaconPosition]:
    """A beacon profile placed on the floor places every id it advertises under (one device, one place)."""
    out = []
    for at in settings.ble.beacon_positions:
        if at.beacon in settings.ble.beacon_profiles:
            ids = profiles.load(at.beacon, BeaconProfile, "beacons").ids()
            out += [at.model_copy(update={"beacon": i}) for i in ids]
        else:
            out.append(at)
    return out


def with_profiles(settings: Settings) -> Settings:
    """The settings with what the profiles say applied: beacon ids into `ble.beacons` (and their positions),
    node offsets."""
    receivers = [
        rx.model_copy(update={"offset_db": load_receiver(rx.profile).offset_db})
        if rx.profile is not None and "offset_db" not in rx.model_fields_set
        else rx
        for rx in settings.ble.receivers
    ]
    ble = settings.ble.model_copy(
        update={"beacons": beacon_ids(settings), "beacon_positions": _positions_by_id(settings), "receivers": receivers}
    )
    return settings.model_copy(update={"ble": ble})
