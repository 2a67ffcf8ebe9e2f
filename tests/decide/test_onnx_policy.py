"""A scoring model shipped as ONNX in the bundle, run by the real onnxruntime; a model it cannot run
leaves the last good policy in force."""

import base64
import hashlib

import pytest
from onnx import TensorProto, helper

from edge_agent.decide.catalog import OfferCatalog
from edge_agent.store.bundles import OfferBundle, apply_offers
from edge_agent.store.policy import OnnxModel, ScoringPolicy
from tests.factories import customer

from .test_decide_rules import T0, _offer, enter, last, make

COLUMNS = ("priority", "segment_match", "context_match")


def linear_model(weights: list[float], bias: float = 0.0) -> bytes:
    """Y = X @ W + b, flattened to one score per row: a linear policy written as ONNX."""
    w = helper.make_tensor("W", TensorProto.FLOAT, [len(weights), 1], weights)
    b = helper.make_tensor("B", TensorProto.FLOAT, [1], [bias])
    shape = helper.make_tensor("S", TensorProto.INT64, [1], [-1])
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["XW"]),
            helper.make_node("Add", ["XW", "B"], ["Y2"]),
            helper.make_node("Reshape", ["Y2", "S"], ["Y"]),
        ],
        "policy",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", len(weights)])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N"])],
        initializer=[w, b, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def onnx_policy(raw: bytes, version: str = "onnx-1") -> ScoringPolicy:
    return ScoringPolicy(
        version=version,
        kind="onnx",
        onnx=OnnxModel(
            features=COLUMNS, model_b64=base64.b64encode(raw).decode(), sha256=hashlib.sha256(raw).hexdigest()
        ),
    )


OFFERS = [_offer("popular", priority=2.0), _offer("for-coffee-lovers", segments=("coffee",), priority=0.5)]


def test_the_onnx_policy_scores_like_its_weights_say(settings):
    # the model weighs segment matches heavily: the coffee lover gets the coffee offer despite its priority
    engine, store, shows, clock = make(
        settings, OFFERS, [customer("alice", segments=("coffee",))], policy=onnx_policy(linear_model([1.0, 3.0, 0.5]))
    )
    enter(engine, clock, "alice")
    d = last(store, shows)
    assert (d.offer_id, d.policy) == ("for-coffee-lovers", "onnx-1")
    assert d.scores == {"for-coffee-lovers": pytest.approx(3.5), "popular": pytest.approx(2.0)}
    # the same model with a small segment weight prefers the popular offer
    apply_offers(
        store.db,
        store.bundle_versions,
        store.offers,
        OfferBundle(
            version=2, issued_at=T0, offers=OFFERS, policy=onnx_policy(linear_model([1.0, 0.5, 0.5]), "onnx-2")
        ),
        T0.isoformat(),
    )
    engine._catalog.reload()
    enter(engine, clock, "alice")
    again = last(store, shows)
    assert (again.offer_id, again.policy) == ("popular", "onnx-2")


def test_a_model_that_cannot_run_keeps_the_last_good_policy(settings):
    engine, store, shows, clock = make(
        settings, OFFERS, [customer("alice")], policy=onnx_policy(linear_model([1, 0, 0]))
    )
    broken = b"not an onnx model at all"
    apply_offers(
        store.db,
        store.bundle_versions,
        store.offers,
        OfferBundle(version=2, issued_at=T0, offers=OFFERS, policy=onnx_policy(broken, "broken")),
        T0.isoformat(),
    )
    catalog = OfferCatalog(store)  # as after a restart: the built-in policy is the last good one here
    assert catalog.rejected_models == 1 and catalog.scorer.version == "builtin-linear/1"
    engine._catalog.reload()
    assert engine._catalog.rejected_models == 1 and engine._catalog.scorer.version == "onnx-1"
    enter(engine, clock, "alice")
    assert last(store, shows).policy == "onnx-1"


def test_a_model_that_does_not_match_its_digest_is_refused():
    raw = linear_model([1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="sha256"):
        OnnxModel(features=COLUMNS, model_b64=base64.b64encode(raw).decode(), sha256="0" * 64)
    with pytest.raises(ValueError, match="unknown features"):
        OnnxModel(
            features=("shoe_size",), model_b64=base64.b64encode(raw).decode(), sha256=hashlib.sha256(raw).hexdigest()
        )
    with pytest.raises(ValueError, match="needs an onnx model"):
        ScoringPolicy(kind="onnx")
