"""The decision sections of an offer bundle: scoring policy, exploration, holdout, items bought together,
pricing bounds and default caps. Stored with the offers they belong to, in the same transaction."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from sqlite_utils import Database

from .offers import Cap, Model, Name, Percent

# The features a linear policy may weigh; the engine computes each per offer (see decide/features.py).
FEATURES = ("priority", "segment_match", "affinity", "replenishment_due", "bought_together", "context_match")
DEFAULT_WEIGHTS = {
    "priority": 1.0,
    "segment_match": 1.0,
    "affinity": 1.0,
    "replenishment_due": 2.0,
    "bought_together": 0.5,
    "context_match": 0.5,
}
Sku = Annotated[str, Field(min_length=1, max_length=64)]


class Exploration(Model):
    """How the policy spreads its choices over the best `candidates` offers, with known probabilities.

    greedy: always the best; epsilon_greedy: the best with 1-epsilon, else uniform; softmax: proportional to
    exp(score / temperature). Every candidate then gets at least `floor` (mixed in, so they still sum to 1).
    """

    kind: Literal["greedy", "epsilon_greedy", "softmax"] = "greedy"
    epsilon: Annotated[float, Field(ge=0, le=1)] = 0.1
    temperature: Annotated[float, Field(gt=0, le=1000)] = 1.0
    floor: Annotated[float, Field(ge=0, le=0.5)] = 0.0
    candidates: Annotated[int, Field(ge=1, le=100)] = 10


class OnnxModel(Model):
    """A scoring model as ONNX: input float32 [N, len(features)] (columns in `features` order), first output
    float32 [N] or [N, 1], one score per offer. Shipped inside the signed bundle, checked by its digest."""

    features: tuple[str, ...] = Field(min_length=1, max_length=len(FEATURES))
    model_b64: str = Field(min_length=4, max_length=4_000_000)
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

    @model_validator(mode="after")
    def _check(self) -> OnnxModel:
        unknown = sorted(set(self.features) - set(FEATURES))
        if unknown:
            raise ValueError(f"unknown features {unknown}; known: {', '.join(FEATURES)}")
        try:
            raw = base64.b64decode(self.model_b64, validate=True)
        except binascii.Error:
            raise ValueError("model_b64 is not base64") from None
        if hashlib.sha256(raw).hexdigest() != self.sha256:
            raise ValueError("model_b64 does not match its sha256")
        return self

    def model_bytes(self) -> bytes:
        return base64.b64decode(self.model_b64)


class ScoringPolicy(Model):
    version: Name = "builtin-linear/1"
    kind: Literal["linear", "onnx"] = "linear"
    weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    onnx: OnnxModel | None = None
    exploration: Exploration = Exploration()

    @field_validator("weights")
    @classmethod
    def _known_features(cls, weights: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(weights) - set(FEATURES))
        if unknown:
            raise ValueError(f"unknown features {unknown}; known: {', '.join(FEATURES)}")
        return weights

    @model_validator(mode="after")
    def _model_for_kind(self) -> ScoringPolicy:
        if (self.kind == "onnx") != (self.onnx is not None):
            raise ValueError("kind 'onnx' needs an onnx model, and only it does")
        return self


class Holdout(Model):
    """A global holdout: this share of customers gets no personalised offer, only the contextual choice."""

    fraction: Annotated[float, Field(ge=0, le=0.5)] = 0.0
    seed: Annotated[str, Field(min_length=1, max_length=128)] = "global-holdout"
    hash_version: Literal[1, 2] = 2


class PricingBounds(Model):
    max_discount_pct: Percent = 50.0


class DecisionPolicy(Model):
    policy: ScoringPolicy = ScoringPolicy()
    holdout: Holdout = Holdout()
    bought_together: dict[Sku, tuple[Sku, ...]] = Field(default_factory=dict, max_length=100_000)
    pricing_bounds: PricingBounds = PricingBounds()
    default_caps: tuple[Cap, ...] = Field(default=(), max_length=16)


class PolicyStore:
    def __init__(self, db: Database):
        self._db = db

    def replace(self, policy: DecisionPolicy, bundle_version: int) -> None:
        """Call inside the transaction that applies the bundle."""
        self._db.execute(
            "INSERT INTO decision_policy (id, bundle_version, body) VALUES (1, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET bundle_version = excluded.bundle_version, body = excluded.body",
            [bundle_version, policy.model_dump_json()],
        )

    def get(self) -> DecisionPolicy:
        """The policy in force; the built-in one (greedy, no holdout) before any bundle brought one."""
        row = self._db.execute("SELECT body FROM decision_policy WHERE id = 1").fetchone()
        return DecisionPolicy.model_validate(json.loads(row[0])) if row else DecisionPolicy()
