"""Settings primitives every config model shares: frozen models, config-relative paths, secrets, CVR numbers."""

from __future__ import annotations

import os
import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

# A value as TOML gives it (a mailbox's connector settings are kept in this form until checked).
TomlValue = Union[str, int, float, bool, datetime, date, time, list["TomlValue"], dict[str, "TomlValue"]]

_CVR = re.compile(r"[0-9]{8}")


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    value = value.expanduser()
    return value if value.is_absolute() or base is None else Path(base) / value


RelPath = Annotated[Path, AfterValidator(_resolve_path)]


class Frozen(BaseModel):
    # validate_default: default paths must resolve against the config's folder too, not the CWD.
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


def section() -> Any:
    """A config section that may be left out: validated from {} so its defaults see the context."""
    return Field(default_factory=dict)


class SecretRef(Frozen):
    """A secret kept outside the config file: in an environment variable or a file."""

    env: str | None = None
    file: RelPath | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret is either { env = \"NAME\" } or { file = \"path\" }")
        return self

    def reveal(self) -> str:
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise LookupError(f"environment variable {self.env} is not set")
            return value
        assert self.file is not None
        try:
            return self.file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise LookupError(f"secret file {self.file} cannot be read: {exc.strerror}") from None

    def __repr__(self) -> str:
        return f"SecretRef(env={self.env!r})" if self.env else f"SecretRef(file={str(self.file)!r})"


def is_cvr(value: str) -> bool:
    """Whether `value` is a CVR number: exactly 8 ASCII digits."""
    return _CVR.fullmatch(value) is not None


def _cvr(value: object) -> object:
    # TOML lets an administrator write the number bare; it is still the 8-digit string.
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{value:08d}"
    if isinstance(value, str) and not is_cvr(value):
        raise ValueError(f"a CVR number is 8 digits, not {value!r}")
    return value


Cvr = Annotated[str, BeforeValidator(_cvr)]
"""A company registration number (CVR): 8 digits, in config files and connector settings alike."""


def is_secret_ref(value: object) -> bool:
    """Whether a raw TOML value is a secret reference (`{ env = "NAME" }` or `{ file = "path" }`)."""
    return isinstance(value, dict) and len(value) == 1 and set(value) <= {"env", "file"}
