"""The kinds of till a store connects (`firmware_configs/pos/*.toml`, by their `kind`): a till speaking a line
protocol (`pos`, protocol.py) or a copy of the ESC/POS stream it prints receipts with (`escpos-receipt`,
receipt_tap.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, cast

from pydantic import Field, RootModel

from ...profiles import load_of_kind
from .protocol import PosProfile
from .receipt_tap import ReceiptTapProfile

TillProfile = PosProfile | ReceiptTapProfile
TILL_MODELS: dict[str, type[PosProfile] | type[ReceiptTapProfile]] = {
    "pos": PosProfile,
    "escpos-receipt": ReceiptTapProfile,
}


class TillKinds(RootModel[Annotated[TillProfile, Field(discriminator="kind")]]):
    """The schema of firmware_configs/pos/*.toml: one of the till kinds, by its `kind`."""


def load_till(name: str | Path) -> TillProfile:
    """A till's profile of either kind, by bare name or `.toml` path; ProfileError naming the file otherwise."""
    return cast(TillProfile, load_of_kind(name, "pos", TILL_MODELS, "pos"))
