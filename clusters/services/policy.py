"""Writes for a client's sign-in policy: which sign-ins reach the client, and who joins by Google.

A change applies to every member's next request (their cached claims are forgotten, and their
tokens re-issued with the new scope). An admin cannot set a policy their own session does not
satisfy: that would lock them out, and for a Google Workspace it proves they belong to it
before its people can be provisioned into the client.

A personal access token was made by a session that met the policy of its day. When the policy
becomes stricter (fewer sign-in methods, a Workspace required or changed, a second factor newly
required), tokens lose the client, as on a member's removal: their owners make new ones from a
session that meets the new rules. The session-length limit is for sessions, not tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.access_tokens import access_tokens_client_remove, access_tokens_of_client
from accounts.google import google_sign_in_enabled
from accounts.models import User
from accounts.scopes import SignInFacts, requirement_unmet, unmet_sentence
from accounts.selectors import session_facts, sessions_active_of
from clusters.models import Client, ClientAuditEvent, Grant, SignInPolicy
from clusters.selectors import sign_in_requirement
from clusters.services.audit import client_audit_record
from clusters.services.clients import client_members_claims_bump
from clusters.team_selectors import client_members, client_sign_in_policy
from config.errors import InvalidRequest

MAX_SESSION_LENGTH_MIN = timedelta(minutes=5)
# The roles provisioning may give: never admin (the model's check constraint says it too).
JIT_ROLES: tuple[str, ...] = (Grant.Role.VIEWER, Grant.Role.OPERATOR)
# A registrable host name: labels of letters, digits and inner hyphens, at least one dot.
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


@dataclass(frozen=True)
class PolicyInput:
    allowed_methods: tuple[str, ...]
    google_domain: str
    mfa_required: bool
    max_session_length: timedelta | None
    jit_provisioning: bool
    jit_role: str


def policy_problems(wanted: PolicyInput) -> dict[str, list[str]]:
    """What is wrong with a policy, by API field name."""
    problems: dict[str, list[str]] = {}
    methods = set(wanted.allowed_methods)
    if not methods or not methods <= set(SignInPolicy.Method.values):
        problems["allowedMethods"] = [f"Choose one or more of: {', '.join(SignInPolicy.Method.values)}."]
    elif methods == {SignInPolicy.Method.GOOGLE} and not google_sign_in_enabled():
        # Operators on the admin site meet no self-lockout check: this one keeps them from
        # locking every member out of a portal that offers no Google sign-in.
        problems["allowedMethods"] = [
            "Google sign-in is not set up on this portal: no member could sign in. Allow another way too."
        ]
    if wanted.google_domain and not _DOMAIN.match(wanted.google_domain):
        problems["googleDomain"] = ["Enter a domain such as example.com."]
    elif wanted.google_domain and methods != {SignInPolicy.Method.GOOGLE}:
        # A domain admits Google sign-ins from it only: any other method allowed beside it would
        # be refused anyway, so saying both is a contradiction, not a policy.
        problems["googleDomain"] = [
            "A required Google Workspace admits only Google sign-ins: allow google alone."
        ]
    if wanted.jit_provisioning and not wanted.google_domain:
        problems["jitProvisioning"] = [
            "Provisioning takes people from one Google Workspace: set googleDomain."
        ]
    if wanted.jit_role not in JIT_ROLES:
        problems["jitRole"] = ["Provisioned members are viewers or operators."]
    length = wanted.max_session_length
    if length is not None and not MAX_SESSION_LENGTH_MIN <= length <= settings.JWT_SESSION_MAX:
        problems["maxSessionLength"] = [session_length_problem()]
    return problems


def session_length_problem() -> str:
    """The bounds of a policy's session length, in words (a person reads hours) and in the API's seconds."""
    least, most = MAX_SESSION_LENGTH_MIN, settings.JWT_SESSION_MAX
    return (
        f"Between {_duration_text(least)} and {_duration_text(most)} "
        f"({int(least.total_seconds())} and {int(most.total_seconds())} seconds)."
    )


def _duration_text(length: timedelta) -> str:
    """``8 h``, ``1 h 30 min``, ``45 s``."""
    hours, rest = divmod(int(length.total_seconds()), 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [
        f"{hours} h" if hours else "",
        f"{minutes} min" if minutes else "",
        f"{seconds} s" if seconds else "",
    ]
    return " ".join(part for part in parts if part) or "0 s"


def _setting_text(name: str, value: object) -> str:
    """A policy setting as the client's admins read it in their audit trail."""
    if name == "allowed_methods":
        every = not value or set(value) == set(SignInPolicy.Method.values)  # type: ignore[arg-type]
        return "any" if every else ", ".join(sorted(value))  # type: ignore[arg-type]
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, timedelta):
        return _duration_text(value)
    return str(value) if value else "none"


