"""Enrolled face embeddings: 128 float32 values, unit length, kept only for customers consenting to "face".

They arrive base64-encoded in the roster, are checked before anything is written, and are read back
only by the vision source, joined with the consent table so that withdrawn consent or erasure takes
effect at once.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlite_utils import Database

DIM = 128
MAX_PER_CUSTOMER = 10


def decode_embedding(text: str) -> npt.NDArray[np.float32]:
    """base64 of 128 little-endian float32 with unit L2 norm → vector; ValueError says what is wrong."""
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"base64 text ({exc})") from None
    if len(raw) != DIM * 4:
        raise ValueError(f"{DIM} float32 values ({DIM * 4} bytes), decoded {len(raw)} bytes")
    vector = np.frombuffer(raw, dtype="<f4")
    if not np.isfinite(vector).all():
        raise ValueError("finite values, found NaN or infinity")
    norm = float(np.linalg.norm(vector))
    if abs(norm - 1.0) > 1e-3:
        raise ValueError(f"an L2-normalised vector, its norm is {norm:.4f}")
    return vector.astype(np.float32)


def encode_embedding(vector: npt.NDArray[np.floating[Any]]) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


class FaceEmbeddings:
    def __init__(self, db: Database):
        self._db = db

    def replace(self, customer_ref: str, embeddings: list[str], updated_at: str) -> None:
        """Set a customer's embeddings (inside the caller's transaction); an empty list removes them."""
        self._db.execute("DELETE FROM face_embeddings WHERE customer_ref = ?", [customer_ref])
        self._db.conn.executemany(
            "INSERT INTO face_embeddings (customer_ref, idx, embedding, updated_at) VALUES (?, ?, ?, ?)",
            [
                (customer_ref, i, decode_embedding(text).astype("<f4").tobytes(), updated_at)
                for i, text in enumerate(embeddings)
            ],
        )

    def consented(self, customer_ref: str | None = None) -> list[tuple[str, npt.NDArray[np.float32]]]:
        """(customer_ref, vector) of customers whose consent includes "face" now, optionally of one customer."""
        sql = (
            "SELECT f.customer_ref, f.embedding FROM face_embeddings f JOIN consents c"
            " ON c.customer_ref = f.customer_ref AND c.channel = 'face' AND c.granted = 1"
        )
        params: list[str] = []
        if customer_ref is not None:
            sql += " WHERE f.customer_ref = ?"
            params.append(customer_ref)
        rows = self._db.execute(sql + " ORDER BY f.customer_ref, f.idx", params).fetchall()
        return [(ref, np.frombuffer(blob, dtype="<f4").astype(np.float32)) for ref, blob in rows]

    def count(self) -> int:
        n: int = self._db.execute("SELECT count(*) FROM face_embeddings").fetchone()[0]
        return n
