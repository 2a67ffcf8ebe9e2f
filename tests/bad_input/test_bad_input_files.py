"""Bad input in files an operator edits: the config file, every kind of device profile, bundles to sign.
Near misses of the shipped files (a key dropped, a value swapped for any TOML value, a key added) and any text
at all give valid settings or a refusal that names the key (config) or the file (profile, bundle); never
another exception."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edge_agent import config, devices, profiles
from edge_agent.cloud import tools
from edge_agent.errors import Refused
from simulators.checkin_app import CheckinIssuer
from tests.factories import STORE, config_dict

from .strategies import encoded, near_misses, objects, payloads, toml_only, toml_values

ROOT = Path(__file__).resolve().parents[2]
any_toml = toml_values | toml_only
EXAMPLE_CONFIG = tomllib.loads((ROOT / "systemd" / "edge-agent.toml").read_text(encoding="utf-8"))
SHIPPED_PROFILES = {
    kind: tomllib.loads(next((profiles.firmware_dir() / folder).glob("*.toml")).read_text(encoding="utf-8"))
    for kind, (folder, _) in devices.KINDS.items()
}


def settings_or_problems(data: dict[str, Any]) -> None:
    try:
        config.from_dict(data)
    except config.ConfigError as exc:
        assert isinstance(exc, Refused) and exc.code and exc.reason
        assert exc.problems and all(p.key and p.expected for p in exc.problems)


@settings(max_examples=200)
@given(near_misses(EXAMPLE_CONFIG, any_toml))
def test_near_misses_of_the_example_config_give_settings_or_every_problem_named(data):
    settings_or_problems(data)


@settings(max_examples=200)
@given(near_misses(config_dict(Path("/nonexistent"), CheckinIssuer(STORE)), any_toml))
def test_near_misses_of_a_store_config_give_settings_or_every_problem_named(data):
    settings_or_problems(data)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(sorted(devices.KINDS)).flatmap(
        lambda k: st.tuples(st.just(k), near_misses(SHIPPED_PROFILES[k], any_toml))
    )
)
@example(("beacon", {**SHIPPED_PROFILES["beacon"], "kind": []}))  # once a TypeError (unhashable) out of a kind lookup
@example(("scanner", {**SHIPPED_PROFILES["scanner"], "kind": []}))  # ... and again, out of the receiver kinds' lookup
def test_near_misses_of_every_profile_kind_load_or_are_refused_naming_the_file(tmp_path, kind_and_data):
    kind, data = kind_and_data
    path = tmp_path / "near-miss.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    try:
        devices.load(kind, path)
    except profiles.ProfileError as exc:
        assert isinstance(exc, Refused) and exc.code and exc.reason.startswith(str(path))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(sorted(devices.KINDS)),
    st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
)
def test_any_text_as_a_profile_is_refused_naming_the_file(tmp_path, kind, text):
    path = tmp_path / "any.toml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    try:
        devices.load(kind, path)
    except profiles.ProfileError as exc:
        assert exc.reason.startswith(str(path))
    else:
        raise AssertionError("any text made a profile")


BUNDLE_KEYS = ["offers", "customers", "base_version", "settings", "version", "issued_at", "kind"]


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads | encoded(objects(BUNDLE_KEYS)))
@example(b"[" * 5000)  # found by this test: RecursionError out of `edge-agent bundle sign`
def test_any_file_given_to_bundle_sign_is_sealed_or_refused_naming_it(tmp_path, data):
    path = tmp_path / "bundle.json"
    path.write_bytes(data)
    try:
        tools.sign_file(path, Ed25519PrivateKey.from_private_bytes(bytes(32)), None, STORE)
    except tools.ToolError as exc:
        assert str(exc)


@given(payloads | encoded(objects(["format", "kind", "store", "payload", "signature"])))
@example(b'{"kind": []}')  # found by this test: TypeError (unhashable) out of `edge-agent bundle publish`
@example(b'{"kind": "offers", "store": []}')
def test_any_file_given_to_bundle_publish_has_a_known_kind_or_is_refused(data):
    try:
        assert tools.envelope_kind(data, STORE) in tools.TOPICS
    except tools.ToolError as exc:
        assert str(exc)
