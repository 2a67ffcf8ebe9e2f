"""Face embeddings in the roster: validated on arrival, kept only with "face" consent, erased with the customer."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edge_agent.store import open_store
from edge_agent.store.faces import decode_embedding, encode_embedding
from edge_agent.store.roster import RosterEntry

NOW = datetime.now(UTC).isoformat()


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return vector / np.linalg.norm(vector)


def entry(ref: str, *, face: bool, vectors: list[np.ndarray]) -> RosterEntry:
    return RosterEntry(
        customer_ref=ref,
        consents={"checkin": True, "face": face},
        face_embeddings=[encode_embedding(v) for v in vectors],
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not base64!", "base64"),
        (base64.b64encode(b"\0" * 100).decode(), "decoded 100 bytes"),
        (encode_embedding(np.full(128, np.nan, dtype=np.float32)), "NaN"),
        (encode_embedding(unit(1) * 3), "norm is 3.0"),
    ],
)
def test_a_bad_embedding_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValidationError) as err:
        RosterEntry(customer_ref="alice", consents={"face": True}, face_embeddings=[encode_embedding(unit(0)), text])
    message = str(err.value)
    assert "face_embeddings[1]" in message and reason in message


def test_only_customers_consenting_to_face_keep_embeddings(tmp_path: Path) -> None:
    store = open_store(tmp_path / "agent.db")
    store.roster.upsert(
        [entry("alice", face=True, vectors=[unit(1), unit(2)]), entry("bob", face=False, vectors=[unit(3)])], NOW
    )
    kept = store.roster.faces.consented()
    assert [ref for ref, _ in kept] == ["alice", "alice"]
    assert np.allclose(kept[0][1], unit(1)) and np.allclose(kept[1][1], unit(2))
    assert store.roster.faces.count() == 2, "bob's embedding was never written"
    # Alice withdraws face consent: her embeddings go with it.
    store.roster.upsert([entry("alice", face=False, vectors=[unit(1)])], NOW)
    assert store.roster.faces.consented() == [] and store.roster.faces.count() == 0
    store.close()


def test_erasing_a_customer_erases_their_embeddings(tmp_path: Path) -> None:
    store = open_store(tmp_path / "agent.db")
    store.roster.upsert(
        [entry("alice", face=True, vectors=[unit(1)]), entry("carol", face=True, vectors=[unit(4)])], NOW
    )
    with store.db.atomic():
        store.db.execute("DELETE FROM customers WHERE customer_ref = ?", ["alice"])
    assert [ref for ref, _ in store.roster.faces.consented()] == ["carol"]
    assert store.db.execute("SELECT count(*) FROM face_embeddings WHERE customer_ref = 'alice'").fetchone()[0] == 0
    store.close()


@given(st.binary(max_size=600) | st.text(max_size=800))
@settings(max_examples=200, deadline=None)
def test_any_embedding_text_is_either_a_unit_vector_or_refused_with_a_reason(junk) -> None:
    text = base64.b64encode(junk).decode() if isinstance(junk, bytes) else junk
    try:
        vector = decode_embedding(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert vector.shape == (128,) and abs(float(np.linalg.norm(vector)) - 1.0) <= 1e-3
