"""Fleet configuration, shadow style: the cloud's desired config in, the config in force reported back.

Down `retail/v1/{store}/config` (QoS 1, retained): a signed envelope (kind "config", see envelope.py) whose
payload is the whole desired document, not a delta:

    {"version": 12, "settings": {"presence": {"hold_down_s": 15}, "signage": {"rotate_s": 20}},
     "log_level": "info"}

Only the keys in LIVE_KEYS may appear: they take effect at once, without a restart. A key left out goes
back to the config file's value. The merged settings are validated with the same models and cross-checks
as the file, so every problem names the key, the value and what was expected. A version not newer than the
one in force is refused (`stale`); the retained copy of the one in force, seen again after a reconnect, is
ignored. The last good document is kept in SQLite and applied again at start.

Up `retail/v1/{store}/{device}/config/reported` (QoS 1, retained), after every change and on every connect:

    {"device": "host-1", "version": 12, "applied_at": "…", "live_keys": {...},
     "rejected": {"version": 13, "code": "invalid", "reason": "settings.presence.hold_down_s: …"} | null}

Each verdict is also acknowledged on the `ack` stream as a `config_result` (at least once, via the outbox).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .. import json_input
from ..clock import Clock
from ..config import ConfigError, Settings, SourcesSettings, StoreSettings, Zone, from_dict
from ..mqtt import MqttLink, retrieve
from ..store import Store
from ..store.bundles import StaleBundle
from ..store.outbox import DropClass
from .envelope import BundleRejected, open_envelope
from .topics import Topics

log = logging.getLogger(__name__)

MAX_BYTES = 64 * 1024
MAX_VERSION = 2**53  # fits SQLite's INTEGER and a JavaScript number in the cloud
LOG_LEVELS = ("debug", "info", "warning", "error")
LIVE_KEYS: dict[str, tuple[str, ...]] = {
    "presence": ("hold_down_s", "checkin_hold_s", "dwell_interval_s"),
    "signage": ("rotate_s", "idle"),
    "decide": ("crowd_quiet_below", "crowd_busy_from", "crowd_max_age_s", "long_dwell_s"),
    "ble": (
        "enter_m",
        "exit_m",
        "window_s",
        "min_samples",
        "switch_db",
        "switch_s",
        "leave_s",
        "area_exit_m",
        "path_loss_exponent",
        "reference_dbm",
    ),
    "ops": ("stall_after_s",),
}


@dataclass(frozen=True)
class Desired:
    """A verified, validated desired config: the merged settings and the log level to run with."""

    version: int
    settings: Settings
    log_level: str | None
    document: bytes


def merge(base: Settings, document: bytes) -> Desired:
    """The file's settings with the document's live keys on top; BundleRejected names every problem."""
    try:
        doc = json_input.loads(document)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleRejected("invalid", f"the document is not UTF-8 JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BundleRejected("invalid", "the document must be a JSON object with version and settings")
    version = doc.get("version")
    claimed = version if isinstance(version, int) and not isinstance(version, bool) else None
    problems = []
    if claimed is None or not 1 <= claimed <= MAX_VERSION:
        problems.append(f"version: got {version!r:.40}, expected an integer in 1..{MAX_VERSION}")
        claimed = None
    extra = sorted(set(doc) - {"version", "settings", "log_level", "issued_at"})
    if extra:
        problems.append(f"{', '.join(extra)}: no such key; expected version, settings, log_level, issued_at")
    log_level = doc.get("log_level")
    if log_level is not None and log_level not in LOG_LEVELS:
        problems.append(f"log_level: got {log_level!r}, expected one of {', '.join(LOG_LEVELS)}")
    overlay = doc.get("settings", {})
    if not isinstance(overlay, dict):
        problems.append(f"settings: got {overlay!r:.60}, expected an object of sections")
        overlay = {}
    merged = base.model_dump()
    for section, values in overlay.items():
        live = LIVE_KEYS.get(section)
        if live is None:
            problems.append(
                f"settings.{section}: no such live section; expected one of {', '.join(LIVE_KEYS)} "
                "(anything else needs the config file and a restart)"
            )
            continue
        if not isinstance(values, dict):
            problems.append(f"settings.{section}: got {values!r:.60}, expected an object")
            continue
        for key, value in values.items():
            if key not in live:
                problems.append(
                    f"settings.{section}.{key}: not changeable at run time; expected one of {', '.join(live)}"
                )
            else:
                merged[section][key] = value
    if not problems:
        try:
            settings = from_dict(merged, source=f"desired config version {claimed}")
        except ConfigError as exc:
            problems.extend(f"settings.{p}" for p in exc.problems)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise BundleRejected("invalid", "; ".join(problems[:5]) + more, version=claimed)
    assert claimed is not None
    return Desired(claimed, settings, log_level, document)


def check_document(document: bytes) -> int:
    """An operator's check before signing: the document against the defaults (each store checks it again
    against its own file); returns its version, or raises BundleRejected naming every problem."""
    neutral = Settings(
        store=StoreSettings(id="check", chain_id="check", device_id="check"),
        zones=[Zone(id="check")],
        sources=SourcesSettings(checkin=False),
    )
    return merge(neutral, document).version


class DesiredConfig:
    """Takes config messages, keeps the last good one, applies it through `apply` and reports the result."""

    def __init__(
        self,
        base: Settings,
        store: Store,
        clock: Clock,
        link: MqttLink,
        topics: Topics,
        keys: list[Ed25519PublicKey],
        apply: Callable[[Settings], None],
    ):
        self._base = base
        self._store = store
        self._clock = clock
        self._link = link
        self._topic = topics.up("config/reported")
        self._device = topics.device
        self._keys = keys
        self._apply = apply
        self._start_level = logging.getLogger().level  # what the command line chose, for documents without one
        self.version: int | None = None
        self._document: bytes | None = None
        self.applied_at: str | None = None
        self.rejected: dict[str, Any] | None = None
        self.counts: Counter[str] = Counter()

    def restore(self) -> None:
        """Apply the last good document from SQLite, as it was validated against today's config file."""
        row = self._store.db.execute("SELECT version, document, applied_at FROM desired_config").fetchone()
        if row is None:
            return
        try:
            desired = merge(self._base, row[1].encode("utf-8"))
        except BundleRejected as exc:
            log.error("the stored desired config version %s no longer fits the config file: %s", row[0], exc.reason)
            self._reject(row[0], "unapplicable", f"stored version no longer fits the config file: {exc.reason}")
            return
        self._use(desired)
        self.applied_at = row[2]
        log.info("re-applied desired config version %d from the database", desired.version)

    def handle(self, data: bytes) -> None:
        """One message from `…/config`; never raises: a refusal is counted, logged, acknowledged and reported."""
        try:
            desired = merge(self._base, open_envelope(data, "config", self._base.store.id, self._keys, MAX_BYTES))
        except BundleRejected as exc:
            self._refuse(exc.version, exc.code, exc.reason)
            return
        if desired.version == self.version and desired.document == self._document:
            self.counts["unchanged"] += 1  # the retained copy again, after a reconnect
            return
        now = self._clock.wall().iso()
        db = self._store.db
        try:
            with db.atomic():
                self._store.bundle_versions.claim("config", desired.version, now, now)
                db.execute(
                    "INSERT INTO desired_config (id, version, document, applied_at) VALUES (1, ?, ?, ?)"
                    " ON CONFLICT (id) DO UPDATE SET version = excluded.version, document = excluded.document,"
                    " applied_at = excluded.applied_at",
                    [desired.version, desired.document.decode("utf-8"), now],
                )
        except StaleBundle as exc:
            self._refuse(desired.version, "stale", str(exc))
            return
        self._use(desired)
        self.applied_at = now
        self.rejected = None
        self.counts["applied"] += 1
        log.info("applied desired config version %d", desired.version)
        self._ack({"version": desired.version, "status": "applied"})
        self.publish_reported()

    def _use(self, desired: Desired) -> None:
        self._apply(desired.settings)
        logging.getLogger().setLevel(desired.log_level.upper() if desired.log_level else self._start_level)
        self.version = desired.version
        self._document = desired.document

    def _refuse(self, version: int | None, code: str, reason: str) -> None:
        log.warning("rejected desired config (version %s): %s: %s", version, code, reason)
        self._reject(version, code, reason)
        self._ack({"version": version, "status": "rejected", "code": code, "reason": reason})
        self.publish_reported()

    def _reject(self, version: int | None, code: str, reason: str) -> None:
        self.counts[f"rejected:{code}"] += 1
        self.rejected = {"version": version, "code": code, "reason": reason}

    def reported(self) -> dict[str, Any]:
        return {
            "device": self._device,
            "version": self.version,
            "applied_at": self.applied_at,
            "live_keys": {section: list(keys) for section, keys in LIVE_KEYS.items()},
            "rejected": self.rejected,
        }

    def publish_reported(self) -> None:
        """Retained, so the cloud always sees the latest; sent again on every connect, so none is missed."""
        if not self._link.connected.is_set():
            return
        payload = json.dumps(self.reported(), separators=(",", ":")).encode("utf-8")
        self._link.publish(self._topic, payload, qos=1, retain=True).add_done_callback(retrieve)

    def _ack(self, payload: dict[str, Any]) -> None:
        with self._store.db.atomic():
            self._store.outbox.add(
                stream="ack",
                kind="config_result",
                payload=payload,
                created_at=self._clock.wall().iso(),
                drop_class=DropClass.EVENT,
            )
