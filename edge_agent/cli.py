"""`edge-agent run | demo | check-config | db status | report | keys | bundle | models | enroll | faces | ble`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path

from . import __version__, config
from .ops import logs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge-agent", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the agent with a config file")
    run.add_argument("--config", required=True, type=Path)

    check = commands.add_parser("check-config", help="validate a config file and exit 0 if it is good")
    check.add_argument("file", type=Path)

    demo = commands.add_parser("demo", help="a demo store with simulated shoppers and cloud; no hardware")
    demo.add_argument("--seconds", type=float, default=None, help="stop after this long and print a JSON summary")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--dir", type=Path, default=None, help="where to keep the demo's config and database")
    demo.add_argument("--no-players", action="store_true", help="no headless screen players; browsers only")
    demo.add_argument(
        "--broker",
        default=None,
        help="HOST:PORT of an MQTT broker for the cloud simulator, or 'off' (default: "
        "start a private mosquitto if one is installed, else run offline)",
    )

    db = commands.add_parser("db", help="look at the local database")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    status = db_commands.add_parser("status", help="schema version and row counts as JSON")
    status.add_argument("--config", required=True, type=Path)

    keys = commands.add_parser("keys", help="signing keys for offer bundles and rosters; a host's device key")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    new = keys_commands.add_parser("new", help="make an Ed25519 key pair: NAME.key (private) and NAME.pub")
    new.add_argument("--dir", type=Path, default=Path("."))
    new.add_argument("--name", help="default: bundle-signing, or device with --device")
    new.add_argument(
        "--device",
        action="store_true",
        help="this host's device key instead (store.device_key_file); prints its public keys for the cloud",
    )
    new.add_argument(
        "--zone-beacon",
        action="store_true",
        help="the store's zone-beacon key instead (ble.zone_beacon.key_file): one file for every host of the store",
    )

    bundle = commands.add_parser("bundle", help="sign and publish offer bundles, rosters and desired configs")
    bundle_commands = bundle.add_subparsers(dest="bundle_command", required=True)
    sign = bundle_commands.add_parser("sign", help="check a bundle JSON file and wrap it in a signed envelope")
    sign.add_argument("file", type=Path)
    sign.add_argument("--key", required=True, type=Path, help="private key from `edge-agent keys new`")
    sign.add_argument(
        "--kind", choices=["offers", "roster", "roster_delta", "config"], help="default: from the content"
    )
    sign.add_argument("--store", required=True, help="the store id it is for (bound into the signature)")
    sign.add_argument("--out", type=Path, help="default: FILE with .signed.json")
    publish = bundle_commands.add_parser("publish", help="send a signed bundle to a store's topic")
    publish.add_argument("file", type=Path, help="a signed envelope from `edge-agent bundle sign`")
    publish.add_argument("--config", required=True, type=Path, help="the store's config: store id, broker, TLS")
    publish.add_argument("--host")
    publish.add_argument("--port", type=int)
    publish.add_argument("--username")
    publish.add_argument("--password-file", type=Path)
    publish.add_argument("--cert", type=Path, help="client certificate allowed to publish bundles (not the store's)")
    publish.add_argument("--cert-key", type=Path)

    report = commands.add_parser(
        "report",
        help="per offer and arm, by customer: conversions, revenue, uplift vs control or holdout, split checks; "
        "offers for anyone; playlist plays per campaign",
    )
    report.add_argument("--config", required=True, type=Path)
    report.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    report.add_argument("--since", default=None, help="only decisions from this UTC time on (ISO 8601)")
    report.add_argument("--day", default=None, help="only this day, as the store counts days (YYYY-MM-DD, local)")

    _vision_commands(commands)

    ble = commands.add_parser("ble", help="BLE calibration and evaluation tools")
    ble_commands = ble.add_subparsers(dest="ble_command", required=True)
    fit = ble_commands.add_parser(
        "fit-path-loss", help="the path-loss exponent from a calibration walk: CSV lines `distance_m,rssi_dbm`"
    )
    fit.add_argument("--reference", required=True, type=float, help="the walking phone's RSSI at 1 m (dBm)")
    fit.add_argument("file", type=Path)
    replay = ble_commands.add_parser(
        "replay", help="a recording's readings through the agent's presence path, scored against its truth (JSON)"
    )
    replay.add_argument("--config", required=True, type=Path, help="the store's config (receivers, zones, [ble])")
    replay.add_argument("--readings", required=True, type=Path, help="CSV t_s,receiver,subject,rssi_dbm[,tx_dbm]")
    replay.add_argument("--truth", required=True, type=Path, help="CSV t_s,subject,zone")
    replay.add_argument("--min-visit-s", type=float, default=5.0, help="shorter true visits are not counted (5)")
    replay.add_argument("--naive-window-s", type=float, default=5.0, help="the naive rule's mean window (5)")
    replay.add_argument("--reference-dbm", type=float, help="every phone's RSSI at 1 m (default: learned, as live)")

    args = parser.parse_args(argv)
    logs.setup(args.log_level)
    if args.command == "check-config":
        return _check_config(args.file)
    if args.command == "run":
        return _run(args.config)
    if args.command == "demo":
        return _demo(args)
    if args.command in ("keys", "bundle"):
        return _bundle_tools(args)
    if args.command == "report":
        return _report(args)
    if args.command in ("models", "enroll", "faces"):
        return _vision_command(args)
    if args.command == "ble" and args.ble_command == "replay":
        return _replay(args)
    if args.command == "ble":
        return _fit_path_loss(args.file, args.reference)
    return _db_status(args.config)


def _replay(args: argparse.Namespace) -> int:
    from .replay.recording import RecordingError
    from .replay.replay import figures, load

    settings = _load(args.config)
    if settings is None:
        return 2
    try:
        result = figures(
            settings,
            load(settings, args.readings, args.truth),
            min_visit_s=args.min_visit_s,
            naive_window_s=args.naive_window_s,
            reference_dbm=args.reference_dbm,
        )
    except RecordingError as exc:
        print(f"error: {exc.reason}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


def _local_day(day: str, timezone: str) -> tuple[str, str]:
    """The UTC span of a store's local day (23 or 25 hours when the clocks change)."""
    from datetime import UTC, date, datetime, time, timedelta
    from zoneinfo import ZoneInfo

    start = date.fromisoformat(day)
    zone = ZoneInfo(timezone)
    begin, end = (datetime.combine(d, time(), zone).astimezone(UTC) for d in (start, start + timedelta(days=1)))
    return begin.isoformat(timespec="milliseconds"), end.isoformat(timespec="milliseconds")


