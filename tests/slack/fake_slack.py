"""A fake Slack Web API on 127.0.0.1: the methods rolloutdesk calls, answered as Slack does
(`{"ok": true, ...}` or `{"ok": false, "error": ...}`), with every call kept for the tests."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

TOKEN = "xoxb-test-bot-token"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    authorization: str


@dataclass
class FakeSlack:
    url: str = ""
    # Slack user id -> email address (users.info, users.lookupByEmail).
    people: dict[str, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    # (channel, ts) -> the message as last posted or updated.
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    fail_with: str = ""  # answer every call with this error while set
    _ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def answer(self, method: str, args: dict[str, Any], authorization: str) -> dict[str, Any]:
        self.calls.append(Call(method, args, authorization))
        if authorization != f"Bearer {TOKEN}":
            return {"ok": False, "error": "invalid_auth"}
        if self.fail_with:
            return {"ok": False, "error": self.fail_with}
        if method == "users.info":
            email = self.people.get(args.get("user", ""))
            if email is None:
                return {"ok": False, "error": "user_not_found"}
            return {"ok": True, "user": {"id": args["user"], "profile": {"email": email}}}
        if method == "users.lookupByEmail":
            for uid, email in self.people.items():
                if email.lower() == str(args.get("email", "")).lower():
                    return {"ok": True, "user": {"id": uid}}
            return {"ok": False, "error": "users_not_found"}
        if method == "chat.postMessage":
            channel = args["channel"]
            if channel.startswith("U"):
                channel = "D" + channel[1:]  # a direct message lands in the bot's DM with them
            ts = f"1700000000.{next(self._ts):06d}"
            self.messages[(channel, ts)] = {"text": args.get("text"), "blocks": args.get("blocks")}
            return {"ok": True, "channel": channel, "ts": ts}
        if method == "chat.update":
            where = (args.get("channel", ""), args.get("ts", ""))
            if where not in self.messages:
                return {"ok": False, "error": "message_not_found"}
            self.messages[where] = {"text": args.get("text"), "blocks": args.get("blocks")}
            return {"ok": True, "channel": where[0], "ts": where[1]}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": "1700000000.999999"}
        return {"ok": False, "error": "unknown_method"}


def _handler(slack: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _reply(self, args: dict[str, Any]) -> None:
            method = urlsplit(self.path).path.rsplit("/", 1)[-1]
            body = json.dumps(
                slack.answer(method, args, self.headers.get("Authorization", ""))
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            self._reply(dict(parse_qsl(urlsplit(self.path).query)))

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            if self.headers.get("Content-Type", "").startswith("application/json"):
                args = json.loads(raw or "{}")
            else:
                args = dict(parse_qsl(raw))
                for key in ("blocks",):
                    if isinstance(args.get(key), str):
                        args[key] = json.loads(args[key])
            self._reply(args)

    return Handler


@contextmanager
def running_slack() -> Iterator[FakeSlack]:
    slack = FakeSlack()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(slack))
    slack.url = f"http://127.0.0.1:{server.server_port}/api/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield slack
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
