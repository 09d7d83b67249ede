"""What one request's credential may reach: the user's grants, narrowed by how its session signed
in (each client's sign-in requirements) or by a personal access token's own scopes.

The clusters app owns clients, grants and sign-in policies; it answers through the one hook
(``SCOPE_CLAIM_FUNCTION``) with a :class:`UserScope`. Everything here is pure: it runs on
what the cache holds, so ``/validate`` narrows a scope without reading the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from accounts.models import AuthMethod, SecondFactor

OPERATOR_SCOPE = "*"
SECOND_FACTOR_METHODS = frozenset(factor.value for factor in SecondFactor)

# What a session may lack for a client (the codes /api/auth/permissions lists, in this order).
UNMET_METHOD = "method"  # signed in another way than the client accepts
UNMET_GOOGLE_DOMAIN = "google_domain"  # not with a Google account of the client's Workspace
UNMET_SECOND_FACTOR = "second_factor"  # without a second factor
UNMET_SESSION_AGE = "session_age"  # longer ago than the client allows


_UNMET_SENTENCES = {
    UNMET_METHOD: "sign in another way",
    UNMET_GOOGLE_DOMAIN: "sign in with Google, with an account of its Google Workspace",
    UNMET_SECOND_FACTOR: "sign in with a second factor",
    UNMET_SESSION_AGE: "sign in again (its maximum session length has passed)",
}


UNMET_CODES = tuple(_UNMET_SENTENCES)


def unmet_sentence(unmet: tuple[str, ...] | list[str]) -> str:
    """What a session must do for a client, in words: "sign in with Google, ... and sign in again"."""
    parts = [_UNMET_SENTENCES[code] for code in unmet]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


@dataclass(frozen=True)
class SignInRequirement:
    """How a session must have signed in to reach a client (the defaults ask for nothing)."""

    methods: tuple[str, ...] = ()  # first factors accepted (AuthMethod values); empty: any
    google_domain: str = ""  # the Google Workspace (``hd``) a Google sign-in must come from
    mfa: bool = False  # a second factor (or a passkey, which is two in one)
    max_age: int | None = None  # seconds since the sign-in

    def as_dict(self) -> dict:
        return {**asdict(self), "methods": list(self.methods)}

    @classmethod
    def from_dict(cls, data: Mapping) -> SignInRequirement:
        return cls(
            methods=tuple(data.get("methods") or ()),
            google_domain=data.get("google_domain") or "",
            mfa=bool(data.get("mfa")),
            max_age=data.get("max_age"),
        )


@dataclass(frozen=True)
class SignInFacts:
    """How a session signed in: what its requirements are checked against."""

    method: str = ""
    amr: tuple[str, ...] = ()
    google_domain: str = ""
    signed_in_at: float = 0.0  # epoch seconds

    @property
    def has_second_factor(self) -> bool:
        return self.method == AuthMethod.PASSKEY or bool(SECOND_FACTOR_METHODS & set(self.amr))


@dataclass(frozen=True)
class UserScope:
    """The hook's answer: the user's clients now, what each permits, and how each must be reached."""

    scope: str  # "*" for operators, else client slugs, space-separated
    permissions: dict[str, tuple[str, ...]] = field(default_factory=dict)  # empty for operators
    requirements: dict[str, SignInRequirement] = field(default_factory=dict)  # only clients that ask
    token_permissions: tuple[str, ...] = ()  # what a personal access token may be given (not members)


def requirement_unmet(requirement: SignInRequirement, facts: SignInFacts, *, now: datetime) -> list[str]:
    """What ``facts`` lack for ``requirement`` (empty: the session satisfies it)."""
    unmet = []
    if requirement.methods and facts.method not in requirement.methods:
        unmet.append(UNMET_METHOD)
    if requirement.google_domain and not (
        facts.method == AuthMethod.GOOGLE and facts.google_domain == requirement.google_domain
    ):
        unmet.append(UNMET_GOOGLE_DOMAIN)
    if requirement.mfa and not facts.has_second_factor:
        unmet.append(UNMET_SECOND_FACTOR)
    if requirement.max_age is not None and now.timestamp() - facts.signed_in_at > requirement.max_age:
        unmet.append(UNMET_SESSION_AGE)
    return unmet


@dataclass(frozen=True)
class CredentialScope:
    """What one credential may do: per client, the permissions; ``None`` for everything (operators).

    The database's grants stay the authority (each object access checks its grant); this only
    narrows them, so a credential never reaches more than its user's grants allow now.
    """

    permissions: Mapping[str, frozenset[str]] | None
    withheld: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # client -> what is unmet
    requirements: Mapping[str, SignInRequirement] = field(default_factory=dict)  # of the withheld clients
    # When the first client this scope holds stops being allowed (a maximum session length).
    valid_until: datetime | None = None

    @property
    def claim(self) -> str:
        """The ``scope`` claim and ``X-Auth-Scope``: ``*``, or the client slugs space-separated."""
        return OPERATOR_SCOPE if self.permissions is None else " ".join(sorted(self.permissions))

    @property
    def permissions_claim(self) -> str:
        """``X-Auth-Permissions``: ``*``, or per client ``<client>=<permission>,...``, space-separated
        (the clients of :attr:`claim`; a service behind a gateway tells a view-only credential by it)."""
        if self.permissions is None:
            return OPERATOR_SCOPE
        return " ".join(
            f"{client}={','.join(sorted(held))}" for client, held in sorted(self.permissions.items())
        )

    def allows(self, client: str, permission: str) -> bool:
        return self.permissions is None or permission in self.permissions.get(client, ())


def session_scope(
    *, scope: str, permissions: Mapping, requirements: Mapping, facts: SignInFacts, now: datetime
) -> CredentialScope:
    """A session's scope: the user's clients whose sign-in requirements the session satisfies."""
    if scope == OPERATOR_SCOPE:
        return CredentialScope(permissions=None)
    allowed: dict[str, frozenset[str]] = {}
    withheld: dict[str, tuple[str, ...]] = {}
    asked: dict[str, SignInRequirement] = {}
    deadlines = []
    for client in scope.split():
        requirement = SignInRequirement.from_dict(requirements.get(client) or {})
        unmet = requirement_unmet(requirement, facts, now=now)
        if unmet:
            withheld[client], asked[client] = tuple(unmet), requirement
            continue
        allowed[client] = frozenset(permissions.get(client, ()))
        if requirement.max_age is not None:
            deadlines.append(facts.signed_in_at + requirement.max_age)
    until = datetime.fromtimestamp(min(deadlines), tz=UTC) if deadlines else None
    return CredentialScope(permissions=allowed, withheld=withheld, requirements=asked, valid_until=until)


def token_scope(*, scope: str, permissions: Mapping, granted: Mapping[str, list[str]]) -> CredentialScope:
    """A personal access token's scope: its own clients and permissions, within the user's now."""
    narrowed: dict[str, frozenset[str]] = {}
    clients = scope.split()
    for client, wanted in granted.items():
        if scope == OPERATOR_SCOPE:
            narrowed[client] = frozenset(wanted)
        elif client in clients:
            narrowed[client] = frozenset(wanted) & frozenset(permissions.get(client, ()))
    return CredentialScope(permissions={client: perms for client, perms in narrowed.items() if perms})
