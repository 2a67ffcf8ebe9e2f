"""Commands the cloud sends to a device, each with an id that comes back in the result.

Each travels in a signed envelope bound to the store (envelope.py, kind "command") and names the device it is
for (`*` on the store-wide topic) and when it was issued, so it cannot be replayed elsewhere or much later.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from ..store.roster import CustomerRef

CommandId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    command_id: CommandId
    device: Annotated[str, Field(pattern=r"^(\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,63})$")]  # `*`: every device
    issued_at: AwareDatetime


class Erase(_Command):
    """Forget a customer entirely; the receipt carries the consent epoch the cloud erased at."""

    type: Literal["erase"]
    customer_ref: CustomerRef
    consent_epoch: Annotated[int, Field(ge=0)]


class Reload(_Command):
    """Rebuild the in-memory offer catalogue from the database."""

    type: Literal["reload"]


class ShowOffer(_Command):
    """Put one offer of the catalogue on one touchpoint now (until the next decision there)."""

    type: Literal["show"]
    touchpoint: Annotated[str, Field(min_length=1, max_length=64)]
    offer_id: Annotated[str, Field(min_length=1, max_length=128)]


class ReloadScreen(_Command):
    """Load a screen's page afresh (a stuck or outdated player): every player of the touchpoint reloads."""

    type: Literal["reload_screen"]
    touchpoint: Annotated[str, Field(min_length=1, max_length=64)]


class Ping(_Command):
    type: Literal["ping"]


Command = Annotated[Erase | Reload | ShowOffer | ReloadScreen | Ping, Field(discriminator="type")]
COMMAND: TypeAdapter[Command] = TypeAdapter(Command)
