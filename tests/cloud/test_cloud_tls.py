"""A broker with TLS, client certificates and an ACL: each store reaches its own topics and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_agent.config import MqttSettings, from_dict
from edge_agent.mqtt import MqttLink
from simulators.broker import Mosquitto
from simulators.cloud import CloudSim, roster_bundle
from tests.factories import config_dict, customer

# The ACL an operator would write: the certificate's common name is the store id.
ACL = """\
user cloud
topic readwrite retail/v1/#

pattern read retail/v1/%u/offers
pattern read retail/v1/%u/roster
pattern read retail/v1/%u/roster/delta
pattern read retail/v1/%u/context
pattern read retail/v1/%u/cmd/#
pattern write retail/v1/%u/+/status
pattern write retail/v1/%u/+/events
pattern write retail/v1/%u/+/ack
pattern write retail/v1/%u/+/telemetry
"""


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[Path, Path]:
    key_path, cert_path = path.with_suffix(".key"), path.with_suffix(".crt")
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)  # the agent refuses a private key others may read
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


class ThrowawayCA:
    def __init__(self, folder: Path):
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name("test CA"))
            .issuer_name(_name("test CA"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.path = folder / "ca.crt"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def broker_settings(self, cn: str, acl: str) -> str:
        """Mosquitto settings for a TLS listener with this CA: client certificates required, the
        certificate's CN as user name, `acl` as its access list."""
        cert, key = self.issue(cn, server=True)
        acl_path = self.folder / f"{cn}.acl"
        acl_path.write_text(acl, encoding="utf-8")
        return (
            f"cafile {self.path}\ncertfile {cert}\nkeyfile {key}\nrequire_certificate true\n"
            f"use_identity_as_username true\nacl_file {acl_path}\n"
        )

    def issue(self, cn: str, server: bool = False) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )
        if server:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return _write(self.folder / cn, key, builder.sign(self.key, hashes.SHA256()))


@pytest.fixture
def secure_broker(tmp_path):
    folder = tmp_path / "pki"
    folder.mkdir()
    ca = ThrowawayCA(folder)
    broker = Mosquitto(tmp_path / "mosquitto", settings=ca.broker_settings("broker", ACL)).start()
    yield broker, ca
    broker.stop()


def _tls(ca: ThrowawayCA, cn: str) -> dict[str, Path]:
    cert, key = ca.issue(cn)
    return {"tls_ca_file": ca.path, "tls_cert_file": cert, "tls_key_file": key}


async def test_store_a_can_neither_read_store_b_nor_publish_on_its_topics(tmp_path, issuer, secure_broker, running):
    broker, ca = secure_broker
    cloud_a = await CloudSim("localhost", broker.port, "store-a", tls=_tls(ca, "cloud")).start()
    cloud_b = await CloudSim("localhost", broker.port, "store-b", key=cloud_a.key, tls=_tls(ca, "cloud")).start()
    try:
        await cloud_b.publish_roster(roster_bundle(1, [customer("bea-of-store-b")]))

        # Store A's agent runs over TLS with its client certificate and gets its own roster.
        tls_a = {k: str(v) for k, v in _tls(ca, "store-a").items()}
        mqtt = {"host": "localhost", "port": broker.port, "bundle_public_keys": [cloud_a.public_key_b64], **tls_a}
        data = config_dict(tmp_path, issuer, mqtt={**mqtt, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0})
        data["store"]["id"] = "store-a"
        agent = await running(from_dict(data), seeded=False)
        await cloud_a.wait_for(lambda: cloud_a.status.get("edge-test") == "online")
        await cloud_a.publish_roster(roster_bundle(1, [customer("ann-of-store-a")]))
        await cloud_a.wait_for(lambda: cloud_a.of_kind("bundle_result"))
        assert agent.store.roster.get("ann-of-store-a") is not None
        assert agent.store.roster.get("bea-of-store-b") is None

        # With store A's certificate, a client tries store B's roster and B's topics.
        intruder = MqttLink(
            MqttSettings(host="localhost", port=broker.port, **_tls(ca, "store-a")),
            "intruder",
            subscriptions=["retail/v1/store-b/roster", "retail/v1/store-a/roster"],
            persistent=False,
        )
        task = asyncio.create_task(intruder.run())
        try:
            # Retained messages follow the SUBACK in order: once A's roster is in, B's would have come first.
            first = await asyncio.wait_for(intruder.inbox.get(), 15)
            assert first.topic == "retail/v1/store-a/roster"
            assert intruder.inbox.empty()  # Mosquitto grants the subscription but never delivers B's roster
            # Publishing on B's topics: the broker takes it (MQTT 3.1.1) but drops it; what follows on A's own
            # topic arrives, so B's message, sent first by the same client, would have arrived before it.
            await intruder.publish("retail/v1/store-b/edge-test/events", b'{"events": [{"uuid": "forged"}]}')
            await intruder.publish("retail/v1/store-b/roster", b"forged", retain=True)
            await intruder.publish("retail/v1/store-a/edge-x/status", b"online")
            await cloud_a.wait_for(lambda: cloud_a.status.get("edge-x") == "online")
            assert "forged" not in cloud_b.events and cloud_b.garbage == 0
        finally:
            await intruder.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert cloud_b.status == {}
    finally:
        await cloud_a.close()
        await cloud_b.close()


