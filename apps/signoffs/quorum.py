"""Deciding whether a gate's sign-offs meet its rule: pure functions over loaded rows."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.models import Group

from .choices import Decision, QuorumMode
from .models import RuleTerms, SignOff


@dataclass
class Assessment:
    """Where one gate attempt stands against its rule."""

    rule: RuleTerms
    groups: list[Group]
    counted: list[SignOff] = field(default_factory=list)  # gos that count toward the quorum
    no_gos: list[SignOff] = field(default_factory=list)
    standing: list[SignOff] = field(default_factory=list)  # every valid sign-off of the attempt
    missing_groups: list[Group] = field(default_factory=list)  # "each group": still unsigned
    approvals_missing: int = 0  # "N in all": gos still needed

    @property
    def quorum_reached(self) -> bool:
        if self.rule.quorum == QuorumMode.EACH_GROUP:
            return not self.missing_groups
        return self.approvals_missing == 0

    @property
    def met(self) -> bool:
        """Quorum reached and no standing no-go: the sign-off part of the gate is green."""
        return self.quorum_reached and not self.no_gos

    def still_needed(self) -> str:
        """What is missing, in words, e.g. "a go from Product, On-call"."""
        if self.quorum_reached:
            return ""
        if self.rule.quorum == QuorumMode.EACH_GROUP:
            return "a go from " + ", ".join(g.name for g in self.missing_groups)
        names = ", ".join(g.name for g in self.groups)
        plural = "s" if self.approvals_missing != 1 else ""
        return f"{self.approvals_missing} more go{plural} from members of {names}"


def _match_groups(groups: list[Group], signers_by_group: dict[int, list[int]]) -> set[int]:
    """The groups covered by distinct signers, as many as possible (Kuhn's augmenting paths).

    "One from each group" means one person per group: someone in two groups covers one.
    """
    owner: dict[int, int] = {}  # signer id -> group id it covers

    def place(group_id: int, seen: set[int]) -> bool:
        for signer in signers_by_group.get(group_id, []):
            if signer in seen:
                continue
            seen.add(signer)
            if signer not in owner or place(owner[signer], seen):
                owner[signer] = group_id
                return True
        return False

    return {g.pk for g in groups if place(g.pk, set())}


def assess(
    rule: RuleTerms,
    groups: list[Group],
    signoffs: Iterable[SignOff],
    memberships: dict[int, set[int]],
    *,
    author_ids: Collection[int],
    now: datetime,
) -> Assessment:
    """Judge the standing sign-offs of one gate attempt against the rule.

    `signoffs` are the attempt's sign-offs that are neither withdrawn nor lapsed; `memberships`
    maps each signer to the ids of the rule's groups they belong to now. A go counts only while
    its signer is in a required group, is not an author barred by the rule (`author_ids`: every
    user the release's author matches), and is not older than the rule's validity; a no-go
    blocks whoever gave it.
    """
    result = Assessment(rule=rule, groups=groups)
    for signoff in signoffs:
        if rule.valid_for is not None and signoff.created_at <= now - rule.valid_for:
            continue
        result.standing.append(signoff)
        if signoff.decision == Decision.NO_GO:
            result.no_gos.append(signoff)
            continue
        if not memberships.get(signoff.signer_id):
            continue
        if signoff.signer_id in author_ids and not rule.author_may_approve:
            continue
        result.counted.append(signoff)

    if rule.quorum == QuorumMode.EACH_GROUP:
        by_group: dict[int, list[int]] = {}
        for signoff in result.counted:
            for group_id in sorted(memberships[signoff.signer_id]):
                by_group.setdefault(group_id, []).append(signoff.signer_id)
        covered = _match_groups(groups, by_group)
        result.missing_groups = [g for g in groups if g.pk not in covered]
    else:
        signers = {s.signer_id for s in result.counted}
        result.approvals_missing = max(0, rule.approvals_needed - len(signers))
    return result
