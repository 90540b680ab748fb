"""Local console accounts: argon2 password hashes, sign-in with throttling per account and address, and
the identity-provider identities linked to accounts (OpenID Connect sign-in, postbud/console/oidc.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, select

from core.storage.accounts import ConsoleSession, ConsoleUser
from core.storage.db import Store
from postbud.console import audit
from postbud.console.profiles import Profile

LANGUAGES = ("da", "en")
MIN_PASSWORD = 10
# The password hash of an account that signs in only through the identity provider: no argon2 hash,
# so every password is wrong for it.
NO_PASSWORD = "!"

_hasher = PasswordHasher()
# Verified against when the account does not exist, so a wrong name costs as long as a wrong password.
_DUMMY = _hasher.hash("no such account, no such password")


def use_hasher(hasher: PasswordHasher) -> None:
    """Replace the argon2 parameters (tests use cheap ones; production keeps argon2-cffi's defaults)."""
    global _hasher, _DUMMY
    _hasher = hasher
    _DUMMY = hasher.hash("no such account, no such password")


class AccountError(ValueError):
    """The account cannot be created or changed as asked; the text says why."""


@dataclass(frozen=True)
class SignIn:
    user: ConsoleUser | None
    refused: str | None  # "wrong", "throttled", "disabled", "location" or (identity provider)
    # "unknown" when user is None
    # The account named, when its organisations' trusted locations refuse the address: with the right
    # password ("location") it is mailed a link; with a wrong one the answer must look the same.
    unlocated: ConsoleUser | None = None


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password has at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def _check_profile(profile: str) -> Profile:
    try:
        return Profile(profile)
    except ValueError:
        raise AccountError(f"unknown profile {profile!r}; one of {', '.join(p.value for p in Profile)}") from None


def _check_email(email: str | None) -> str | None:
    if not email:
        return None
    local, at, domain = email.strip().rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in email.strip()) or len(email) > 254:
        raise AccountError(f"{email!r} is not an e-mail address")
    return email.strip()


def identity_key(value: str) -> str:
    """An identity as stored and compared: trimmed; an e-mail address in lower case."""
    value = value.strip()
    return value.lower() if "@" in value else value


def _check_identity(value: str) -> str:
    key = identity_key(value)
    if not key or len(key) > 255 or not key.isprintable():
        raise AccountError("an identity is 1-255 printable characters (the provider's e-mail or subject id)")
    return key


def add_user(store: Store, username: str, password: str | None, *, profile: str, organisations: Sequence[str],
             recipient: str | None = None, language: str = "da", actor: str = "cli",
             email: str | None = None, oidc_identity: str | None = None) -> ConsoleUser:
    """A new account; `password` None makes one that signs in only as its `oidc_identity`."""
    chosen = _check_profile(profile)
    address = _check_email(email)
    identity = None if oidc_identity is None else _check_identity(oidc_identity)
    if password is None and identity is None:
        raise AccountError("an account without a password signs in through the identity provider: give --oidc")
    if not username or len(username) > 64 or not username.replace(".", "").replace("-", "").replace("_", "").replace("@", "").isalnum():
        raise AccountError("a user name is 1-64 letters, digits, '.', '-', '_' or '@'")
    if not organisations:
        raise AccountError("grant at least one organisation (CVR)")
    if chosen is Profile.DELIVERY and not recipient:
        raise AccountError("a delivery account names its recipient id (--recipient)")
    if language not in LANGUAGES:
        raise AccountError(f"language is one of {', '.join(LANGUAGES)}")
    user = ConsoleUser(username=username, password_hash=NO_PASSWORD if password is None else hash_password(password),
                       profile=chosen.value, organisations=list(dict.fromkeys(organisations)), recipient=recipient,
                       language=language, email=address, oidc_identity=identity)
    with store.transaction() as session:
        if session.exec(select(ConsoleUser).where(ConsoleUser.username == username)).first() is not None:
            raise AccountError(f"user {username} exists already")
        _identity_free(session, identity)
        session.add(user)
        audit.record(session, actor, "user_added", organisation=user.organisations[0],
                     detail={"user": username, "profile": chosen.value, "organisations": user.organisations,
                             **({"oidc": identity} if identity else {})})
    return user


def users(store: Store, *, organisations: Sequence[str] | None = None) -> list[ConsoleUser]:
    """Every account, or those granted one of `organisations`."""
    with store.read() as session:
        rows = list(session.exec(select(ConsoleUser).order_by(col(ConsoleUser.username))))
    if organisations is None:
        return rows
    return [u for u in rows if set(u.organisations) & set(organisations)]


def _identity_free(session: Session, identity: str | None, *, but: str | None = None) -> None:
    if identity is None:
        return
    holder = session.exec(select(ConsoleUser).where(ConsoleUser.oidc_identity == identity)).first()
    if holder is not None and holder.username != but:
        raise AccountError(f"identity {identity} is linked to user {holder.username} already")


