"""The rules in noetl_site/access.py, the audit log that records changes
to them, tokens that expire, and sub-playbooks that act with the root
run's user."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import tokens
from accounts.models import AuditEntry, PathGrant
from noetl_site import access
from tests.grants import grant
from tests.security.conftest import PATH, Persona, World

pytestmark = pytest.mark.django_db


def test_a_pattern_covers_its_subtree_and_nothing_that_only_looks_alike() -> None:
    assert access.matches("finance/*", "finance/daily")
    assert access.matches("finance/*", "finance/eu/daily")
    assert access.matches("*", "anything/at/all")
    assert access.matches("finance/daily", "finance/daily")
    assert not access.matches("finance/*", "finance")
    assert not access.matches("finance/*", "financeX/daily")
    assert not access.matches("finance/daily", "finance/daily2")
    # Regular-expression characters in a pattern are plain characters.
    assert not access.matches("fin.nce/*", "finance/daily")
    assert not access.matches("a|b", "a")


def test_each_action_is_granted_on_its_own() -> None:
    user = User.objects.create_user("viewer")
    grant(user, "finance/*", execute=False, modify=False)
    grant(
        user, "finance/reports/*", view=False, execute=True, modify=False, group="run"
    )
    assert access.can_view(user, "finance/x")
    assert not access.can_execute(user, "finance/x")
    assert access.can_execute(user, "finance/reports/q1")
    assert not access.can_modify(user, "finance/reports/q1")
    assert not access.can_view(user, "hr/x")


def test_superusers_pass_and_anonymous_callers_fail_every_check() -> None:
    root = User.objects.create_superuser("root", "", "pw")
    for action in access.ACTIONS:
        assert access.allows(root, action, "any/path")
        assert not access.allows(AnonymousUser(), action, "any/path")
        assert not access.allows(None, action, "any/path")
    assert access.can_manage_secrets(root)
    assert not access.can_view_secrets_metadata(AnonymousUser())


def test_an_inactive_user_passes_no_check() -> None:
    user = User.objects.create_user("gone")
    grant(user)
    user.is_active = False
    assert not access.can_view(user, "x")


def test_with_auth_disabled_anyone_passes(settings: Any) -> None:
    settings.NOETL_AUTH_DISABLED = True
    assert access.can_modify(AnonymousUser(), "finance/x")
    assert access.can_manage_secrets(None)
    assert APIClient().get("/api/executions/").status_code == 200
    session = APIClient().get("/api/auth/session/").json()
    assert session["user"] is None and session["auth_disabled"] is True


def test_permission_changes_are_audited_with_who_made_them(client: Any) -> None:
    admin = User.objects.create_superuser("admin", "", "pw")
    team = Group.objects.create(name="finance")
    client.force_login(admin)
    response = client.post(
        "/admin/accounts/pathgrant/add/",
        {
            "group": team.id,
            "pattern": "finance/*",
            "can_view": "on",
            "can_execute": "on",
        },
    )
    assert response.status_code == 302, response.content
    created = AuditEntry.objects.get(action="grant.created")
    assert created.actor == "user:admin" and created.target == "finance/*"
    assert created.detail == {
        "group": "finance",
        "pattern": "finance/*",
        "view": True,
        "execute": True,
        "modify": False,
    }

    user = User.objects.create_user("ann")
    user.groups.add(team)
    added = AuditEntry.objects.get(action="membership.add")
    assert added.detail["users"] == ["ann"] and added.detail["groups"] == ["finance"]
    PathGrant.objects.get().delete()
    assert AuditEntry.objects.filter(action="grant.deleted").exists()
    user.is_superuser = True
    user.save()
    assert AuditEntry.objects.filter(action="superuser.granted", target="ann").exists()


def test_cancels_and_token_use_are_audited(right: Persona, world: World) -> None:
    response = right.client.post(
        f"/api/executions/{world.run_id}/cancel/", {}, format="json"
    )
    assert response.status_code == 200
    cancel = AuditEntry.objects.get(action="run.cancelled")
    assert cancel.actor == "user:right" and cancel.target == world.run_id
    used = AuditEntry.objects.filter(action="token.used", actor="user:right")
    assert used.exists()


def test_an_expired_token_stops_working(right: Persona) -> None:
    row, token = tokens.mint(right.user, "short", timezone.now() + timedelta(hours=1))  # type: ignore[arg-type]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/auth/session/").status_code == 200
    row.expires_at = timezone.now() - timedelta(seconds=1)
    row.save()
    refused = client.get("/api/auth/session/")
    assert refused.status_code == 401 and "expired" in refused.json()["detail"]


def test_tokens_are_made_listed_and_revoked_over_rest(right: Persona) -> None:
    made = right.client.post(
        "/api/auth/tokens/", {"name": "ci", "expires_in_days": 7}, format="json"
    ).json()
    assert made["token"].startswith(f"noetl_{made['prefix']}_")
    assert made["expires_at"] is not None
    listed = right.client.get("/api/auth/tokens/").json()["results"]
    assert "token" not in listed[0] and made["prefix"] in [t["prefix"] for t in listed]

    fresh = APIClient()
    fresh.credentials(HTTP_AUTHORIZATION=f"Bearer {made['token']}")
    assert fresh.get("/api/auth/session/").status_code == 200
    assert right.client.delete(f"/api/auth/tokens/{made['prefix']}/").status_code == 204
    assert fresh.get("/api/auth/session/").status_code == 401


def test_createtoken_can_set_an_expiry() -> None:
    User.objects.create_user("cli")
    out = StringIO()
    call_command(
        "createtoken", "cli", "--expires-days", "2", stdout=out, stderr=StringIO()
    )
    row = tokens.check(out.getvalue().strip())
    assert row is not None and row.expires_at is not None
    assert timedelta(days=1.9) < row.expires_at - timezone.now() < timedelta(days=2.1)


def test_session_lists_the_signed_in_users_grants(right: Persona) -> None:
    data = right.client.get("/api/auth/session/").json()
    assert data["user"]["username"] == "right"
    assert data["permissions"]["grants"] == [
        {
            "group": "right-team",
            "pattern": "sec/*",
            "view": True,
            "execute": True,
            "modify": True,
        }
    ]
    assert data["permissions"]["credentials"] == {"view": True, "manage": True}


def test_registering_needs_modify_on_the_path(outsider: Persona) -> None:
    from tests.api.conftest import playbook_yaml

    refused = outsider.client.post(
        "/api/catalog/", playbook_yaml(PATH), content_type="application/yaml"
    )
    assert refused.status_code == 403
    assert refused.json()["detail"] == f"permission denied: modify {PATH}"
    allowed = outsider.client.post(
        "/api/catalog/", playbook_yaml("other/mine"), content_type="application/yaml"
    )
    assert allowed.status_code == 201


def test_the_admin_shows_a_staff_member_only_the_paths_they_may_view(
    client: Any, world: World
) -> None:
    from catalog import services as catalog
    from tests.api.conftest import playbook_yaml

    catalog.register(playbook_yaml("other/theirs"))
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    grant(staff, "other/*")
    staff.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_playbookversion", "view_execution"]
        )
    )
    client.force_login(staff)
    page = client.get("/admin/catalog/playbookversion/").content.decode()
    assert "other/theirs" in page and PATH not in page
    runs = client.get("/admin/executions/execution/").content.decode()
    assert world.run_id not in runs
    hidden = client.get(f"/admin/executions/execution/{world.run_id}/change/")
    assert hidden.status_code == 302  # "does not exist", back to the list