def _fit_path_loss(path: Path, reference_dbm: float) -> int:
    from .radio.placer import fit_path_loss_exponent

    readings = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            distance, rssi = (float(x) for x in line.split(","))
        except ValueError:
            print(f"{path}:{number}: got {line!r}, expected `distance_m,rssi_dbm`", file=sys.stderr)
            return 2
        readings.append((distance, rssi))
    try:
        exponent = fit_path_loss_exponent(readings, reference_dbm)
    except ValueError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"path_loss_exponent": round(exponent, 2), "readings": len(readings)}))
    return 0


def _vision_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def where(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, help="take vision.models_dir and thresholds from this config file")
        p.add_argument("--models", type=Path, help="the models folder (default: config, then $EDGE_AGENT_MODELS)")

    models = commands.add_parser("models", help="verify or install the ONNX models (see models/manifest.toml)")
    models_commands = models.add_subparsers(dest="models_command", required=True)
    where(models_commands.add_parser("check", help="sha256, loading and input/output of each model, as JSON"))
    install = models_commands.add_parser(
        "install", help="copy the models from a folder, verified, into the models folder"
    )
    install.add_argument("--from", dest="source", required=True, type=Path)
    where(install)

    enroll = commands.add_parser("enroll", help="compute face embeddings of a customer for upload, as JSON")
    enroll.add_argument("--customer", required=True, help="the customer_ref")
    enroll.add_argument("images", nargs="+", type=Path, help="photos with exactly one face each")
    where(enroll)

    faces = commands.add_parser("faces", help="face tools")
    faces_commands = faces.add_subparsers(dest="faces_command", required=True)
    verify = faces_commands.add_parser("verify", help="are two photos the same person? JSON with similarity")
    verify.add_argument("image_a", type=Path)
    verify.add_argument("image_b", type=Path)
    where(verify)


