"""Single sign-on (core.access.oidc) against the real database: provisioning, approval, claim
mapping, linking, refusal, lock-out protection, audit, and the Streamlit [auth] settings."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

import core.admin as svc
from core.access.accounts import check_sign_in, sign_in_with_password
from core.access.oidc import (
    sign_in_with_oidc,
    streamlit_auth_secrets,
    streamlit_secrets_flags,
    write_streamlit_secrets,
)
from core.access.rbac import ADMIN_ROLE, USER_ROLE, Actor
from core.platform.config import Settings, get_settings
from core.platform.db import session_scope
from core.platform.models import Role, User
from tests.admin_data import audit_actions_for, get_row, only_manager
from tests.conftest import unique
from tests.oidc_support import ISSUER, identity


def _user(**where: Any) -> User:
    with session_scope() as session:
        user = session.scalar(select(User).filter_by(**where))
        assert user is not None
        session.expunge(user)
        return user


def _role_id(name: str) -> int:
    with session_scope() as session:
        role_id = session.scalar(select(Role.id).where(Role.name == name))
        assert role_id is not None
        return role_id


# ------------------------------------------------------------------ provisioning


def test_first_sign_in_provisions_an_active_user_from_the_verified_claims(database: str, oidc: Any) -> None:
    oidc(oidc_new_users="active", oidc_default_role=USER_ROLE)
    person = identity(preferred_username="ada.l")
    verdict = sign_in_with_oidc(person)
    assert verdict.actor is not None and verdict.refusal is None
    assert verdict.actor.email == person.email and verdict.actor.role == USER_ROLE
    assert verdict.actor.display_name == "Ada Lovelace"
    user = _user(oidc_subject=person.subject)
    assert user.oidc_issuer == ISSUER and user.password_hash == "" and user.is_active
    assert user.last_login_method == "oidc" and user.last_login_at is not None
    assert [a for a, _ in audit_actions_for("user", user.id)] == ["user.provision", "auth.sign_in"]
    # The next sign-in finds the same user: no duplicate.
    again = sign_in_with_oidc(person)
    assert again.actor is not None and again.actor.id == user.id
    # Without a password, the password form does not know them.
    assert sign_in_with_password(username=user.username, password="").actor is None


def test_usernames_come_from_the_claims_and_never_collide(database: str, oidc: Any, make_user: Any) -> None:
    oidc()
    taken = make_user()
    first = sign_in_with_oidc(identity(preferred_username=taken.username))
    assert first.actor is not None and first.actor.username == f"{taken.username}-2"
    weird = sign_in_with_oidc(identity(email="o'brien+x@corp.example", preferred_username=""))
    assert weird.actor is not None and weird.actor.username.startswith("o-brien-x")


def test_new_users_wait_for_an_admins_approval(database: str, oidc: Any, admin: Actor) -> None:
    oidc(oidc_new_users="approval")
    person = identity()
    verdict = sign_in_with_oidc(person)
    assert verdict.actor is None and "waits for an admin's approval" in (verdict.refusal or "")
    user = _user(oidc_subject=person.subject)
    assert user.approval_pending and not user.is_active
    listed = next(u for u in svc.list_users(actor=admin) if u.id == user.id)
    assert listed.approval_pending and listed.sign_in_methods == "single sign-on"
    # Signing in again while waiting does not make another user.
    assert sign_in_with_oidc(person).actor is None
    svc.set_user_active(actor=admin, user_id=user.id, active=True)
    approved = sign_in_with_oidc(person)
    assert approved.actor is not None and approved.actor.id == user.id
    actions = [a for a, _ in audit_actions_for("user", user.id)]
    assert actions == ["user.provision", "auth.sign_in_refused", "auth.sign_in_refused", "user.approve", "auth.sign_in"]


def test_a_rejected_user_is_refused_as_disabled(database: str, oidc: Any, admin: Actor) -> None:
    oidc(oidc_new_users="approval")
    person = identity()
    sign_in_with_oidc(person)
    user = _user(oidc_subject=person.subject)
    svc.set_user_active(actor=admin, user_id=user.id, active=False)
    assert "user.reject" in [a for a, _ in audit_actions_for("user", user.id)]
    assert "disabled" in (sign_in_with_oidc(person).refusal or "")


def test_closed_sign_up_refuses_people_without_an_account(database: str, oidc: Any) -> None:
    oidc(oidc_new_users="refuse")
    person = identity()
    verdict = sign_in_with_oidc(person)
    assert verdict.actor is None and f"no Quorum account for {person.email}" in (verdict.refusal or "")
    with session_scope() as session:
        assert session.scalar(select(User.id).where(User.email == person.email)) is None
    assert _refusals_of(person.email) == ["unknown user"]


def test_an_unverified_email_provisions_nobody(database: str, oidc: Any) -> None:
    oidc()
    verdict = sign_in_with_oidc(identity(verified=False))
    assert verdict.actor is None and "did not confirm an email" in (verdict.refusal or "")


# ------------------------------------------------------------------ linking


def test_a_password_user_with_the_same_verified_email_is_linked_not_duplicated(
    database: str, oidc: Any, member: Actor
) -> None:
    oidc()
    person = identity(member.email.upper())  # providers may spell it in another case
    verdict = sign_in_with_oidc(person)
    assert verdict.actor is not None and verdict.actor.id == member.id
    user = _user(id=member.id)
    assert (user.oidc_issuer, user.oidc_subject) == (ISSUER, person.subject)
    assert user.password_hash  # the password keeps working
    assert [a for a, _ in audit_actions_for("user", member.id)] == ["user.link_identity", "auth.sign_in"]
    listed = next(u for u in svc.list_users(actor=_admin_actor()) if u.id == member.id)
    assert listed.sign_in_methods == "single sign-on + password" and listed.last_login_method == "oidc"
    with session_scope() as session:
        assert session.scalar(select(User.id).where(User.email == member.email.lower(), User.id != member.id)) is None


def test_an_unverified_email_is_not_linked_unless_trusted(database: str, oidc: Any, member: Actor) -> None:
    oidc()
    assert sign_in_with_oidc(identity(member.email, verified=False)).actor is None
    assert _user(id=member.id).oidc_subject is None
    oidc(oidc_trust_unverified_email="true")
    linked = sign_in_with_oidc(identity(member.email, verified=False))
    assert linked.actor is not None and linked.actor.id == member.id


def test_an_email_linked_to_another_identity_is_refused(database: str, oidc: Any, member: Actor) -> None:
    oidc()
    assert sign_in_with_oidc(identity(member.email)).actor is not None
    verdict = sign_in_with_oidc(identity(member.email))  # same email, another subject
    assert verdict.actor is None and "linked to another Acme ID account" in (verdict.refusal or "")


# ------------------------------------------------------------------ refusal


def test_disabled_users_are_refused_with_a_clear_message(database: str, oidc: Any, admin: Actor, member: Actor) -> None:
    oidc()
    person = identity(member.email)
    sign_in_with_oidc(person)
    svc.set_user_active(actor=admin, user_id=member.id, active=False)
    verdict = sign_in_with_oidc(person)
    assert verdict.actor is None and verdict.refusal == "This account is disabled. Ask an admin to enable it."
    assert check_sign_in(member.username, method="oidc").actor is None
    assert audit_actions_for("user", member.id)[-1][0] == "auth.sign_in_refused"


def test_deleted_users_are_refused_and_not_recreated_until_an_admin_creates_them(
    database: str, oidc: Any, admin: Actor, make_user: Any
) -> None:
    oidc(oidc_new_users="active")
    password_user = make_user()
    sso_person = identity()
    sso_user = sign_in_with_oidc(sso_person).actor
    assert sso_user is not None
    svc.delete_user(actor=admin, user_id=password_user.id)
    svc.delete_user(actor=admin, user_id=sso_user.id)
    for person in (identity(password_user.email), identity(sso_person.email, subject=sso_person.subject)):
        verdict = sign_in_with_oidc(person)
        assert verdict.actor is None and "deleted by an admin" in (verdict.refusal or "")
        with session_scope() as session:
            assert session.scalar(select(User.id).where(User.email == person.email)) is None
    # An admin who creates the account again lets single sign-on use it.
    svc.create_user(
        actor=admin,
        username=unique("back"),
        email=password_user.email,
        password="welcome-back-7",
        role_id=_role_id(USER_ROLE),
    )
    assert sign_in_with_oidc(identity(password_user.email)).actor is not None


def test_the_password_lock_does_not_block_single_sign_on(database: str, oidc: Any, make_user: Any) -> None:
    oidc()
    locked = make_user(locked_until=datetime.now(UTC) + timedelta(minutes=10))
    assert check_sign_in(locked.username).actor is None
    assert sign_in_with_oidc(identity(locked.email)).actor is not None
    assert check_sign_in(locked.username, method="oidc").actor is not None


# ------------------------------------------------------------------ claim mapping


def test_groups_map_to_roles_at_every_sign_in(database: str, oidc: Any) -> None:
    oidc(
        oidc_roles_claim="groups",
        oidc_role_map={"quorum-admins": ADMIN_ROLE, "staff": USER_ROLE},
        oidc_default_role=USER_ROLE,
    )
    subject = unique("sub")
    email = f"{unique('g')}@corp.example"
    first = sign_in_with_oidc(identity(email, subject=subject, groups=["staff", "quorum-admins"]))
    assert first.actor is not None and first.actor.role == ADMIN_ROLE  # map order: first match wins
    demoted = sign_in_with_oidc(identity(email, subject=subject, groups=["staff"]))
    assert demoted.actor is not None and demoted.actor.role == USER_ROLE
    nothing = sign_in_with_oidc(identity(email, subject=subject, groups="other"))
    assert nothing.actor is not None and nothing.actor.role == USER_ROLE  # the default role
    actions = [a for a, _ in audit_actions_for("user", first.actor.id)]
    assert actions.count("user.role_sync") == 1


def test_nested_role_claims_and_no_default_role_refuse_outsiders(database: str, oidc: Any) -> None:
    oidc(oidc_roles_claim="realm_access.roles", oidc_role_map={"quorum": USER_ROLE}, oidc_default_role="")
    inside = sign_in_with_oidc(identity(realm_access={"roles": ["quorum", "offline_access"]}))
    assert inside.actor is not None and inside.actor.role == USER_ROLE
    outsider = identity(realm_access={"roles": ["offline_access"]})
    verdict = sign_in_with_oidc(outsider)
    assert verdict.actor is None and "not in a group that may use Quorum" in (verdict.refusal or "")
    assert _refusals_of(outsider.email) == ["no mapped role"]


def test_role_mapping_never_demotes_the_last_admin(database: str, oidc: Any) -> None:
    oidc(oidc_roles_claim="groups", oidc_role_map={"quorum-admins": ADMIN_ROLE}, oidc_default_role=USER_ROLE)
    person = identity(groups=["quorum-admins"])
    admin = sign_in_with_oidc(person).actor
    assert admin is not None and admin.role == ADMIN_ROLE
    with only_manager(admin.id):
        kept = sign_in_with_oidc(identity(person.email, subject=person.subject, groups=[]))
        assert kept.actor is not None and kept.actor.role == ADMIN_ROLE
        assert get_row(User, admin.id).role_id == _role_id(ADMIN_ROLE)
    # With another admin around, the mapping applies.
    demoted = sign_in_with_oidc(identity(person.email, subject=person.subject, groups=[]))
    assert demoted.actor is not None and demoted.actor.role == USER_ROLE


# ------------------------------------------------------------------ Streamlit's settings


def test_streamlit_auth_secrets_come_from_quorum_settings(oidc: Any, tmp_path: Any) -> None:
    settings = oidc(oidc_metadata_url="https://idp.example.test/custom/.well-known/openid-configuration")
    secrets = streamlit_auth_secrets(settings)
    assert secrets is not None
    auth = secrets["auth"]
    assert auth["redirect_uri"] == "http://localhost:{port}/oauth2callback"
    assert len(auth["cookie_secret"]) == 64 and settings.cookie_signing_key.decode() not in auth["cookie_secret"]
    assert auth["quorum"] == {
        "client_id": "quorum",
        "client_secret": "s3cret",
        "server_metadata_url": "https://idp.example.test/custom/.well-known/openid-configuration",
        "client_kwargs": {"scope": "openid email profile", "prompt": "select_account"},
    }
    path = write_streamlit_secrets(settings)
    assert path is not None and path.stat().st_mode & 0o077 == 0
    assert tomllib.loads(path.read_text()) == secrets
    flags = streamlit_secrets_flags(settings, tmp_path)
    assert flags[-2:] == ["--secrets.files", str(path)]


def test_secrets_file_removed_when_single_sign_on_is_off(
    oidc: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    settings = oidc()
    path = write_streamlit_secrets(settings)
    assert path is not None and path.exists()
    for name in ("QUORUM_OIDC_ISSUER", "QUORUM_OIDC_CLIENT_ID", "QUORUM_OIDC_CLIENT_SECRET"):
        monkeypatch.delenv(name)
    get_settings.cache_clear()
    assert streamlit_secrets_flags(get_settings(), tmp_path) == []
    assert not path.exists()


def test_issuer_gives_the_discovery_url() -> None:
    settings = Settings(
        oidc_issuer="https://login.example.test/realms/acme/", oidc_client_id="a", oidc_client_secret="b"
    )
    assert settings.oidc_enabled
    assert (
        settings.oidc_server_metadata_url == "https://login.example.test/realms/acme/.well-known/openid-configuration"
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"oidc_issuer": "https://idp", "oidc_client_id": "a"}, "together"),
        ({"password_sign_in": False}, "needs single sign-on"),
        (
            {"oidc_issuer": "https://idp", "oidc_client_id": "a", "oidc_client_secret": "b", "oidc_redirect_url": "https://q/cb"},
            "must end with /oauth2callback",
        ),
        (
            {"environment": "production", "cookie_key": "Hq3vT0b9-xWk2LmZrP7sYd1FgNc4Ue6JaQoViR8tBhE",
             "admin_password": "Vq8-lantern-orbit",
             "oidc_issuer": "https://idp", "oidc_client_id": "a", "oidc_client_secret": "b"},
            "public URL",
        ),
    ],
)  # fmt: skip
def test_bad_sign_in_settings_are_refused_with_a_clear_message(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**values)


def _refusals_of(email: str) -> list[str]:
    from core.platform.models import AuditLog

    with session_scope() as session:
        rows = session.scalars(
            select(AuditLog).where(AuditLog.action == "auth.sign_in_refused", AuditLog.actor_username == email)
        )
        return [row.details["reason"] for row in rows]


def _admin_actor() -> Actor:
    from core.access.rbac import PERMISSIONS

    return Actor(id=0, username="test-admin", role=ADMIN_ROLE, permissions=frozenset(PERMISSIONS))
