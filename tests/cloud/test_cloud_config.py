"""The [mqtt] section: every mistake is named with its key, files are found next to the config."""

import pytest

from edge_agent.config import ConfigError, from_dict
from tests.factories import config_dict

KEY = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="


def _problems(tmp_path, issuer, **mqtt):
    with pytest.raises(ConfigError) as info:
        from_dict(config_dict(tmp_path, issuer, mqtt=mqtt))
    return {p.key: p.expected for p in info.value.problems}


def test_a_good_section_with_files_relative_to_the_config(tmp_path, issuer):
    mqtt = {"host": "broker", "bundle_public_keys": [KEY], "tls_ca_file": "pki/ca.crt", "username": "u"}
    settings = from_dict(config_dict(tmp_path, issuer, mqtt=mqtt), base_dir=tmp_path)
    assert settings.mqtt.tls_ca_file == (tmp_path / "pki" / "ca.crt").resolve()
    assert settings.mqtt.telemetry_interval_s == 30 and settings.mqtt.topic_prefix == "retail/v1"


def test_every_mistake_is_named(tmp_path, issuer):
    problems = _problems(
        tmp_path,
        issuer,
        host="broker",
        bundle_public_keys=[],
        tls_cert_file="a.crt",
        password_file="pw",
        reconnect_min_s=10.0,
        reconnect_max_s=2.0,
    )
    assert "at least one key" in problems["mqtt.bundle_public_keys"]
    assert "tls_cert_file and tls_key_file set together" in problems["mqtt.tls_key_file"]
    assert "username" in problems["mqtt.username"]
    assert "at most reconnect_max_s" in problems["mqtt.reconnect_min_s"]


def test_a_bad_key_and_an_unknown_key_are_refused(tmp_path, issuer):
    problems = _problems(
        tmp_path, issuer, host="broker", bundle_public_keys=["bm90IGEga2V5"], qos=2, topic_prefix="retail/#"
    )
    assert "32-byte Ed25519 public key" in problems["mqtt.bundle_public_keys"]
    assert "mqtt.topic_prefix" in problems
    assert "no such key" in problems["mqtt.qos"] and "bundle_public_keys" in problems["mqtt.qos"]
