"""Faults under load: every event the agent records reaches the cloud exactly once after dedup, whatever breaks.

A real agent process (`python -m edge_agent run`) serves the demo store with a real Mosquitto, the cloud
simulator, shoppers checking in, headless screen players acknowledging what they show, a till on a pty
buying after decisions, phones advertising the app's BLE token through a simulated BlueZ and (where the
models are installed) a camera file watched by the vision source. Meanwhile, in a random order and at
random moments:

- the agent is killed with SIGKILL and started again (`kills`);
- the broker is killed (`kill -9`) and started again after a random outage (`broker_kills`);
- the tmpfs holding the agent's database is filled to ENOSPC, then freed (`disk_full_episodes`; mounting needs
  root: without it `disk` says the episodes were not run, and tests/store/test_storage_full.py covers a full database);
- the BLE adapter is unplugged, or BlueZ restarted, and comes back (`adapter_losses`);
- the camera's video file goes away and comes back (`camera_losses`).

An event is recorded when the agent commits it (a trigger journals every outbox row's uuid; see
bench/agent_faults.py). `events_lost` counts recorded events the cloud never received; `duplicates_after_dedup`
counts facts (a decision, its impression, its conversion) the cloud holds more than once after dedup by uuid;
`duplicates_before_dedup` the copies the cloud removed (expected after kills). After each fault the events
recorded so far must all reach the cloud (`faults_delivered` of `faults`); `recovered` says, per kind,
whether the agent came back from every episode of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import random
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import tomli_w

from bench.agent_faults import Journal, StateDisk, install_journal, tally
from bench.agent_process import AgentProcess
from bench.harness import models_folder
from edge_agent.demo.cloud import provision
from edge_agent.demo.store import TOUCHPOINTS, demo_bundle, demo_config, demo_roster
from simulators.bluez import PrivateBus, SimulatedBlueZ, dbus_available
from simulators.broker import Mosquitto, free_port
from simulators.checkin_app import CheckinIssuer, Shoppers, post_checkin
from simulators.cloud import CloudSim, roster_bundle
from simulators.phone import phone_for
from simulators.screen import ScreenPlayer
from simulators.till import PROFILE, Buyers, SimulatedTill

STORE, DEVICE, CHAIN = "demo-store", "edge-demo", "demo-chain"
BLE_CUSTOMERS = ("ble-001", "ble-002", "ble-003")
DELIVERY_TIMEOUT_S = 120.0
RECOVERY_TIMEOUT_S = 45.0


@dataclass(frozen=True)
class Plan:
    kills: int
    broker_kills: int
    disk_full_episodes: int
    adapter_losses: int
    camera_losses: int
    max_gap_s: float = 3.0  # load runs a random 0…max_gap_s between faults
    seed: int = 1


QUICK = Plan(kills=8, broker_kills=2, disk_full_episodes=1, adapter_losses=1, camera_losses=1)
FULL = Plan(kills=60, broker_kills=8, disk_full_episodes=3, adapter_losses=4, camera_losses=4)


class FaultRun:
    """One store under load and the faults done to it; use `async with FaultRun(...) as run: await run.faults()`."""

    def __init__(self, workdir: Path, plan: Plan, *, vision: bool = True):
        self.workdir = workdir
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.models = models_folder() if vision else None  # vision runs only where the models are
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ops_token = secrets.token_urlsafe(18)
        self.issuer = CheckinIssuer(STORE)
        self.disk = StateDisk(workdir / "state")
        self.video = workdir / "camera.avi"
        self.counts: Counter[str] = Counter()
        self.recovered: dict[str, list[bool]] = {}
        self.notes: list[str] = []
        self.storage_metrics: list[str] = []  # /metrics about storage, at the height of the last disk-full episode
        self._checks: list[asyncio.Task[bool]] = []
        self._load: list[asyncio.Task[Any]] = []
        self._stack = contextlib.AsyncExitStack()

    # --- setting the store up -------------------------------------------------------------------------

    async def __aenter__(self) -> FaultRun:
        stack = self._stack
        await stack.__aenter__()
        try:
            await self._set_up(stack)
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.__aexit__(None, None, None)

    async def _set_up(self, stack: contextlib.AsyncExitStack) -> None:
        self.disk.mount()
        stack.callback(self.disk.unmount)
        stack.callback(self.disk.free)
        self.broker = await asyncio.to_thread(Mosquitto(self.workdir / "mosquitto", durable=True).start)
        stack.callback(self.broker.stop)
        self.cloud = await CloudSim(self.broker.host, self.broker.port, STORE).start()
        stack.push_async_callback(self.cloud.close)
        env = {}
        self.bluez: SimulatedBlueZ | None = None
        if dbus_available():
            bus = stack.enter_context(PrivateBus())
            self.bluez = SimulatedBlueZ(bus.address)
            await self.bluez.start()
            stack.push_async_callback(self.bluez.stop)
            env["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
        if self.models is not None:
            from simulators.camera import render, scene

            await asyncio.to_thread(render, self.video, scene(4.0), seconds=4.0, fps=5.0)
        db_path = self.disk.path / "edge-agent.db"
        config_path = self.workdir / "edge-agent.toml"
        config_path.write_text(tomli_w.dumps(self._config(db_path)), encoding="utf-8")
        (self.workdir / "till-profile.toml").write_text(tomli_w.dumps(PROFILE), encoding="utf-8")
        install_journal(db_path)
        self.journal = Journal(db_path)
        stack.callback(self.journal.close)
        self.till = SimulatedTill(self.workdir / "ttyTILL")
        stack.callback(self.till.close)
        self.agent = AgentProcess(config_path, f"http://127.0.0.1:{self.port}", log=self.workdir / "agent.log", env=env)
        stack.callback(self.agent.stop)
        self.agent.spawn()
        await self.agent.serving()
        await self.cloud.wait_for(lambda: self.cloud.status.get(DEVICE) == "online", timeout=60)
        now = time.time()
        phones = [
            phone_for(ref, CHAIN).roster_entry(now, {"ble": True, "personalisation": True}) for ref in BLE_CUSTOMERS
        ]
        await self.cloud.publish_offers(demo_bundle(datetime.now(UTC)).model_dump(mode="json"))
        await self.cloud.publish_roster(roster_bundle(1, [*demo_roster(), *phones]))
        await self.cloud.wait_for(lambda: len(self.cloud.of_kind("bundle_result")) >= 2, timeout=60)

    def _config(self, db_path: Path) -> dict[str, Any]:
        config = demo_config(self.workdir, self.port, self.issuer.public_key_b64, ble=self.bluez is not None)
        config["database"] = {"path": str(db_path)}
        config["surfaces"]["auth"] = {"ops_tokens": [self.ops_token]}
        config["presence"] = {"hold_down_s": 3.0, "checkin_hold_s": 10.0, "dwell_interval_s": 5.0}
        config["ble"] |= {"stall_s": 5.0, "window_s": 3.0}
        config["pos"]["reconnect_s"] = 0.5
        config["mqtt"] = {
            "host": self.broker.host,
            "port": self.broker.port,
            "bundle_public_keys": [self.cloud.public_key_b64],
            "telemetry_interval_s": 5.0,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1.0,
            "puback_timeout_s": 10.0,
        }
        provision(config, self.workdir, self.cloud)
        if self.models is not None:
            config["sources"]["vision"] = True
            camera = {"id": "cam-entrance", "source": str(self.video), "zone": "entrance", "max_fps": 2.0, "loop": True}
            config["vision"] = {"models_dir": str(self.models), "intra_op_threads": 1, "cameras": [camera]}
        return config

    # --- load -----------------------------------------------------------------------------------------

    def _decided_after(self, rowid: int) -> list[tuple[int, str, str, str]]:
        return self.journal.query(
            "SELECT rowid, customer_ref, intended_offer_id, offer_id FROM decisions"
            " WHERE rowid > ? AND customer_ref IS NOT NULL AND intended_offer_id IS NOT NULL ORDER BY rowid LIMIT 20",
            [rowid],
        )

    def start_load(self) -> None:
        customers = [c.customer_ref for c in demo_roster()]
        self.shoppers = Shoppers(self.url, self.issuer, customers, [t["id"] for t in TOUCHPOINTS], mean_gap_s=0.4)
        bundle = demo_bundle(datetime.now(UTC))
        buyers = Buyers(self.till, self._decided_after, {o.offer_id: o.sku for o in bundle.offers if o.sku})
        work = [self.shoppers.run(), buyers.run(1.0), *(ScreenPlayer(self.url, t["id"]).run() for t in TOUCHPOINTS)]
        if self.bluez is not None:
            work.append(self._advertise())
        self._load = [asyncio.create_task(w) for w in work]

    async def stop_load(self) -> None:
        for task in self._load:
            task.cancel()
        await asyncio.gather(*self._load, return_exceptions=True)

    async def _advertise(self) -> None:
        assert self.bluez is not None
        phones = [phone_for(ref, CHAIN) for ref in BLE_CUSTOMERS]
        while True:
            now = time.time()
            for phone in phones:
                self.bluez.advertise(phone.customer_ref, -55, phone.advert(now))
            await asyncio.sleep(0.2)

    # --- looking at the agent -------------------------------------------------------------------------

    async def _ops_get(self, path: str) -> str | None:
        """What an operator's scrape of `path` gets; None while the agent does not answer."""
        headers = {"Authorization": f"Bearer {self.ops_token}"}
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with aiohttp.ClientSession() as http, http.get(f"{self.url}{path}", headers=headers) as resp:
                return await resp.text() if resp.status == 200 else None
        return None

    async def health(self) -> dict[str, Any] | None:
        text = await self._ops_get("/healthz")
        return json.loads(text) if text else None

    async def metrics(self) -> str:
        return await self._ops_get("/metrics") or ""

    async def until(self, predicate: Callable[[], Any], timeout: float = RECOVERY_TIMEOUT_S) -> bool:
        """Whether `predicate()` (a plain or an async function) came true within `timeout`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not await _value(predicate()):
                    await asyncio.sleep(0.2)
                return True
        return False

    def _check_delivery(self) -> None:
        """In the background: every event recorded up to now must reach the cloud."""
        snapshot = set(self.journal.recorded())

        async def delivered() -> bool:
            return await self.until(lambda: snapshot.issubset(self.cloud.events), DELIVERY_TIMEOUT_S)

        self._checks.append(asyncio.create_task(delivered()))

    def _recovered(self, kind: str, ok: bool, why: str = "") -> None:
        self.recovered.setdefault(kind, []).append(ok)
        if not ok:
            self.notes.append(f"{kind} #{len(self.recovered[kind])}: {why}")

    # --- faults ---------------------------------------------------------------------------------------

    async def faults(self) -> None:
        p = self.plan
        schedule = ["kill"] * p.kills + ["broker"] * p.broker_kills
        if self.disk.available:
            schedule += ["disk_full"] * p.disk_full_episodes
        if self.bluez is not None:
            schedule += ["adapter"] * p.adapter_losses
        if self.models is not None:
            schedule += ["camera"] * p.camera_losses
        self.rng.shuffle(schedule)
        handlers = {
            "kill": self.kill_agent,
            "broker": self.kill_broker,
            "disk_full": self.fill_disk,
            "adapter": self.lose_adapter,
            "camera": self.lose_camera,
        }
        for kind in schedule:
            await asyncio.sleep(self.rng.uniform(0.0, p.max_gap_s))
            if kind != "kill":  # the others are done to a running agent, to see it through them
                await self.agent.serving()
            await handlers[kind]()
            self._check_delivery()

    async def kill_agent(self) -> None:
        """SIGKILL at a random moment (sometimes while it is still starting), then start it again at once."""
        self.counts["kills_before_serving"] += not self.agent.listening()
        self.agent.kill()
        self.agent.spawn()

    async def kill_broker(self) -> None:
        self.broker.kill()
        self.counts["broker_kills"] += 1
        await asyncio.sleep(self.rng.uniform(0.5, 3.0))
        await asyncio.to_thread(self.broker.start)
        pid = self.agent.proc.pid if self.agent.proc else None

        async def reconnected() -> bool:
            return self.cloud.status.get(DEVICE) == "online" and self.cloud.link.connected.is_set()

        ok = await self.until(reconnected)
        self._recovered("broker", ok and self.agent.alive() and pid == self.agent.proc.pid, "agent not back")

    async def fill_disk(self) -> None:
        """The database's disk full for a few seconds under load: refused with a reason, nothing lost, no crash."""
        assert self.agent.proc is not None
        pid = self.agent.proc.pid
        self.disk.fill()
        self.counts["disk_full_episodes"] += 1

        async def refused() -> bool:
            """A check-in answered 503 storage_full (SQLite fails once it needs a page it has not got)."""
            status, body = await self._probe_checkin()
            self.counts[f"checkins_while_full:{status}:{body.get('error', '')}"] += 1
            return status == 503 and body.get("error") == "storage_full" and bool(body.get("reason"))

        was_refused = await self.until(refused, 30.0)
        if self.counts["disk_full_episodes"] % 2 == 1:
            # Killed while the disk is full, it must start again on the full disk, not crash in a loop.
            self.agent.kill()
            starts = self.agent.starts
            self.agent.spawn()
            await self.agent.serving()
            pid = self.agent.proc.pid
            self.counts["starts_on_full_disk"] += 1
            self.counts["failed_starts_on_full_disk"] += self.agent.starts - starts - 1
            was_refused = was_refused and await self.until(refused, 30.0)
        await asyncio.sleep(self.rng.uniform(1.0, 4.0))  # full, under load
        self.storage_metrics = [
            line for line in (await self.metrics()).splitlines() if "storage" in line and not line.startswith("#")
        ]
        survived = self.agent.alive() and self.agent.proc.pid == pid
        during = len(self.journal.recorded())
        self.disk.free()

        async def accepted_again() -> bool:
            return (await self._probe_checkin())[0] == 202 and len(self.journal.recorded()) > during

        ok = await self.until(accepted_again)
        self._recovered(
            "disk_full",
            was_refused and ok and survived,
            f"refused with a reason: {was_refused}, accepting again: {ok}, same process throughout: {survived}",
        )

    async def _probe_checkin(self) -> tuple[int, dict[str, Any]]:
        token = self.issuer.token(demo_roster()[0].customer_ref, TOUCHPOINTS[0]["id"])
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with aiohttp.ClientSession() as http:
                return await post_checkin(http, self.url, token)
        return 0, {}

    async def lose_adapter(self) -> None:
        """The adapter unplugged, or BlueZ restarted (every other time): BLE sightings must resume after."""
        assert self.bluez is not None
        self.counts["adapter_losses"] += 1
        restart = self.counts["adapter_losses"] % 2 == 0
        if restart:
            await self.bluez.restart(down_s=self.rng.uniform(1.0, 3.0))
        else:
            self.bluez.unplug_adapter()
            await asyncio.sleep(self.rng.uniform(1.0, 3.0))
            self.bluez.plug_adapter()
        resolved = _resolved(await self.health())

        async def hearing_again() -> bool:
            health = await self.health()
            return bool(health and (health.get("ble") or {}).get("scanning") and _resolved(health) > resolved)

        ok = await self.until(hearing_again)
        self._recovered("adapter", ok, "BLE sightings did not resume")

    async def lose_camera(self) -> None:
        """The camera's file goes away (as a camera unplugged) and returns: the camera must run again."""

        async def camera(state: str) -> bool:
            cameras = ((await self.health()) or {}).get("vision", {}).get("cameras", {})
            return cameras.get("cam-entrance", {}).get("state") == state

        await self.until(lambda: camera("running"))  # a restarted agent may still be loading its models
        self.counts["camera_losses"] += 1
        away = self.video.with_suffix(".away")
        self.video.rename(away)
        went_down = await self.until(lambda: camera("down"), 20.0)
        away.rename(self.video)
        ok = await self.until(lambda: camera("running"))
        self._recovered("camera", went_down and ok, f"seen down: {went_down}, running again: {ok}")

    # --- the end --------------------------------------------------------------------------------------

    async def settle(self) -> dict[str, Any]:
        """Stop the load, let the agent send what it holds, and count."""
        await self.stop_load()
        await self.agent.serving()
        checks = await asyncio.gather(*self._checks)

        async def drained() -> bool:
            recorded = self.journal.recorded()
            waiting = self.journal.query("SELECT count(*) FROM outbox WHERE stream IN ('events', 'ack')")[0][0]
            return waiting == 0 and set(recorded).issubset(self.cloud.events)

        await self.until(drained, DELIVERY_TIMEOUT_S)
        result = tally(self.journal.recorded(), self.cloud.events, sum(self.cloud.duplicates.values()))
        health = await self.health() or {}
        self.agent.stop()
        return {
            "kills": self.agent.kills,
            **result,
            "broker_kills": self.counts["broker_kills"],
            "disk_full_episodes": self.counts["disk_full_episodes"],
            "adapter_losses": self.counts["adapter_losses"],
            "camera_losses": self.counts["camera_losses"],
            "kills_before_serving": self.counts["kills_before_serving"],
            "faults": len(checks),
            "faults_delivered": sum(checks),
            "recovered": {kind: all(oks) for kind, oks in self.recovered.items()},
            "disk": "tmpfs filled to ENOSPC" if self.disk.available else f"not filled: {self.disk.why_not}",
            "checkins_while_full": {k.split(":", 1)[1]: n for k, n in self.counts.items() if k.startswith("checkins_")},
            "storage_metrics": self.storage_metrics,
            "starts_on_full_disk": self.counts["starts_on_full_disk"],
            "failed_starts_on_full_disk": self.counts["failed_starts_on_full_disk"],
            "checkins": dict(self.shoppers.outcomes),
            "component_restarts_last_run": health.get("restarts", {}),
            "vision": self.models is not None,
            "ble": self.bluez is not None,
            "notes": self.notes,
        }


def _resolved(health: dict[str, Any] | None) -> int:
    return int(health["ble"]["adverts"].get("resolved", 0)) if health and health.get("ble") else 0


async def _value(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result


async def run_faults(plan: Plan, *, vision: bool = True, workdir: Path | None = None) -> dict[str, Any]:
    """The whole run in `workdir` (a fresh temporary folder by default); returns the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-faults-") as tmp:
        folder = workdir or Path(tmp)
        start = time.monotonic()
        async with FaultRun(folder, plan, vision=vision) as run:
            run.start_load()
            await run.faults()
            result = await run.settle()
        result["seconds"] = round(time.monotonic() - start, 1)
        return result


async def run(quick: bool) -> dict[str, Any]:
    return await run_faults(QUICK if quick else FULL)
