"""A private Mosquitto for tests, benchmarks and the demo: own config, free port, no persistence.

It can be killed (`kill -9`) and started again on the same port, which is how outages are made.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Mosquitto:
    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        settings: str = "allow_anonymous true\n",
        durable: bool = False,
    ):
        """`settings` goes under the listener line (TLS files, ACL, ...); the default lets anyone in.

        `durable` keeps sessions and queued messages on disk after every change, as a cloud broker does,
        so its subscribers' sessions survive a `kill -9`; otherwise nothing is persisted.
        """
        binary = find_mosquitto()
        if binary is None:
            raise FileNotFoundError("mosquitto is not installed (Debian package: mosquitto)")
        self.binary = binary
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.conf = self.workdir / "mosquitto.conf"
        persistence = (
            f"persistence true\npersistence_location {self.workdir}/\nautosave_interval 1\nautosave_on_changes true\n"
            if durable
            else "persistence false\n"
        )
        self.conf.write_text(
            # Started as root it would switch to the `mosquitto` user, who cannot read the test's files.
            f"user {getpass.getuser()}\nper_listener_settings false\n{persistence}"
            # Mosquitto holds at most 1 000 QoS 1 messages for a subscriber that falls behind and drops the rest
            # (logged at notice): a cloud simulator whose loop stalls under a benchmark's load would lose what the
            # agent had already handed over. The cloud's broker keeps them (0, "no limit", makes Mosquitto 2.0.11
            # drop clients an ACL refuses).
            "max_queued_messages 1000000\n"
            "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
            f"listener {self.port} {self.host}\n{settings}",
            encoding="utf-8",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> Mosquitto:
        """Start and wait until the port accepts connections."""
        log = (self.workdir / "mosquitto.log").open("ab")
        self.process = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}; see {self.workdir}/mosquitto.log")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
                return self
            if time.monotonic() > deadline:
                raise TimeoutError(f"mosquitto did not listen on port {self.port} within {timeout} s")
            time.sleep(0.02)

    def kill(self) -> None:
        """kill -9: no clean shutdown, sessions and in-flight messages are gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


SYSTEMD = Path(__file__).resolve().parents[1] / "systemd"


def store_broker(
    workdir: Path, store: str, passwords: dict[str, str], *, hosts: list[str], nodes: list[str]
) -> Mosquitto:
    """The store's Mosquitto as shipped (systemd/mosquitto-store.conf and mosquitto-store.acl, one ACL block per
    host and per scanner node), with these users' passwords. A user named `cloud` stands for the bridge to the
    chain, which the broker does not check against the ACL: it may read and write the store's topics."""
    workdir.mkdir(parents=True, exist_ok=True)
    passwd, acl = workdir / "store.passwd", workdir / "store.acl"
    for i, (user, password) in enumerate(passwords.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run(
            ["mosquitto_passwd", "-b", *create, str(passwd), user, password], check=True, capture_output=True
        )
    passwd.chmod(0o644)  # mosquitto runs as this user and reads it
    template = (SYSTEMD / "mosquitto-store.acl").read_text(encoding="utf-8")
    host_block, node_block = template.split("# --- a scanner node")
    blocks = [host_block.replace("@DEVICE_ID@", h) for h in hosts]
    blocks += ["# --- a scanner node" + node_block.replace("@SCANNER_ID@", n) for n in nodes]
    text = "\n".join(blocks).replace("@STORE_ID@", store)
    acl.write_text(
        f"{text}\n# the bridge's stand-in\nuser cloud\ntopic readwrite retail/v1/{store}/#\n", encoding="utf-8"
    )
    shipped = [
        line
        for line in (SYSTEMD / "mosquitto-store.conf").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith(("#", "listener", "per_listener_settings"))  # the port is chosen here
    ]
    settings = "\n".join(shipped).replace("/etc/mosquitto/store.passwd", str(passwd))
    return Mosquitto(workdir / "mq", settings=settings.replace("/etc/mosquitto/store.acl", str(acl)) + "\n")
