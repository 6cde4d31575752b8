"""Business rules of accounts: registration, login, apps and keys, payment passwords.

Never commits; the request or task boundary does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy import ColumnElement, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from knowpay.accounts import repository
from knowpay.accounts.errors import (
    AppNotFound,
    EmailTaken,
    InvalidCredentials,
    PaymentPasswordIncorrect,
    PaymentPasswordLocked,
    PaymentPasswordNotSet,
    UserNotFound,
)
from knowpay.accounts.models import ApiKey, App, User
from knowpay.audit import service as audit
from knowpay.auth.dependencies import API_KEY_PREFIX
from knowpay.auth.principals import STAFF_ROLES, Principal, Role
from knowpay.auth.scoping import ensure_visible
from knowpay.kit.config import Settings
from knowpay.kit.crypto import SecretHasher, random_token, sha256_hex
from knowpay.kit.ids import new_id
from knowpay.kit.pagination import PageParams

LIVE_KEY_PREFIX = API_KEY_PREFIX + "live_"


def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively."""
    return email.strip().lower()


@dataclass(frozen=True, slots=True)
class NewApp:
    app: App
    api_key_id: str
    api_key: str


def register_user(
    session: Session,
    hasher: SecretHasher,
    *,
    email: str,
    password: str,
    role: Role,
    now: datetime,
    app_id: str | None = None,
    phone: str | None = None,
    locale: str = "zh_CN",
) -> User:
    """Create a person with an argon2id password hash; EmailTaken if the email is in use."""
    email = normalize_email(email)
    if repository.get_user_by_email(session, email) is not None:
        raise EmailTaken(f"{email} is already registered.")
    user = User(
        id=new_id("usr"),
        email=email,
        password_hash=hasher.hash(password),
        role=role.value,
        app_id=app_id,
        phone=phone,
        locale=locale,
        level="unverified",
        created_at=now,
        payment_password_failures=0,
    )
    try:
        with session.begin_nested():
            repository.add(session, user)
    except IntegrityError as exc:  # a concurrent registration won the race
        raise EmailTaken(f"{email} is already registered.") from exc
    return user


def create_staff(
    session: Session, hasher: SecretHasher, *, email: str, password: str, role: Role, now: datetime
) -> User:
    """Create a staff member (admin, finance or support)."""
    if role not in STAFF_ROLES:
        raise ValueError(f"{role} is not a staff role")
    user = register_user(session, hasher, email=email, password=password, role=role, now=now)
    audit.record(
        session,
        action="staff.created",
        object_type="user",
        object_id=user.id,
        after={"role": role.value},
        now=now,
    )
    return user


def authenticate(session: Session, hasher: SecretHasher, *, email: str, password: str) -> Principal:
    """The person behind an email and password; InvalidCredentials otherwise (same for both)."""
    user = repository.get_user_by_email(session, normalize_email(email))
    valid = hasher.verify(user.password_hash if user else None, password)
    if user is None or not valid or user.disabled_at is not None:
        raise InvalidCredentials("The email or the password is wrong.")
    return Principal(id=user.id, role=Role(user.role), app_id=user.app_id)


def app_exists(session: Session, app_id: str) -> bool:
    """Whether an app with this id was ever created."""
    return repository.get_app(session, app_id) is not None


def get_user(session: Session, user_id: str) -> User:
    user = repository.get_user(session, user_id)
    if user is None:
        raise UserNotFound(f"No such user: {user_id}")
    return user


def get_visible_user(session: Session, caller: Principal, user_id: str) -> User:
    """A user the caller may see: an app its own, a person themself, staff anyone; another's
    is `user_not_found`, the answer a missing one gets."""
    user = get_user(session, user_id)
    ensure_visible(
        caller,
        owner_app_id=user.app_id,
        owner_user_id=user.id,
        what="user",
        object_id=user_id,
        not_found=UserNotFound,
    )
    return user


def principal_of(session: Session, user_id: str) -> Principal | None:
    """Who a user is (id, role, app), or None when there is no such user."""
    user = repository.get_user(session, user_id)
    return None if user is None else Principal(id=user.id, role=Role(user.role), app_id=user.app_id)


def get_buyer(session: Session, user_id: str) -> User:
    """A buyer or creator (someone who pays); a staff account is answered as no such buyer."""
    user = repository.get_user(session, user_id)
    if user is None or user.role not in (Role.BUYER.value, Role.CREATOR.value):
        raise UserNotFound(f"No such buyer: {user_id}")
    return user


def web_session_generation(session: Session, user_id: str) -> int:
    """What a page session begun now carries; a logout raises it (web/session.py)."""
    return get_user(session, user_id).web_session_generation


def end_web_sessions(session: Session, user_id: str) -> None:
    """Logging out of the pages ends every page session the person began before, on every
    device: the cookie is signed, not stored, so a copy of it is checked against this."""
    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(web_session_generation=User.web_session_generation + 1)
    )


def level_of(user_id: str | ColumnElement[str]) -> ColumnElement[str]:
    """The user's level as a scalar subquery: a statement that filters by it (the spending
    limits that apply) reads it without a round trip of its own. `user_id` may be a bound
    parameter, for a statement built once."""
    return repository.level_of(user_id)


def list_users(
    session: Session, params: PageParams, *, app_id: str | None
) -> tuple[list[User], bool]:
    """Users newest first; only those registered by `app_id` when given."""
    return repository.list_users(session, params, app_id=app_id)


