"""The console as an OpenID Connect relying party: the authorization-code flow with PKCE, state and nonce,
and the ID token checked (signature against the provider's JWKS, iss, aud, exp, nonce, at_hash).

authlib builds the requests and validates the claims; joserfc (authlib's JOSE layer) checks the
signature. Every failure of the provider or of its answer leaves this module as `OidcRefused` with a
short reason for the audit trail; no httpx or JOSE exception goes further.
"""

from __future__ import annotations

import functools
import secrets
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oauth2.rfc6749.parameters import (
    parse_authorization_code_response,
    prepare_grant_uri,
    prepare_token_request,
)
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
)
from joserfc.jwk import KeySet

from core.oidc_settings import OidcSettings, https_or_loopback

# Asymmetric signatures only: an HMAC-signed ID token would be keyed by our own client secret, and
# "none" is no signature at all.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
METADATA_SECONDS = 3600.0
MAX_ANSWER = 256 * 1024


@functools.lru_cache(maxsize=4)
def _trust(ca_file: str | None) -> ssl.SSLContext:
    # Loading a trust store costs ~0.1 s: once per CA file, not once per request to the provider.
    return ssl.create_default_context(cafile=ca_file)


class OidcRefused(Exception):
    """The sign-in cannot go on. `reason` is a short code (audit trail, the refusal page): state,
    nonce, audience, issuer, expired, signature, token, provider, cancelled, claim, unverified."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Attempt:
    """A sign-in sent to the provider: the browser goes to `url`; the rest is kept until it returns."""

    url: str
    state: str
    nonce: str
    verifier: str


@dataclass(frozen=True)
class Identity:
    """Who the provider says signed in: `value` is the configured claim's, which names the account."""

    value: str
    subject: str
    claims: Mapping[str, Any]


@dataclass(frozen=True)
class _Provider:
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: tuple[str, ...]
    auth_method: str


