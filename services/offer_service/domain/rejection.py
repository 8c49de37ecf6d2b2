from __future__ import annotations

from dataclasses import dataclass, field

from contracts import FieldError, RejectionCode


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a command is refused: becomes one CommandRejected on the wire."""

    code: RejectionCode
    message: str
    errors: tuple[FieldError, ...] = field(default=())
    status: str | None = None
