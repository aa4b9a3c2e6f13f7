"""A real OpenID Connect provider on 127.0.0.1, built with authlib's authorization server (Flask).

It serves discovery, JWKS, the authorization endpoint (which signs in whoever the test says,
as a person would at the IdP's page), the token endpoint (authorization code grant with PKCE
required, OpenID Connect ID tokens signed RS256), userinfo and RP-initiated logout. A test can
also make it misbehave the way a hostile or broken provider would (`tamper`).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import flask
from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.integrations.flask_oauth2 import current_token as bearer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, UserInfo
from joserfc import jwt as jose_jwt
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server


@dataclass
class Person:
    sub: str
    email: str
    groups: list[str] = field(default_factory=list)
    name: str = ""
    preferred_username: str = ""


@dataclass
class Client:
    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        allowed = {"openid", "email", "profile", "groups"}
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    sub: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass
class Token:
    access_token: str
    scope: str
    sub: str
    client_id: str
    issued_at: int
    expires_in: int

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() > self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id


class Provider:
    """The provider's state: its key, clients, people, codes and tokens, and what it saw."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key", "use": "sig"})
        self.clients: dict[str, Client] = {}
        self.people: dict[str, Person] = {}
        self.codes: dict[str, Code] = {}
        self.tokens: dict[str, Token] = {}
        self.signed_in_as: str | None = None  # who is signed in at the IdP's own page
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self.end_sessions: list[dict[str, str]] = []
        # Change the ID token's claims or signature before it is sent (a hostile provider).
        self.tamper: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.sign_with: RSAKey | None = None
        self.issuer = ""
        self.server: Any = None

    def add_client(self, client_id: str, secret: str, redirect_uri: str) -> Client:
        client = Client(client_id, secret, [redirect_uri])
        self.clients[client_id] = client
        return client

    def add_person(self, person: Person) -> Person:
        self.people[person.sub] = person
        return person

    def claims_of(self, sub: str, scope: str) -> dict[str, Any]:
        person = self.people[sub]
        info: dict[str, Any] = {"sub": person.sub}
        scopes = set(scope.split())
        if "email" in scopes:
            info.update(email=person.email, email_verified=True)
        if "profile" in scopes:
            info.update(name=person.name, preferred_username=person.preferred_username)
        if "groups" in scopes:
            info["groups"] = list(person.groups)
        return info

    def sign(self, claims: dict[str, Any]) -> str:
        key = self.sign_with or self.key
        return jose_jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, key)


def build_app(provider: Provider) -> flask.Flask:
    """The Flask app of the provider: authlib's AuthorizationServer with OIDC and PKCE."""
    app = flask.Flask("test-oidc-provider")
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"authorization_code": 3600}

    def save_token(token: dict[str, Any], request: Any) -> None:
        provider.tokens[token["access_token"]] = Token(
            access_token=token["access_token"],
            scope=token.get("scope", ""),
            sub=request.user.sub,
            client_id=request.client.client_id,
            issued_at=int(time.time()),
            expires_in=int(token["expires_in"]),
        )

    server = AuthorizationServer(
        app, query_client=lambda cid: provider.clients.get(cid), save_token=save_token
    )

    class CodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

        def save_authorization_code(self, code: str, request: Any) -> None:
            data = request.payload.data
            provider.codes[code] = Code(
                code=code,
                client_id=request.client.client_id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.payload.scope,
                sub=request.user.sub,
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
            )

        def query_authorization_code(self, code: str, client: Client) -> Code | None:
            found = provider.codes.get(code)
            return found if found and found.client_id == client.client_id else None

        def delete_authorization_code(self, authorization_code: Code) -> None:
            provider.codes.pop(authorization_code.code, None)

        def authenticate_user(self, authorization_code: Code) -> Person:
            return provider.people[authorization_code.sub]

    class OpenID(OpenIDCode):
        def exists_nonce(self, nonce: str, request: Any) -> bool:
            return any(c.nonce == nonce for c in provider.codes.values())

        def resolve_client_private_key(self, client: Client) -> Any:
            return provider.sign_with or provider.key

        def get_client_claims(self, client: Client) -> dict[str, Any]:
            now = int(time.time())
            return {"iss": provider.issuer, "aud": [client.client_id], "exp": now + 600}

        def get_encode_header(self, client: Client) -> dict[str, str]:
            return {"alg": "RS256", "kid": "test-key"}

        def generate_user_info(self, user: Person, scope: str) -> UserInfo:
            return UserInfo(provider.claims_of(user.sub, scope))

        def process_token(self, grant: Any, response: Any) -> dict[str, Any]:
            token = super().process_token(grant, response)
            if provider.tamper and "id_token" in token:
                claims = jose_jwt.decode(token["id_token"], provider.key).claims
                token["id_token"] = provider.sign(provider.tamper(dict(claims)))
            return token

    # PKCE is required: a token request without the verifier of the code's challenge fails.
    server.register_grant(CodeGrant, [OpenID(require_nonce=True), CodeChallenge(required=True)])

    class Validator(BearerTokenValidator):
        def authenticate_token(self, token_string: str) -> Token | None:
            return provider.tokens.get(token_string)

    protect = ResourceProtector()
    protect.register_token_validator(Validator())

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Any:
        base = provider.issuer
        return flask.jsonify(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "userinfo_endpoint": f"{base}/userinfo",
                "jwks_uri": f"{base}/jwks",
                "end_session_endpoint": f"{base}/logout",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["openid", "email", "profile", "groups"],
            }
        )

    @app.get("/jwks")
    def jwks() -> Any:
        return flask.jsonify({"keys": [provider.key.as_dict(private=False)]})

    @app.get("/authorize")
    def authorize() -> Any:
        provider.authorize_requests.append(dict(flask.request.args))
        if provider.signed_in_as is None:
            return "Sign in at the provider first", 401
        person = provider.people[provider.signed_in_as]
        try:
            # The grant validated first (client, redirect URI, PKCE challenge), as a consent
            # page would before asking the person.
            grant = server.get_consent_grant(end_user=person)
        except OAuth2Error as error:
            return flask.jsonify({"error": error.error, "description": error.description}), 400
        return server.create_authorization_response(grant_user=person, grant=grant)

    @app.post("/token")
    def token() -> Any:
        provider.token_requests.append(dict(flask.request.form))
        return server.create_token_response()

    @app.get("/userinfo")
    @protect()
    def userinfo() -> Any:
        return flask.jsonify(provider.claims_of(bearer.sub, bearer.scope))

    @app.get("/logout")
    def logout() -> Any:
        provider.end_sessions.append(dict(flask.request.args))
        provider.signed_in_as = None
        back = flask.request.args.get("post_logout_redirect_uri")
        return flask.redirect(back) if back else "Signed out"

    return app


@contextmanager
def running_provider() -> Iterator[Provider]:
    """Serve a provider on 127.0.0.1 (a free port) in a thread for the test's duration."""
    # authlib refuses plain http unless told: this provider is on loopback only.
    previous = os.environ.get("AUTHLIB_INSECURE_TRANSPORT")
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
    provider = Provider()
    server = make_server("127.0.0.1", 0, build_app(provider), threaded=True)
    provider.issuer = f"http://127.0.0.1:{server.server_port}"
    provider.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        thread.join(5)
        if previous is None:
            os.environ.pop("AUTHLIB_INSECURE_TRANSPORT", None)
        else:
            os.environ["AUTHLIB_INSECURE_TRANSPORT"] = previous


def query_of(url: str) -> dict[str, str]:
    """The query parameters of a URL, one value each."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
