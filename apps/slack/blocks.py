"""The Block Kit of a sign-off request: what it asks, Go / No-go with a comment, the outcome.

Pure: it builds the JSON from a PostState (messages.state_of) and knows no database. The
interactivity endpoint reads back ACTION_GO / ACTION_NO_GO and the comment's block and action
ids; each button's value is the post's id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apps.releases.models import Release
from apps.signoffs.choices import Decision
from apps.signoffs.models import SignOff

ACTION_GO = "signoff_go"
ACTION_NO_GO = "signoff_no_go"
ACTIONS = {ACTION_GO: Decision.GO, ACTION_NO_GO: Decision.NO_GO}
COMMENT_BLOCK = "signoff_comment"
COMMENT_ACTION = "comment"


@dataclass
class PostState:
    """Where the gate attempt of a post stands now."""

    release: Release
    gate_label: str
    rule: str
    open: bool  # the current gate, not yet signed off: the buttons stay
    outcome: str  # empty while nothing is decided
    decisions: list[SignOff] = field(default_factory=list)
    url: str = ""
    commit: str = ""  # the artifact the post asks about (the gate key's, not the release's now)


def _escape(text: str) -> str:
    """Slack's mrkdwn escapes: &, < and > (a comment must not turn into a link or mention)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _decision_line(signoff: SignOff) -> str:
    said = "Go" if signoff.decision == Decision.GO else "No-go"
    mark = ":white_check_mark:" if signoff.decision == Decision.GO else ":no_entry:"
    line = f"{mark} *{said}* from {_escape(signoff.signer.get_username())}"
    if signoff.comment:
        line += f": {_escape(signoff.comment)}"
    return line


def request_message(post_id: int, state: PostState) -> dict[str, Any]:
    """`text` (notifications, screen readers) and `blocks` of the post."""
    release = state.release
    title = f"{release.service.name} {release.version} to {release.destination}"
    text = f"Sign-off needed: {title}, {state.gate_label}"
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*Sign-off needed:* <{state.url}|{_escape(title)}>, "
                f"{_escape(state.gate_label)}"
                + (f"\nCommit `{state.commit[:12]}`" if state.commit else "")
                + (f"\nThe rule: {_escape(state.rule)}." if state.rule else ""),
            },
        }
    ]
    if state.decisions:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "\n".join(_decision_line(s) for s in state.decisions),
                },
            }
        )
    if state.outcome:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_escape(state.outcome)}*"}}
        )
        text += f". {state.outcome}"
    if state.open:
        blocks += [
            {
                "type": "input",
                "block_id": COMMENT_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Comment (a no-go needs one)"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": COMMENT_ACTION,
                    "multiline": True,
                    "max_length": 2000,
                },
            },
            {
                "type": "actions",
                "block_id": f"signoff_{post_id}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": ACTION_GO,
                        "text": {"type": "plain_text", "text": "Go"},
                        "style": "primary",
                        "value": str(post_id),
                    },
                    {
                        "type": "button",
                        "action_id": ACTION_NO_GO,
                        "text": {"type": "plain_text", "text": "No-go"},
                        "style": "danger",
                        "value": str(post_id),
                    },
                    {
                        "type": "button",
                        "action_id": "signoff_open",
                        "text": {"type": "plain_text", "text": "Open in rolloutdesk"},
                        "url": state.url,
                    },
                ],
            },
        ]
    return {"text": text, "blocks": blocks}
