"""What the bad-input property tests throw at every boundary: any bytes, any text, any JSON, and near misses.

`examples(n)` is a test's share of inputs: n in the suite's short run, ten times n under
HYPOTHESIS_PROFILE=full (see tests/conftest.py), so a slow boundary (a real HTTP round trip) keeps its ratio.
"""

from __future__ import annotations

import copy
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


toml_values = st.recursive(  # what a file or a message may hold where something else was expected
    st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.text(max_size=20)
    | st.sampled_from(["", "0", "-1", "../../etc/passwd", "x" * 300]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a document, into objects and arrays."""
    found = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    for key, value in items:
        found.append((*prefix, key))
        found += paths(value, (*prefix, key))
    return found


toml_only = st.dates() | st.times() | st.datetimes()  # TOML has them, JSON does not


@st.composite
def near_misses(
    draw: st.DrawFn, document: dict[str, Any], values: st.SearchStrategy[Any] = toml_values
) -> dict[str, Any]:
    """A good document with one to three keys dropped, changed to any of `values`, or added."""
    doc = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        where = paths(doc)
        path = draw(st.sampled_from(where)) if where else ()
        *head, last = path or ("bogus",)
        parent: Any = doc
        for key in head:
            parent = parent[key]
        action = draw(st.sampled_from(["drop", "change", "add"]))
        if action == "drop" and isinstance(parent, dict) and last in parent:
            del parent[last]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(values)
        elif isinstance(parent, dict) or (isinstance(parent, list) and isinstance(last, int)):
            parent[last] = draw(values)
    return doc
