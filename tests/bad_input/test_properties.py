"""Property-based tests for the parsers at the agent's boundaries: whatever arrives, the answer is a
counted rejection with a reason or a valid result, never an unhandled exception."""

import json
import string

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent import config
from edge_agent.signage.proof import AckRejected, ProofOfPlay
from edge_agent.sources.checkin.token import TokenError, verify
from edge_agent.store.faults import StorageFaults

KEY = Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1")), json_values))
def test_checkin_tokens_never_raise_anything_but_a_token_error(token):
    try:
        verify(token, [KEY])
    except TokenError as exc:
        assert exc.code in {"malformed", "bad_signature"} and exc.reason


@given(
    st.builds(
        lambda a, b, c: f"SEA1.{a}.{b}{c}",
        st.text(alphabet=string.ascii_letters + string.digits + "-_=+/.", max_size=80),
        st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=90),
        st.sampled_from(["", "=", ".x"]),
    )
)
def test_token_shaped_garbage_is_refused_with_a_reason(token):
    try:
        verify(token, [KEY])
    except TokenError as exc:
        assert exc.reason
    else:
        raise AssertionError("garbage was accepted")


@settings(max_examples=300)
@given(st.text(max_size=400))
def test_any_text_as_config_gives_settings_or_a_config_error(text):
    try:
        config.parse(text)
    except config.ConfigError as exc:
        assert exc.problems and all(p.key and p.expected for p in exc.problems)


toml_scalars = st.one_of(st.integers(-(2**40), 2**40), st.booleans(), st.text(max_size=12), st.floats(allow_nan=False))


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(["store", "zones", "touchpoints", "http", "presence", "checkin", "sources", "bogus"]),
        st.one_of(
            toml_scalars,
            st.dictionaries(st.text(string.ascii_lowercase + "_", max_size=12), toml_scalars, max_size=4),
            st.lists(st.dictionaries(st.sampled_from(["id", "kind", "zone", "x"]), toml_scalars, max_size=4)),
        ),
        max_size=6,
    )
)
def test_any_structure_as_config_gives_settings_or_a_config_error(data):
    try:
        config.from_dict(data)
    except config.ConfigError as exc:
        assert exc.problems and all(p.key and p.expected for p in exc.problems)


class _NoDecisionLog:
    @staticmethod
    def get(_):
        return None


class _NoDecisions:
    """A store with no decisions: every ack must be refused with a reason, none may crash."""

    decisions = _NoDecisionLog()
    faults = StorageFaults()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["type", "show_id", "displayed_at", "x"]), json_values, max_size=4))
def test_any_ack_message_is_refused_with_a_reason(message):
    proof = ProofOfPlay(_NoDecisions(), bus=None, clock=None)
    try:
        proof.acknowledge("screen-a", message)
    except AckRejected as exc:
        assert str(exc)
    else:
        raise AssertionError(f"accepted {json.dumps(message)}")
    assert sum(proof.rejected.values()) == 1
