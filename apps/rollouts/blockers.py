"""What a gate check returns: one Blocker per reason the gate is red."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Blocker:
    """One reason the gate is red: a kind (soak, checklist, signoff, ...) and a sentence."""

    kind: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail}