def _changes(before: SignInPolicy, after: SignInPolicy) -> list[str]:
    """``["allowed methods: any -> passkey, password", "max session length: none -> 8 h"]``."""
    return [
        f"{SignInPolicy._meta.get_field(name).verbose_name}: "
        f"{_setting_text(name, getattr(before, name))} -> {_setting_text(name, getattr(after, name))}"
        for name in _settings_changed(before, after)
    ]


def _described(before: SignInPolicy, after: SignInPolicy) -> str:
    return "; ".join(_changes(before, after)) or "unchanged"


def _settings_changed(before: SignInPolicy, after: SignInPolicy) -> list[str]:
    return [name for name in SignInPolicy.SETTINGS if _setting(before, name) != _setting(after, name)]


def _setting(policy: SignInPolicy, name: str) -> object:
    value = getattr(policy, name)
    return sorted(value) if name == "allowed_methods" else value  # a set: the order says nothing


def _token_rules(policy: SignInPolicy | None) -> tuple[set[str], str, bool]:
    """What a token's making had to satisfy: methods, Workspace, second factor (None: anything)."""
    if policy is None:
        return set(SignInPolicy.Method.values), "", False
    return set(policy.allowed_methods), policy.google_domain, policy.mfa_required


def stricter_for_tokens(*, before: SignInPolicy | None, after: SignInPolicy) -> bool:
    """Whether a token made under ``before`` may not have been made under ``after``."""
    methods_before, domain_before, mfa_before = _token_rules(before)
    methods_after, domain_after, mfa_after = _token_rules(after)
    return (
        not methods_after >= methods_before
        or (domain_after != "" and domain_after != domain_before)
        or (mfa_after and not mfa_before)
    )


@dataclass(frozen=True)
class MemberCut:
    """A member with a session that reaches the client now and would not under the new policy."""

    user: User
    unmet: tuple[str, ...]  # what those sessions lack (accounts.scopes.UNMET_*), in its order


@dataclass(frozen=True)
class PolicyImpact:
    """What saving a policy would do, said before it is saved."""

    changes: list[str]  # as the audit trail will read them; empty: the save changes nothing
    members_cut: list[MemberCut]
    tokens_cut: int  # personal access tokens that would lose the client


def _policy_built(*, client: Client, wanted: PolicyInput, actor: User | None) -> SignInPolicy:
    """The policy ``wanted`` describes, unsaved, once it is valid."""
    wanted = PolicyInput(**{**wanted.__dict__, "google_domain": wanted.google_domain.strip().lower()})
    problems = policy_problems(wanted)
    if problems:
        raise InvalidRequest(fields=problems)
    policy = SignInPolicy(
        client=client,
        allowed_methods=sorted(set(wanted.allowed_methods)),
        google_domain=wanted.google_domain,
        mfa_required=wanted.mfa_required,
        max_session_length=wanted.max_session_length,
        jit_provisioning=wanted.jit_provisioning,
        jit_role=wanted.jit_role,
        updated_at=timezone.now(),
        updated_by_email=actor.email if actor else "",
    )
    return policy


