"""A fake OpenID Connect identity provider for the console's "Sign in with …" button: discovery document,
an authorize endpoint with a tiny login page (pick a person, no password), a token endpoint
(authorization code + PKCE S256, client_secret_basic or _post), JWKS, ID tokens signed RS256.

    idp = FakeIdentityProvider(client_id="postbud-console")
    async with serve_http(idp.app) as base:   # the issuer is `base` unless set
        ...

`login_hint=<person>` on the authorize request signs that person in at once (tests, no form). To test a
relying party's checks the fake misbehaves on request: `claim_changes` overrides or adds ID token claims
(`aud`, `exp`, `nonce`, `iss`, …; a value None removes the claim), `rogue_key` signs with a key the JWKS
does not publish (under the published key's id).
"""

from __future__ import annotations

import base64
import html
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from authlib.common.encoding import to_native
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core.util import create_half_hash
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from core.config import Config

CODE_SECONDS = 60
TOKEN_SECONDS = 300
KEY_ID = "sandbox-1"

# The demo's people at the provider: the sandbox links the first two to its demo accounts; the third
# has no account, to show the refusal.
DEMO_PEOPLE: dict[str, dict[str, Any]] = {
    "anna": {"sub": "8d0c2f1e-anna", "email": "anna.admin@eksempel.invalid", "email_verified": True,
             "name": "Anna Andersen"},
    "rasmus": {"sub": "41b7a9c3-rasmus", "email": "rasmus.reception@eksempel.invalid", "email_verified": True,
               "name": "Rasmus Riis"},
    "ukendt": {"sub": "c0ffee00-ukendt", "email": "ukendt@eksempel.invalid", "email_verified": True,
               "name": "Ukendt Udefra"},
}


def serves_identity_provider(config: Config) -> str | None:
    """The issuer URL the sandbox plays when the console is configured for an identity provider on plain
    http on this machine (the example config's); None for a real provider, or none."""
    oidc = config.console.oidc if config.console.enabled else None
    if oidc is None:
        return None
    parts = urllib.parse.urlsplit(oidc.issuer)
    return oidc.issuer if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost") else None


async def _form(request: Request) -> dict[str, str]:
    # urlencoded by hand: starlette's form parser needs python-multipart, which postbud does not install
    return dict(urllib.parse.parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))


def _key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": KEY_ID, "use": "sig", "alg": "RS256"}, private=True)


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    person: str
    expires: float