def _vision_command(args: argparse.Namespace) -> int:
    try:
        from .sources.vision import models, operator
        from .sources.vision.pipeline import load_models
    except ImportError as exc:
        print(f"error: {exc}; install the vision extra:  pip install 'edge-agent[vision]'", file=sys.stderr)
        return 2

    settings = config.VisionSettings()
    if args.config is not None:
        loaded = _load(args.config)
        if loaded is None:
            return 2
        settings = loaded.vision
    if args.models is not None:
        settings = settings.model_copy(update={"models_dir": args.models})
    try:
        folder = models.models_dir(settings.models_dir)
        if args.command == "models" and args.models_command == "check":
            report = models.check_all(folder)
            print(json.dumps({"folder": str(folder), "models": report}))
            return 0 if all(v == "ok" for v in report.values()) else 1
        if args.command == "models":
            installed = models.install(args.source, folder)
            print(json.dumps({"folder": str(folder), "installed": installed}))
            return 0
        loaded_models = load_models(settings, people=False)
        if args.command == "enroll":
            print(json.dumps(operator.enroll(loaded_models, args.customer, args.images, settings)))
        else:
            print(json.dumps(operator.verify(loaded_models, args.image_a, args.image_b, settings)))
        return 0
    except (models.ModelError, operator.ImageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _load(path: Path) -> config.Settings | None:
    """The config with its device profiles checked and applied; every problem printed, None if any."""
    try:
        settings = config.load(path)
    except config.ConfigError as exc:
        print(exc, file=sys.stderr)
        return None
    from . import devices

    problems = devices.referenced(settings)
    if problems:
        print(f"invalid configuration {path}:\n" + "\n".join(f"  {p}" for p in problems), file=sys.stderr)
        return None
    return devices.with_profiles(settings)


def _check_config(path: Path) -> int:
    settings = _load(path)
    if settings is None:
        return 2
    print(
        f"{path}: ok (store {settings.store.id}, {len(settings.zones)} zones, "
        f"{len(settings.touchpoints)} touchpoints, database {settings.database.path})"
    )
    return 0


def _run(path: Path) -> int:
    settings = _load(path)
    if settings is None:
        return 2
    logs.setup(logging.getLogger().level, settings.ops.log_format)
    from .app import Agent
    from .keys import DeviceKeyError

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await Agent(settings).run(stop)

    try:
        asyncio.run(serve())
    except DeviceKeyError as exc:  # a secret file, so check-config (run by anyone) does not open it
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    summary = asyncio.run(run_demo(args.seconds, args.port, args.dir, players=not args.no_players, broker=args.broker))
    print(json.dumps(summary), flush=True)
    return 0 if summary["errors"] == 0 else 1


def _db_status(path: Path) -> int:
    settings = _load(path)
    if settings is None:
        return 2
    from .store import open_store
    from .store.migrate import version

    store = open_store(settings.database.path)
    try:
        report = {
            "path": str(settings.database.path),
            "schema_version": version(store.db),
            "offers": store.offers.count(),
            "customers": store.roster.count(),
            "decisions": store.decisions.count(),
            "impressions": store.impressions.count(),
            "outbox_depth": store.outbox.depth(),
        }
    finally:
        store.close()
    print(json.dumps(report))
    return 0


def _bundle_tools(args: argparse.Namespace) -> int:
    from .cloud import tools

    try:
        if args.command == "keys" and args.device:
            key_path, device_public = tools.new_device_key(args.dir, args.name or "device")
            print(
                f"device key: {key_path} (keep it on this host only; point store.device_key_file at it)",
                file=sys.stderr,
            )
            print("its public keys, to register with the cloud for this host:", file=sys.stderr)
            print(json.dumps(device_public))
        elif args.command == "keys" and args.zone_beacon:
            key_path = tools.new_zone_beacon_key_file(args.dir, args.name or "zone-beacon")
            print(f"zone-beacon key: {key_path} (copy it to every host of the store, owner-only)", file=sys.stderr)
        elif args.command == "keys":
            key_path, public = tools.new_key_pair(args.dir, args.name or "bundle-signing")
            print(f"private key: {key_path} (keep it secret; it signs what every store applies)", file=sys.stderr)
            print(f"public key for mqtt.bundle_public_keys: {public}", file=sys.stderr)
            print(public)
        elif args.bundle_command == "sign":
            kind, envelope = tools.sign_file(args.file, tools.load_key(args.key), args.kind, args.store)
            out = args.out or args.file.with_suffix(".signed.json")
            out.write_bytes(envelope)
            print(f"signed {kind} bundle for store {args.store} written to {out}")
        else:
            return _publish(args)
    except tools.ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _publish(args: argparse.Namespace) -> int:
    from .cloud import tools

    settings = _load(args.config)
    if settings is None:
        return 2
    if settings.mqtt is None and args.host is None:
        print(f"error: {args.config} has no [mqtt] section; pass --host", file=sys.stderr)
        return 2
    overrides = {
        "host": args.host,
        "port": args.port,
        "username": args.username,
        "password_file": args.password_file,
        "tls_cert_file": args.cert,
        "tls_key_file": args.cert_key,
    }
    mqtt = settings.mqtt or config.MqttSettings(host=args.host)
    mqtt = mqtt.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    try:
        envelope = args.file.read_bytes()
    except OSError as exc:
        print(f"error: {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    topic = asyncio.run(tools.publish(mqtt, settings.store.id, envelope))
    print(f"published to {topic}")
    return 0


def _report(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if settings is None:
        return 2
    from datetime import UTC, datetime

    from .decide import report
    from .store import open_store

    since = until = None
    if args.day is not None:
        try:
            since, until = _local_day(args.day, settings.store.timezone)
        except ValueError:
            print(f"--day: got {args.day!r}, expected a date like 2026-12-05", file=sys.stderr)
            return 2
    if args.since is not None:
        try:
            at = datetime.fromisoformat(args.since.replace("Z", "+00:00"))
        except ValueError:
            print(f"--since: got {args.since!r}, expected an ISO 8601 time like 2026-11-01T00:00:00Z", file=sys.stderr)
            return 2
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        since = at.isoformat(timespec="milliseconds")
    store = open_store(settings.database.path)
    try:
        results = report.report(store, since, until)
    finally:
        store.close()
    print(json.dumps(report.as_json(results)) if args.json else report.as_text(results))
    return 0
