"""What the bad-input property tests throw at every boundary: any bytes, any text, any JSON, and near misses.

`examples(n)` is a test's share of inputs: n in the suite's short run, ten times n under
HYPOTHESIS_PROFILE=full (see conftest.py), so a slow boundary (a real HTTP round trip) keeps its ratio.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

SUITE_EXAMPLES = 100  # the default profile's max_examples


def examples(n: int) -> int:
    return max(1, n * settings.default.max_examples // SUITE_EXAMPLES)


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["", "-1", "1e999", "\u0000", "\ud7ff", "a" * 300])
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def objects(keys: list[str], values: st.SearchStrategy[Any] = json_values) -> st.SearchStrategy[dict[str, Any]]:
    """JSON objects using mostly the keys a format knows (so inputs get past the first check), some others."""
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), values, max_size=len(keys) + 1)


def encoded(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return values.map(lambda v: json.dumps(v).encode("utf-8"))


payloads = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=200).map(lambda t: t.encode("utf-8")),
    encoded(json_values),
    st.just(b"[" * 5000),  # nested deeper than a recursive parser goes
    st.just(b'{"a":' * 5000),
    st.just(b"[" + b"1," * 40_000 + b"1]"),  # large
)