def create_app(session: Session, *, name: str, now: datetime) -> NewApp:
    """Create a platform app with its first API key (returned once, stored hashed)."""
    app = App(id=new_id("app"), name=name, created_at=now)
    repository.add(session, app)
    audit.record(
        session,
        action="app.created",
        object_type="app",
        object_id=app.id,
        after={"name": name},
        now=now,
    )
    key_id, key = issue_api_key(session, app_id=app.id, now=now)
    return NewApp(app=app, api_key_id=key_id, api_key=key)


def issue_api_key(session: Session, *, app_id: str, now: datetime) -> tuple[str, str]:
    """A new API key for an app: (key id, the key). Only the key's SHA-256 is kept."""
    if repository.get_app(session, app_id) is None:
        raise AppNotFound(f"No such app: {app_id}")
    key = random_token(LIVE_KEY_PREFIX)
    row = ApiKey(
        id=new_id("key"),
        app_id=app_id,
        key_hash=sha256_hex(key),
        display_prefix=key[: len(LIVE_KEY_PREFIX) + 4],
        created_at=now,
    )
    repository.add(session, row)
    audit.record(
        session,
        action="api_key.created",
        object_type="api_key",
        object_id=row.id,
        after={"app_id": app_id, "prefix": row.display_prefix},
        now=now,
    )
    return row.id, key


def revoke_api_keys(session: Session, *, app_id: str, now: datetime) -> int:
    """Revoke every live key of an app; returns how many were revoked."""
    if repository.get_app(session, app_id) is None:
        raise AppNotFound(f"No such app: {app_id}")
    revoked = repository.revoke_keys(session, app_id, now)
    audit.record(
        session,
        action="api_keys.revoked",
        object_type="app",
        object_id=app_id,
        after={"revoked": revoked},
        now=now,
    )
    return revoked


def list_apps(session: Session) -> list[App]:
    return repository.list_apps(session)


def resolve_api_key(session: Session, api_key: str) -> Principal | None:
    """The app an API key belongs to, or None for an unknown, revoked or disabled one."""
    app_id = repository.active_key_app_id(session, sha256_hex(api_key))
    if app_id is None:
        return None
    return Principal(id=app_id, role=Role.APP, app_id=app_id)


# Payment password ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaymentPasswordCheck:
    """The outcome of one payment-password try; the boundary commits it before answering."""

    verified: bool
    remaining_tries: int
    locked_until: datetime | None


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    max_tries: int
    lock_for: timedelta


def lockout_policy(settings: Settings) -> LockoutPolicy:
    """How many wrong payment-password tries lock it, and for how long (settings)."""
    return LockoutPolicy(
        max_tries=settings.payment_password_max_tries,
        lock_for=timedelta(seconds=settings.payment_password_lock_s),
    )


def refuse_failed_check(check: PaymentPasswordCheck) -> NoReturn:
    """The error a failed try answers with: 423 while locked, 403 with the tries left."""
    if check.locked_until is not None:
        raise PaymentPasswordLocked(
            "Too many wrong tries; the payment password is locked.",
            locked_until=check.locked_until.isoformat().replace("+00:00", "Z"),
            remaining_tries=0,
        )
    raise PaymentPasswordIncorrect(
        f"Wrong payment password; {check.remaining_tries} tries left before it locks.",
        remaining_tries=check.remaining_tries,
    )


def check_payment_password(
    session: Session,
    hasher: SecretHasher,
    *,
    user_id: str,
    password: str,
    now: datetime,
    policy: LockoutPolicy,
) -> PaymentPasswordCheck:
    """Verify under a row lock, counting failures; lock after `max_tries` wrong tries."""
    user = repository.get_user(session, user_id, for_update=True)
    if user is None:
        raise UserNotFound(f"No such user: {user_id}")
    if user.payment_password_hash is None:
        raise PaymentPasswordNotSet("Set a payment password first.")
    if user.payment_password_locked_until is not None:
        if user.payment_password_locked_until > now:
            return PaymentPasswordCheck(False, 0, user.payment_password_locked_until)
        user.payment_password_locked_until = None
        user.payment_password_failures = 0
    if hasher.verify(user.payment_password_hash, password):
        user.payment_password_failures = 0
        return PaymentPasswordCheck(True, policy.max_tries, None)
    user.payment_password_failures += 1
    if user.payment_password_failures >= policy.max_tries:
        user.payment_password_locked_until = now + policy.lock_for
        user.payment_password_failures = 0
        return PaymentPasswordCheck(False, 0, user.payment_password_locked_until)
    return PaymentPasswordCheck(False, policy.max_tries - user.payment_password_failures, None)


def set_payment_password(
    session: Session,
    hasher: SecretHasher,
    *,
    user_id: str,
    new_password: str,
    current_password: str | None,
    now: datetime,
    policy: LockoutPolicy,
) -> PaymentPasswordCheck:
    """Set the first payment password, or change it after the current one checks out."""
    user = repository.get_user(session, user_id, for_update=True)
    if user is None:
        raise UserNotFound(f"No such user: {user_id}")
    if user.payment_password_hash is not None:
        if current_password is None:
            raise PaymentPasswordIncorrect(
                "Give `current_password` to change the payment password.",
                remaining_tries=policy.max_tries - user.payment_password_failures,
            )
        check = check_payment_password(
            session, hasher, user_id=user_id, password=current_password, now=now, policy=policy
        )
        if not check.verified:
            return check
    user.payment_password_hash = hasher.hash(new_password)
    user.payment_password_failures = 0
    user.payment_password_locked_until = None
    return PaymentPasswordCheck(True, policy.max_tries, None)
