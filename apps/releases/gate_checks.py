"""What a gate check returns: one Blocker per reason the gate is red."""

from __future__ import annotations

from dataclasses import dataclass

from apps.releases.choices import BlockerKind


@dataclass(frozen=True)
class Blocker:
    """One reason the gate is red: a kind (soak, checklist, signoff, ...) and a sentence."""

    kind: BlockerKind
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"kind": str(self.kind), "detail": self.detail}
