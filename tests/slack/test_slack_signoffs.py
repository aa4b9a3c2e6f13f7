"""Sign-off from Slack: the request posted as Block Kit through a fake Slack Web API on
loopback, answered by requests signed as Slack signs them (a replayed and a forged one too),
under the same rules as the sign-off page, and the post updated with the outcome."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from apps.core.actors import Actor
from apps.outbox.choices import DeliveryStatus
from apps.signoffs import asking, services
from apps.signoffs.choices import Decision
from apps.signoffs.models import SignOff
from apps.slack.choices import SlackMessageKind
from apps.slack.models import SignOffChannel, SlackInteraction, SlackMessage
from tests.slack.conftest import CHANNEL, click, deliver, sign

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system("tests")


def ask(release, capture) -> SlackMessage:
    with capture(execute=True):
        asking.request_signoffs(release, actor=SYSTEM)
    return SlackMessage.objects.get(kind=SlackMessageKind.POST, channel=CHANNEL)


def texts(blocks: list[dict]) -> str:
    return "\n".join(str(b.get("text", {}).get("text", "")) for b in blocks)


def action_ids(blocks: list[dict]) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_the_request_is_posted_as_block_kit_with_go_no_go_and_a_comment(
    slack, canary_on_slack, running, erin, paul, django_capture_on_commit_callbacks
) -> None:
    post = ask(running, django_capture_on_commit_callbacks)
    (call,) = slack.of("chat.postMessage")
    assert call.authorization == "Bearer xoxb-test-bot-token"
    assert call.args["channel"] == CHANNEL
    blocks = call.args["blocks"]
    assert action_ids(blocks) == ["signoff_go", "signoff_no_go", "signoff_open"]
    buttons = {e["action_id"]: e for b in blocks if b["type"] == "actions" for e in b["elements"]}
    assert buttons["signoff_go"]["value"] == str(post.pk)
    assert buttons["signoff_go"]["style"] == "primary"
    assert buttons["signoff_no_go"]["style"] == "danger"
    (comment,) = [b for b in blocks if b["type"] == "input"]
    assert comment["element"]["type"] == "plain_text_input" and comment["optional"]
    assert "leaving stage canary" in texts(blocks)
    assert "one go from each of: Engineering managers, Product" in texts(blocks)
    post.refresh_from_db()
    assert post.status == DeliveryStatus.SENT
    assert (post.posted_channel, post.ts) in slack.messages

    # Asking again (the sweep, a second worker) never posts twice.
    with django_capture_on_commit_callbacks(execute=True):
        asking.request_signoffs(running, actor=SYSTEM)
    assert len(slack.of("chat.postMessage")) == 1


def test_go_and_no_go_from_slack_sign_and_update_the_post(
    slack, canary_on_slack, running, erin, paul, django_capture_on_commit_callbacks
) -> None:
    capture = django_capture_on_commit_callbacks
    post = ask(running, capture)
    client = Client()

    body = click(post, "UERIN", comment="Dashboards are green")
    assert deliver(client, body, sign(body), capture) == 200
    signoff = SignOff.objects.get(signer=erin)
    assert signoff.decision == Decision.GO and signoff.comment == "Dashboards are green"
    (update,) = slack.of("chat.update")
    assert (update.args["channel"], update.args["ts"]) == (post.posted_channel, post.ts)
    shown = slack.messages[(post.posted_channel, post.ts)]["blocks"]
    assert "*Go* from erin: Dashboards are green" in texts(shown)
    assert "signoff_go" in action_ids(shown)  # Product has not signed: still open

    # A no-go needs a comment, as on the page: refused, told to the person only.
    body = click(post, "UPAUL", action="signoff_no_go")
    assert deliver(client, body, sign(body), capture) == 200
    assert not SignOff.objects.filter(signer=paul).exists()
    (told,) = slack.of("chat.postEphemeral")
    assert told.args["user"] == "UPAUL" and told.args["channel"] == post.posted_channel
    assert "A no-go needs a comment" in told.args["text"]

    body = click(post, "UPAUL", comment="Ship it")
    assert deliver(client, body, sign(body), capture) == 200
    status = services.gate_status(running)
    assert status.met
    shown = slack.messages[(post.posted_channel, post.ts)]["blocks"]
    assert "Signed off: the quorum is reached with no no-go." in texts(shown)
    assert action_ids(shown) == []  # decided: no more buttons
    assert SlackMessage.objects.filter(kind=SlackMessageKind.UPDATE).count() == 2


def test_a_replayed_request_does_nothing_and_an_old_one_is_refused(
    slack, canary_on_slack, running, erin, paul, django_capture_on_commit_callbacks
) -> None:
    capture = django_capture_on_commit_callbacks
    post = ask(running, capture)
    client = Client()
    body = click(post, "UERIN", comment="go")
    headers = sign(body)
    assert deliver(client, body, headers, capture) == 200
    # The same signed request again within its five minutes: answered, but nothing is done twice.
    assert deliver(client, body, headers, capture) == 200
    assert SignOff.objects.filter(signer=erin).count() == 1
    assert SlackInteraction.objects.count() == 1
    assert len(slack.of("chat.update")) == 1
    assert len(slack.of("users.info")) == 1

    # Captured and sent again later, even with a signature that was valid once: too old.
    SignOff.objects.all().delete()
    old = int(time.time()) - 6 * 60
    assert deliver(client, body, sign(body, at=old), capture) == 401
    assert not SignOff.objects.exists()


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda body: (body, sign(body, secret="not-the-secret")), id="wrong-secret"),
        pytest.param(lambda body: (body.replace("UERIN", "UPAUL"), sign(body)), id="body-changed"),
        pytest.param(lambda body: (body, {}), id="unsigned"),
        pytest.param(
            lambda body: (body, {**sign(body), "X-Slack-Signature": "v0=" + "0" * 64}),
            id="made-up-signature",
        ),
    ],
)
def test_a_forged_request_is_refused(
    slack, canary_on_slack, running, erin, paul, forge, django_capture_on_commit_callbacks
) -> None:
    capture = django_capture_on_commit_callbacks
    post = ask(running, capture)
    body, headers = forge(click(post, "UERIN", comment="go"))
    assert deliver(Client(), body, headers, capture) == 401
    assert not SignOff.objects.exists()
    assert not SlackInteraction.objects.exists()
    assert slack.of("users.info") == [] and slack.of("chat.update") == []


@pytest.mark.parametrize(
    "who, words",
    [
        pytest.param("UDAVE", "You are not in any group this gate asks to sign", id="no-group"),
        pytest.param("USTRANGER", "No active rolloutdesk account has the email", id="no-account"),
        pytest.param("UNOBODY", "could not read your Slack profile", id="unknown-to-slack"),
    ],
)
def test_the_page_s_rules_refuse_who_may_not_sign(
    slack, canary_on_slack, running, erin, paul, dave, who, words,
    django_capture_on_commit_callbacks,
) -> None:  # fmt: skip
    capture = django_capture_on_commit_callbacks
    post = ask(running, capture)
    body = click(post, who, comment="go")
    assert deliver(Client(), body, sign(body), capture) == 200
    assert not SignOff.objects.exists()
    (told,) = slack.of("chat.postEphemeral")
    assert words in told.args["text"] and told.args["user"] == who
    assert slack.of("chat.update") == []


def test_the_author_may_not_approve_from_slack_either(
    slack, canary_on_slack, running, erin, paul, django_capture_on_commit_callbacks
) -> None:
    capture = django_capture_on_commit_callbacks
    running.author = erin
    running.save(update_fields=["author"])
    post = ask(running, capture)
    body = click(post, "UERIN", comment="mine, fine")
    assert deliver(Client(), body, sign(body), capture) == 200
    assert not SignOff.objects.filter(signer=erin).exists()
    (told,) = slack.of("chat.postEphemeral")
    assert "You are this release's author" in told.args["text"]
    # A no-go from the author is allowed, as on the page.
    body = click(post, "UERIN", action="signoff_no_go", comment="found a bug")
    assert deliver(Client(), body, sign(body), capture) == 200
    assert SignOff.objects.get(signer=erin).decision == Decision.NO_GO
    shown = slack.messages[(post.posted_channel, post.ts)]["blocks"]
    assert "Blocked by a no-go from erin." in texts(shown)


def test_a_request_from_before_the_artifact_changed_signs_nothing(
    slack, canary_on_slack, running, erin, paul, django_capture_on_commit_callbacks
) -> None:
    capture = django_capture_on_commit_callbacks
    post = ask(running, capture)
    client = Client()
    body = click(post, "UERIN", comment="go")
    assert deliver(client, body, sign(body), capture) == 200
    with capture(execute=True):
        services.change_commit(running, commit_sha="b" * 40, actor=SYSTEM, reason="hotfix")
    assert SignOff.objects.get(signer=erin).lapsed_at is not None

    # Paul presses Go on the old post: it was for the old commit, so nothing is signed.
    body = click(post, "UPAUL", comment="go")
    assert deliver(client, body, sign(body), capture) == 200
    assert not SignOff.objects.filter(signer=paul).exists()
    (told,) = slack.of("chat.postEphemeral")
    assert "earlier gate" in told.args["text"]
    shown = slack.messages[(post.posted_channel, post.ts)]["blocks"]
    assert "The artifact changed to bbbbbbbbbbbb" in texts(shown)
    assert action_ids(shown) == []


def test_direct_messages_find_each_person_by_email(
    slack, canary_on_slack, running, erin, paul, django_capture_on_commit_callbacks
) -> None:
    SignOffChannel.objects.filter(pk=canary_on_slack.pk).update(channel="", direct=True)
    with django_capture_on_commit_callbacks(execute=True):
        asking.request_signoffs(running, actor=SYSTEM)
    looked_up = sorted(c.args["email"] for c in slack.of("users.lookupByEmail"))
    assert looked_up == ["erin@example.com", "paul@example.com"]
    assert sorted(c.args["channel"] for c in slack.of("chat.postMessage")) == ["UERIN", "UPAUL"]
    post = SlackMessage.objects.get(person=paul)
    assert post.posted_channel == "DPAUL"
    body = click(post, "UPAUL", comment="ok")
    assert deliver(Client(), body, sign(body), django_capture_on_commit_callbacks) == 200
    assert SignOff.objects.get(signer=paul).decision == Decision.GO
    # Both people's posts show Paul's go.
    assert len(slack.of("chat.update")) == 2


def test_slack_down_leaves_the_post_to_be_retried(
    slack, canary_on_slack, running, erin, paul, django_capture_on_commit_callbacks
) -> None:
    slack.fail_with = "ratelimited"
    post = ask(running, django_capture_on_commit_callbacks)
    post.refresh_from_db()
    assert post.status == DeliveryStatus.FAILED and "ratelimited" in post.last_error
    assert post.next_attempt_at is not None and not post.ts


def test_off_unless_configured(running, canary_on_slack, erin, paul, settings) -> None:
    assert not settings.SLACK_BOT_TOKEN
    asking.request_signoffs(running, actor=SYSTEM)
    assert not SlackMessage.objects.exists()
    body = "payload=%7B%7D"
    answer = Client().post(
        "/slack/interactivity/", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert answer.status_code == 404


def test_a_sign_off_on_the_page_updates_the_post_too(
    slack, canary_on_slack, running, erin, paul, django_capture_on_commit_callbacks
) -> None:
    capture = django_capture_on_commit_callbacks
    post = ask(running, capture)
    web = Client()
    web.force_login(paul)
    with capture(execute=True):
        answer = web.post(
            f"/releases/{running.pk}/signoff/", {"action": "no_go", "comment": "Support is busy"}
        )
    assert answer.status_code == 302
    shown = slack.messages[(post.posted_channel, post.ts)]["blocks"]
    assert "*No-go* from paul: Support is busy" in texts(shown)
    assert "Blocked by a no-go from paul." in texts(shown)
    # Withdrawn on the page: the post drops the no-go and shows its buttons still.
    with capture(execute=True):
        web.post(f"/releases/{running.pk}/signoff/", {"action": "withdraw"})
    shown = slack.messages[(post.posted_channel, post.ts)]["blocks"]
    assert "paul" not in texts(shown) and "signoff_go" in action_ids(shown)
    assert len(slack.of("chat.update")) == 2


def test_send_again_from_the_admin_posts_a_failed_request(
    slack, canary_on_slack, running, erin, paul, django_capture_on_commit_callbacks
) -> None:
    from django.contrib.auth import get_user_model

    slack.fail_with = "ratelimited"
    post = ask(running, django_capture_on_commit_callbacks)
    slack.fail_with = ""
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-12345")
    admin = Client()
    admin.force_login(root)
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin.post(
            "/admin/slack/slackmessage/",
            {"action": "send_again", "_selected_action": [post.pk]},
        )
    assert answer.status_code == 302
    post.refresh_from_db()
    assert post.status == DeliveryStatus.SENT and post.ts
    assert len(slack.of("chat.postMessage")) == 2  # the refused attempt and this one