def _self_lockout_check(*, client: Client, policy: SignInPolicy, facts: SignInFacts | None) -> None:
    """Refuses a policy the acting session (``facts``; None: operator staff) would not satisfy."""
    requirement = sign_in_requirement(policy)
    if facts is None or requirement is None:
        return
    unmet = requirement_unmet(requirement, facts, now=timezone.now())
    if unmet:
        raise InvalidRequest(
            f"This policy would leave you out of {client.slug}.",
            fields={"policy": [f"Your session would not satisfy it: {unmet_sentence(unmet)} first."]},
        )


def _members_cut(*, client: Client, before: SignInPolicy, after: SignInPolicy) -> list[MemberCut]:
    """Members with a live session the new policy would take the client from (ones the current
    policy already keeps out are not cut by this change)."""
    new, old = sign_in_requirement(after), sign_in_requirement(before)
    if new is None:
        return []
    now = timezone.now()
    grants = list(client_members(client=client).filter(user__is_active=True, user__is_operator=False))
    unmet_by_user: dict[int, list[str]] = {}
    for session in sessions_active_of(user_ids=[grant.user_id for grant in grants]):
        facts = session_facts(session)
        if old is not None and requirement_unmet(old, facts, now=now):
            continue
        unmet = unmet_by_user.setdefault(session.user_id, [])
        unmet += [code for code in requirement_unmet(new, facts, now=now) if code not in unmet]
    return [
        MemberCut(user=grant.user, unmet=tuple(unmet_by_user[grant.user_id]))
        for grant in grants
        if unmet_by_user.get(grant.user_id)
    ]


def sign_in_policy_preview(*, client: Client, wanted: PolicyInput, facts: SignInFacts | None) -> PolicyImpact:
    """What ``sign_in_policy_set`` would do with the same arguments: the same refusals, and whom it
    would cut off, so an admin confirms a stricter policy knowing its cost. Writes nothing."""
    before = client_sign_in_policy(client=client)
    policy = _policy_built(client=client, wanted=wanted, actor=None)
    if not _settings_changed(before, policy):
        return PolicyImpact(changes=[], members_cut=[], tokens_cut=0)
    _self_lockout_check(client=client, policy=policy, facts=facts)
    stricter = stricter_for_tokens(before=before, after=policy)
    return PolicyImpact(
        changes=_changes(before, policy),
        members_cut=_members_cut(client=client, before=before, after=policy),
        tokens_cut=access_tokens_of_client(client=client.slug).count() if stricter else 0,
    )


@transaction.atomic
def sign_in_policy_set(
    *, client: Client, wanted: PolicyInput, actor: User | None, facts: SignInFacts | None
) -> SignInPolicy:
    """Set the client's policy; ``facts``: the acting session's, which the policy must admit (None:
    operator staff, who reach every client whatever its policy)."""
    # The row locked, or (none yet) the default: every way of signing in, nothing more.
    before = SignInPolicy.objects.select_for_update().filter(client=client).first()
    before = before or client_sign_in_policy(client=client)
    policy = _policy_built(client=client, wanted=wanted, actor=actor)
    if not _settings_changed(before, policy):
        return before  # a save that changes nothing: not a change, and its last author stays
    _self_lockout_check(client=client, policy=policy, facts=facts)
    policy.full_clean(exclude=["client"], validate_unique=False)
    policy.save()
    # Before the tokens are listed, as a removal does (accounts.locks): its UPDATE takes each
    # member's row, so a token being made is either there to be found, or waits and meets the
    # new policy.
    client_members_claims_bump(client=client)
    detail = _described(before, policy)
    if stricter_for_tokens(before=before, after=policy):
        # Before the audit row: a cache that cannot forget the tokens undoes the whole change (503).
        # Counted as the preview counts them: an expired token loses nothing it could still use.
        reached = access_tokens_of_client(client=client.slug).count()
        access_tokens_client_remove(client=client.slug, actor=actor, why="stricter sign-in policy")
        if reached:
            detail += f"; {reached} personal access token(s) lost the client"
    client_audit_record(client=client, type=ClientAuditEvent.Type.POLICY_CHANGED, actor=actor, detail=detail)
    return policy
