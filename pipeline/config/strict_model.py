"""Base class of every typed configuration block: unknown keys and wrong types are errors."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A frozen pydantic model that rejects unknown keys and silent type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