class RelyingParty:
    """One per configured provider: keeps its discovery document and keys (refetched on an unknown key)."""

    def __init__(self, settings: OidcSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._clock = clock
        self._provider: tuple[float, _Provider] | None = None
        self._keys: KeySet | None = None

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(verify=_trust(str(self.settings.ca_file) if self.settings.ca_file else None),
                                 timeout=self.settings.timeout_seconds, follow_redirects=False)

    async def _get_json(self, url: str, **request: Any) -> dict[str, Any]:
        try:
            async with self._client() as client:
                response = await client.request(request.pop("method", "GET"), url, **request)
        except httpx.HTTPError as exc:
            raise OidcRefused("provider", f"{url}: {type(exc).__name__}") from None
        if len(response.content) > MAX_ANSWER:
            raise OidcRefused("provider", f"{url}: answer too large")
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise OidcRefused("provider", f"{url}: HTTP {response.status_code}, not a JSON object")
        if response.status_code != 200:
            # The token endpoint's error (invalid_grant, invalid_client, ...) says what went wrong.
            raise OidcRefused("token" if "error" in data else "provider",
                              f"{url}: HTTP {response.status_code} {str(data.get('error', ''))[:60]}")
        return data

    async def provider(self) -> _Provider:
        now = self._clock()
        if self._provider is not None and now - self._provider[0] < METADATA_SECONDS:
            return self._provider[1]
        doc = await self._get_json(f"{self.settings.issuer}/.well-known/openid-configuration")
        # OpenID Connect Discovery 4.3: the document's issuer is exactly the one configured.
        if str(doc.get("issuer", "")).rstrip("/") != self.settings.issuer:
            raise OidcRefused("issuer", f"the discovery document names issuer {str(doc.get('issuer'))[:100]!r}")
        try:
            authorize, token, jwks = (https_or_loopback(name, str(doc[name]))
                                      for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"))
        except (KeyError, ValueError) as exc:
            raise OidcRefused("provider", f"discovery document: {exc}") from None
        offered = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
        methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        found = _Provider(authorize, token, jwks, algorithms=tuple(a for a in ALGORITHMS if a in offered) or ("RS256",),
                          auth_method="client_secret_basic" if "client_secret_basic" in methods
                          else "client_secret_post")
        self._provider = (now, found)
        return found

    async def _key_set(self, provider: _Provider, *, fresh: bool) -> KeySet:
        if self._keys is None or fresh:
            data = await self._get_json(provider.jwks_uri)
            try:
                self._keys = KeySet.import_key_set(data)  # type: ignore[arg-type]
            except (JoseError, ValueError, KeyError, TypeError) as exc:
                raise OidcRefused("provider", f"JWKS: {exc}") from None
        return self._keys

    async def begin(self, redirect_uri: str, *, language: str = "da") -> Attempt:
        """Where to send the browser: the provider's authorization endpoint with a fresh state, nonce
        and PKCE challenge (S256)."""
        provider = await self.provider()
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        url = prepare_grant_uri(provider.authorization_endpoint, self.settings.client_id, "code",
                                redirect_uri=redirect_uri, scope=" ".join(self.settings.scopes), state=state,
                                nonce=nonce, code_challenge=create_s256_code_challenge(verifier),
                                code_challenge_method="S256", ui_locales=language)
        return Attempt(str(url), state, nonce, verifier)

    async def finish(self, returned_url: str, *, state: str, nonce: str, verifier: str,
                     redirect_uri: str) -> Identity:
        """The browser came back to `returned_url`: check the state, redeem the code with the PKCE
        verifier and the client secret, and check the ID token."""
        try:
            params = parse_authorization_code_response(returned_url, state=state)
        except OAuth2Error as exc:
            raise OidcRefused("state" if exc.error == "mismatching_state" else "cancelled", exc.error) from None
        provider = await self.provider()
        try:
            secret = self.settings.client_secret.reveal()
        except LookupError as exc:
            raise OidcRefused("provider", f"client_secret: {exc}") from None
        body = prepare_token_request("authorization_code", code=params["code"], redirect_uri=redirect_uri,
                                     code_verifier=verifier)
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        _, headers, body = ClientAuth(self.settings.client_id, secret, provider.auth_method).prepare(
            "POST", provider.token_endpoint, headers, body)
        token = await self._get_json(provider.token_endpoint, method="POST", content=body, headers=headers)
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise OidcRefused("token", "the token answer has no id_token")
        claims = await self._verified_claims(provider, id_token, nonce=nonce,
                                             access_token=token.get("access_token"))
        return self._identity(claims)

    async def _verified_claims(self, provider: _Provider, id_token: str, *, nonce: str,
                               access_token: object) -> dict[str, Any]:
        try:
            try:
                decoded = jwt.decode(id_token, await self._key_set(provider, fresh=False),
                                     algorithms=provider.algorithms)
            except InvalidKeyIdError:  # the provider rotated its keys since we fetched them
                decoded = jwt.decode(id_token, await self._key_set(provider, fresh=True),
                                     algorithms=provider.algorithms)
            claims = CodeIDToken(decoded.claims, decoded.header, {
                "iss": {"essential": True, "value": self.settings.issuer},
                "aud": {"essential": True, "value": self.settings.client_id},
                "exp": {"essential": True},
            }, {"nonce": nonce, "client_id": self.settings.client_id,
                "access_token": access_token if isinstance(access_token, str) else None})
            claims.validate(now=int(self._clock()), leeway=self.settings.clock_skew_seconds)
        except ExpiredTokenError:
            raise OidcRefused("expired") from None
        except ClaimError as exc:
            reason = {"aud": "audience", "azp": "audience", "iss": "issuer", "nonce": "nonce",
                      "iat": "expired", "nbf": "expired"}.get(exc.claim, "token")
            raise OidcRefused(reason, f"claim {exc.claim}") from None
        except (BadSignatureError, InvalidKeyIdError):
            raise OidcRefused("signature") from None
        except (JoseError, ValueError, TypeError) as exc:
            raise OidcRefused("token", type(exc).__name__) from None
        return dict(claims)

    def _identity(self, claims: Mapping[str, Any]) -> Identity:
        name = self.settings.claim
        value = claims.get(name)
        if not isinstance(value, str) or not value.strip():
            raise OidcRefused("claim", f"the ID token has no {name}")
        if name == "email" and claims.get("email_verified") is False:
            raise OidcRefused("unverified", "the provider has not verified the e-mail address")
        return Identity(value.strip(), str(claims.get("sub", "")), claims)