def _change(store: Store, username: str, action: str, actor: str, **changes: object) -> ConsoleUser:
    with store.transaction() as session:
        user = session.exec(select(ConsoleUser).where(ConsoleUser.username == username)).first()
        if user is None:
            raise AccountError(f"no user {username}")
        if action == "oidc_linked":
            _identity_free(session, str(changes["oidc_identity"]), but=username)
        for key, value in changes.items():
            setattr(user, key, value)
        session.add(user)
        if action not in ("language_set", "email_set"):
            # A changed or disabled account is signed out everywhere: its old rights end at once.
            for row in session.exec(select(ConsoleSession).where(ConsoleSession.user_id == user.id)):
                session.delete(row)
        audit.record(session, actor, action, organisation=user.organisations[0] if user.organisations else None,
                     detail={"user": username, **{k: str(v) for k, v in changes.items()}})
    return user


def disable(store: Store, username: str, *, actor: str) -> ConsoleUser:
    return _change(store, username, "user_disabled", actor, disabled=True)


def set_profile(store: Store, username: str, profile: str, *, actor: str, recipient: str | None = None) -> ConsoleUser:
    chosen = _check_profile(profile)
    if chosen is Profile.DELIVERY and not recipient:
        raise AccountError("a delivery account names its recipient id (--recipient)")
    return _change(store, username, "profile_set", actor, profile=chosen.value, recipient=recipient)


def set_email(store: Store, username: str, email: str | None, *, actor: str) -> ConsoleUser:
    """Where the account's trusted-location links are mailed (None: nowhere, unless the name is an address)."""
    return _change(store, username, "email_set", actor, email=_check_email(email))


def set_language(store: Store, username: str, language: str, *, actor: str) -> ConsoleUser:
    if language not in LANGUAGES:
        raise AccountError(f"language is one of {', '.join(LANGUAGES)}")
    return _change(store, username, "language_set", actor, language=language)


def link_identity(store: Store, username: str, identity: str | None, *, actor: str) -> ConsoleUser:
    """Link `identity` (the `[console.oidc] claim` value) to the account, or unlink with None; either
    way the account's sessions end."""
    if identity is None:
        return _change(store, username, "oidc_unlinked", actor, oidc_identity=None)
    return _change(store, username, "oidc_linked", actor, oidc_identity=_check_identity(identity))


def sign_in_identity(store: Store, identity: str, *, address: str | None, detail: dict[str, str]) -> SignIn:
    """The account an identity provider's identity signs in to: linked and enabled, else refused.
    Audited as "signin" or "signin_disabled" under the account, "signin_refused" under the identity."""
    key = identity_key(identity)
    with store.transaction() as session:
        user = session.exec(select(ConsoleUser).where(ConsoleUser.oidc_identity == key)).first() if key else None
        refused = "unknown" if user is None else "disabled" if user.disabled else None
        action = {None: "signin", "unknown": "signin_refused", "disabled": "signin_disabled"}[refused]
        audit.record(session, user.username if user else key or "?", action, address=address,
                     detail={**detail, **({"reason": "unknown identity"} if user is None else {})})
    return SignIn(user if refused is None else None, refused)


def authenticate(store: Store, username: str, password: str, *, address: str | None,
                 max_failures: int, window_minutes: float,
                 located: Callable[[ConsoleUser], bool] = lambda _: True) -> SignIn:
    """Check a sign-in; every attempt, refused or not, goes into the audit trail. `located` says whether
    the account's organisations admit the address (trusted locations)."""
    since = audit.window_start(window_minutes)
    with store.read() as session:
        user = session.exec(select(ConsoleUser).where(ConsoleUser.username == username)).first()
        throttled = (audit.failures_since(session, since, username=username) >= max_failures
                     or (address is not None
                         and audit.failures_since(session, since, address=address) >= max_failures))
    refused: str | None = None
    if throttled:
        refused = "throttled"  # no hash is checked: a locked account cannot be guessed at
    else:
        try:
            _hasher.verify(user.password_hash if user else _DUMMY, password)
            if user is None:
                refused = "wrong"
        except (VerificationError, InvalidHashError):
            refused = "wrong"
        if refused is None and user is not None and user.disabled:
            refused = "disabled"
    unlocated = user if refused in (None, "wrong") and user is not None and not located(user) else None
    if refused is None and unlocated is not None:
        refused = "location"
    with store.transaction() as session:
        action = {None: "signin", "wrong": "signin_failed", "throttled": "signin_throttled",
                  "disabled": "signin_disabled", "location": "signin_location"}[refused]
        audit.record(session, username, action, address=address, detail={"method": "password"})
        if refused is None and user is not None and _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
            session.add(user)
    return SignIn(user if refused is None else None, refused, unlocated)