async def test_a_client_without_a_certificate_is_turned_away(secure_broker):
    broker, ca = secure_broker
    link = MqttLink(
        MqttSettings(
            host="localhost",
            port=broker.port,
            tls_ca_file=ca.path,
            reconnect_min_s=0.1,
            reconnect_max_s=0.2,
            connect_timeout_s=3,
        ),
        "no-cert",
        persistent=False,
    )
    task = asyncio.create_task(link.run())
    try:
        async with asyncio.timeout(60):
            while link.counts["connect_failures"] < 2:
                await asyncio.sleep(0.05)
        assert link.counts["connects"] == 0 and not link.connected.is_set()
    finally:
        await link.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_username_and_password_from_a_file(tmp_path):
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "store-a", "s3cret"], check=True)
    with Mosquitto(tmp_path / "mq", settings=f"allow_anonymous false\npassword_file {passwords}\n") as broker:
        results = {}
        for label, secret in (("right", "s3cret\n"), ("wrong", "guess\n")):
            (tmp_path / label).write_text(secret, encoding="utf-8")
            (tmp_path / label).chmod(0o600)
            settings = MqttSettings(
                host=broker.host,
                port=broker.port,
                username="store-a",
                password_file=tmp_path / label,
                reconnect_min_s=0.1,
                reconnect_max_s=0.2,
            )
            link = MqttLink(settings, f"client-{label}", persistent=False)
            task = asyncio.create_task(link.run())
            async with asyncio.timeout(15):
                while not (link.connected.is_set() or link.counts["refused"]):
                    await asyncio.sleep(0.05)
            results[label] = link.connected.is_set()
            await link.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert results == {"right": True, "wrong": False}


async def test_a_bare_secret_name_is_the_units_systemd_credential(tmp_path, monkeypatch):
    """`LoadCredential=mqtt-password:…` puts the secret under $CREDENTIALS_DIRECTORY; the config names it bare."""
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "store-a", "s3cret"], check=True)
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "mqtt-password").write_text("stale-copy\n", encoding="utf-8")  # beside the config: not the credential
    (conf / "mqtt-password").chmod(0o600)
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "mqtt-password").write_text("s3cret\n", encoding="utf-8")
    (creds / "mqtt-password").chmod(0o400)  # as systemd hands it over
    section = MqttSettings(host="127.0.0.1", username="store-a", password_file=Path("mqtt-password"))

    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert section.resolved(conf).password_file == (conf / "mqtt-password").resolve()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert section.resolved(conf).password_file == creds / "mqtt-password"
    nested = section.model_copy(update={"password_file": Path("secrets/mqtt-password")})
    assert nested.resolved(conf).password_file == (conf / "secrets/mqtt-password").resolve()  # a path: not a name

    with Mosquitto(tmp_path / "mq", settings=f"allow_anonymous false\npassword_file {passwords}\n") as broker:
        settings = section.model_copy(
            update={"port": broker.port, "reconnect_min_s": 0.1, "reconnect_max_s": 0.2}
        ).resolved(conf)
        link = MqttLink(settings, "client-credential", persistent=False)
        task = asyncio.create_task(link.run())
        try:
            async with asyncio.timeout(15):
                while not (link.connected.is_set() or link.counts["refused"]):
                    await asyncio.sleep(0.05)
            assert link.connected.is_set()
        finally:
            await link.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