@dataclass
class FakeIdentityProvider:
    """The provider's state; `app` serves it. `issuer` defaults to the URL the request reached."""

    client_id: str = "postbud-console"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    issuer: str | None = None
    people: dict[str, dict[str, Any]] = field(default_factory=lambda: {k: dict(v) for k, v in DEMO_PEOPLE.items()})
    claim_changes: dict[str, Any] = field(default_factory=dict)
    rogue_key: bool = False
    clock: Callable[[], float] = time.time
    tokens_issued: int = 0
    key: RSAKey = field(default_factory=_key)
    _rogue: RSAKey | None = None
    _grants: dict[str, _Grant] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/.well-known/openid-configuration", self._discovery, methods=["GET"]),
            Route("/authorize", self._authorize, methods=["GET", "POST"]),
            Route("/token", self._token, methods=["POST"]),
            Route("/jwks", self._jwks, methods=["GET"]),
        ])

    def _issuer(self, request: Request) -> str:
        return self.issuer or str(request.base_url).rstrip("/")

    async def _discovery(self, request: Request) -> Response:
        base = self._issuer(request)
        return JSONResponse({
            "issuer": base, "authorization_endpoint": f"{base}/authorize", "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks", "response_types_supported": ["code"],
            "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"], "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "claims_supported": ["sub", "email", "email_verified", "name"],
        })

    async def _jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def _authorize(self, request: Request) -> Response:
        params = dict(request.query_params)
        if request.method == "POST":
            params.update(await _form(request))
        redirect = params.get("redirect_uri", "")
        if params.get("client_id") != self.client_id or not redirect.startswith(("http://", "https://")):
            return HTMLResponse("<p>unknown client or redirect_uri</p>", status_code=400)
        if params.get("response_type") != "code" or params.get("code_challenge_method") != "S256" \
                or not params.get("code_challenge") or "openid" not in params.get("scope", "").split():
            return self._back(redirect, {"error": "invalid_request", "state": params.get("state", "")})
        person = params.get("person") or params.get("login_hint")
        if person is None:
            return self._login_page(params)
        if person == "cancel" or person not in self.people:
            return self._back(redirect, {"error": "access_denied", "state": params.get("state", "")})
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._grants[code] = _Grant(self.client_id, redirect, params["code_challenge"], params.get("nonce"),
                                        person, self.clock() + CODE_SECONDS)
        return self._back(redirect, {"code": code, "state": params.get("state", "")})

    @staticmethod
    def _back(redirect: str, answer: dict[str, str]) -> Response:
        separator = "&" if "?" in redirect else "?"
        return RedirectResponse(redirect + separator + urllib.parse.urlencode(answer), status_code=302)

    def _login_page(self, params: dict[str, str]) -> Response:
        hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                         for k, v in params.items())
        buttons = "".join(f'<p><button name="person" value="{html.escape(k)}" id="person-{html.escape(k)}">'
                          f'{html.escape(p["name"])} &lt;{html.escape(p["email"])}&gt;</button></p>'
                          for k, p in self.people.items())
        return HTMLResponse(
            '<!doctype html><html lang="da"><meta charset="utf-8"><title>Sandbox identity provider</title>'
            '<h1>Sandbox identity provider</h1><p>Choose who signs in (no password: this is a fake).</p>'
            f'<form method="post" action="authorize">{hidden}{buttons}'
            '<p><button name="person" value="cancel" id="cancel">Cancel</button></p></form></html>')

    def _client_of(self, request: Request, form: dict[str, str]) -> tuple[str, str]:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            decoded = base64.b64decode(header[6:]).decode("latin1")
            client_id, _, secret = decoded.partition(":")
            return client_id, secret
        return form.get("client_id", ""), form.get("client_secret", "")

    async def _token(self, request: Request) -> Response:
        form = await _form(request)
        client_id, secret = self._client_of(request, form)
        if client_id != self.client_id or not secrets.compare_digest(secret, self.client_secret):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        with self._lock:
            grant = self._grants.pop(form.get("code", ""), None)  # a code is redeemed once
        if form.get("grant_type") != "authorization_code" or grant is None or grant.expires < self.clock() \
                or grant.redirect_uri != form.get("redirect_uri") or grant.client_id != client_id:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if create_s256_code_challenge(form.get("code_verifier", "")) != grant.challenge:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
        access_token = secrets.token_urlsafe(24)
        self.tokens_issued += 1
        return JSONResponse({"access_token": access_token, "token_type": "Bearer", "expires_in": TOKEN_SECONDS,
                             "scope": "openid email profile",
                             "id_token": self.id_token(grant, access_token, self._issuer(request))},
                            headers={"Cache-Control": "no-store"})

    def id_token(self, grant: _Grant, access_token: str, issuer: str) -> str:
        now = int(self.clock())
        claims: dict[str, Any] = {"iss": issuer, "aud": grant.client_id, "iat": now, "exp": now + TOKEN_SECONDS,
                                  "auth_time": now, "at_hash": to_native(create_half_hash(access_token, "RS256")),
                                  **self.people[grant.person]}
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        for name, value in self.claim_changes.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        key = self.key
        if self.rogue_key:
            self._rogue = self._rogue or _key()
            key = self._rogue
        return jwt.encode({"alg": "RS256", "kid": KEY_ID, "typ": "JWT"}, claims, key)
