"""Users of an organization and the roles (permission matrices) they hold."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from store._ids import new_id
from store._orgs import taken
from store._paging import Filters, ListQuery, Page, fetch_page
from store._schema import ACTIONS_V1, AREAS_V1, SYSTEM_ROLES_V1
from psycopg.errors import UniqueViolation

from store.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from store._database import Tx

AREAS = AREAS_V1
ACTIONS = ACTIONS_V1
USER_STATUSES = ("invited", "active", "disabled")
END_USER_ROLE = "end_user"
# The actions each area has: read and write everywhere; publish where there is something to
# publish; execute where something runs. The owner's matrix is exactly this.
AREA_ACTIONS: dict[str, tuple[str, ...]] = {area: ("read", "write") for area in AREAS} | {
    "connectors": ("read", "write", "publish"),
    "workflows": ("read", "write", "publish", "execute"),
    "agents": ("read", "write", "execute"),
    "tools": ("read", "write", "execute"),
}
OWNER_ROLE = "owner"
_SYSTEM_ROLE_NAMES = frozenset(name.lower() for _, name, _, _ in SYSTEM_ROLES_V1) | frozenset(
    role_id for role_id, _, _, _ in SYSTEM_ROLES_V1
)


def check_permissions(permissions: Any) -> dict[str, list[str]]:
    """Validate a permission matrix ``{area: [action, ...]}``; areas left out get no actions.

    Raises ``InvalidInput`` naming the area or action that is not in the vocabulary.
    """
    if not isinstance(permissions, dict):
        raise InvalidInput("role", "permissions", "must be an object of area -> list of actions")
    matrix: dict[str, list[str]] = {area: [] for area in AREAS}
    for area, actions in permissions.items():
        if area not in AREAS:
            raise InvalidInput("role", f"permissions/{area}", f"is not an area; areas are {', '.join(AREAS)}")
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            raise InvalidInput("role", f"permissions/{area}", "must be a list of actions")
        for action in actions:
            if action not in ACTIONS:
                raise InvalidInput("role", f"permissions/{area}", f"{action!r} is not an action; actions are {', '.join(ACTIONS)}")
            if action not in AREA_ACTIONS[area]:
                raise InvalidInput(
                    "role", f"permissions/{area}", f"{action!r} does not apply to {area}; it has {', '.join(AREA_ACTIONS[area])}"
                )
        matrix[area] = sorted(set(actions), key=ACTIONS.index)
    return matrix


def exceeding_permissions(wanted: dict[str, list[str]], held: dict[str, list[str]]) -> list[str]:
    """The ``area:action`` permissions in matrix ``wanted`` that matrix ``held`` lacks (in vocabulary order).

    Used so nobody hands out (to a key, a user or a custom role) more than they hold themselves.
    """
    return [
        f"{area}:{action}"
        for area in AREAS
        for action in ACTIONS
        if action in wanted.get(area, ()) and action not in held.get(area, ())
    ]


class Roles:
    """System roles (shared by every organization, read-only) and an organization's custom roles."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def get(self, org_id: str, role_id: str) -> dict[str, Any]:
        row = self.tx.execute(
            "SELECT * FROM roles WHERE id = %s AND (org_id IS NULL OR org_id = %s)", (role_id, org_id)
        ).fetchone()
        if row is None:
            raise NotFound("role", role_id)
        return row

    def list(self, org_id: str, query: ListQuery, *, system: bool | None = None) -> Page:
        filters = Filters()
        filters.add("(org_id IS NULL OR org_id = %(org)s)", org=org_id)
        if system is not None:
            filters.add("system = %(system)s", system=system)
        return fetch_page(self.tx, "role", "roles", query, {"created_at": "created_at", "name": "name", "id": "id"}, filters)

    def all(self, org_id: str) -> list[dict[str, Any]]:
        """Every role the organization can assign: the system roles first (in their fixed order),
        then its custom roles by name."""
        rows = self.tx.execute(
            "SELECT * FROM roles WHERE org_id IS NULL OR org_id = %s ORDER BY system DESC, lower(name), id", (org_id,)
        ).fetchall()
        order = {role_id: n for n, (role_id, _, _, _) in enumerate(SYSTEM_ROLES_V1)}
        return sorted(rows, key=lambda row: (not row["system"], order.get(row["id"], len(order)) if row["system"] else 0))

    def create(self, org_id: str, name: str, permissions: Any, description: str = "") -> dict[str, Any]:
        """Create a custom role; ``Conflict`` (field ``name``) when the organization has a role of
        that name or it is a system role's; ``InvalidInput`` for a matrix outside the vocabulary."""
        _check_custom_name(name)
        matrix = check_permissions(permissions)
        try:
            return self.tx.execute(
                "INSERT INTO roles (org_id, id, name, description, permissions) VALUES (%s, %s, %s, %s, %s) RETURNING *",
                (org_id, new_id("rol"), name, description, Jsonb(matrix)),
            ).fetchone()
        except UniqueViolation as exc:
            raise taken("role", "name", name) from exc

    def update(self, org_id: str, role_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        role = self.get(org_id, role_id)
        if role["system"]:
            raise Conflict("role", None, f"{role_id!r} is a system role and cannot be changed")
        unknown = set(changes) - {"name", "description", "permissions"}
        if unknown:
            raise InvalidInput("role", sorted(unknown)[0], "cannot be changed")
        params = dict(changes)
        if "name" in params:
            _check_custom_name(params["name"])
        if "permissions" in params:
            params["permissions"] = Jsonb(check_permissions(params["permissions"]))
        if not params:
            return role
        assignments = ", ".join(f"{column} = %({column})s" for column in params)
        try:
            return self.tx.execute(
                f"UPDATE roles SET {assignments}, updated_at = now() WHERE org_id = %(_org)s AND id = %(_id)s RETURNING *",
                {**params, "_org": org_id, "_id": role_id},
            ).fetchone()
        except UniqueViolation as exc:
            raise taken("role", "name", changes.get("name")) from exc

    def delete(self, org_id: str, role_id: str) -> None:
        role = self.get(org_id, role_id)
        if role["system"]:
            raise Conflict("role", None, f"{role_id!r} is a system role and cannot be deleted")
        holders = self.tx.execute(
            "SELECT (SELECT count(*) FROM users WHERE org_id = %(o)s AND role_id = %(r)s)"
            " + (SELECT count(*) FROM api_keys WHERE org_id = %(o)s AND role_id = %(r)s AND revoked_at IS NULL) AS n",
            {"o": org_id, "r": role_id},
        ).fetchone()["n"]
        if holders:
            raise Conflict("role", None, f"{role_id!r} is held by {holders} users or keys; reassign them first")
        self.tx.execute("DELETE FROM roles WHERE org_id = %s AND id = %s", (org_id, role_id))


def _check_custom_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("role", "name", "must not be empty")
    if name.strip().lower() in _SYSTEM_ROLE_NAMES:
        raise Conflict("role", "name", f"{name!r} is the name of a system role")


def _email_domain_allowed(email: str, domains: list[str]) -> bool:
    domain = email.rsplit("@", 1)[-1].lower()
    return not domains or domain in {d.lower() for d in domains}


class Users:
    """People of an organization: invited, active or disabled, each with one role.

    An organization that has an active owner always keeps one: a change that would demote,
    disable or delete the last one is refused (``Conflict``).
    """

    def __init__(self, tx: Tx) -> None:
        self.tx = tx

    def invite(
        self,
        org_id: str,
        email: str,
        role_id: str,
        name: str = "",
        *,
        status: str = "invited",
        customer_id: str | None = None,
    ) -> dict[str, Any]:
        """Invite ``email`` with role ``role_id``. Refuses (``InvalidInput``, field ``email``) an
        address outside the organization's ``email_domains`` when that list is not empty;
        ``NotFound`` for an unknown role or customer; ``Conflict`` when the email is already a user.

        ``customer_id`` makes the user one end customer's own (the End User role requires one):
        such a user acts only for that customer, like a key bound to it."""
        if role_id == END_USER_ROLE and customer_id is None:
            raise InvalidInput("user", "customer", "an End User belongs to one customer: name it")
        if customer_id is not None:
            from store._orgs import Customers

            Customers(self.tx).get(org_id, customer_id)
        if "@" not in email or len(email) > 320:
            raise InvalidInput("user", "email", "is not an email address")
        org = self.tx.execute("SELECT email_domains FROM organizations WHERE id = %s", (org_id,)).fetchone()
        if org is None:
            raise NotFound("organization", org_id)
        if not _email_domain_allowed(email, org["email_domains"]):
            raise InvalidInput(
                "user", "email", f"is outside the organization's email domains ({', '.join(org['email_domains'])})"
            )
        Roles(self.tx).get(org_id, role_id)
        try:
            return self.tx.execute(
                "INSERT INTO users (org_id, id, email, name, role_id, status, customer_id)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *",
                (org_id, new_id("usr"), email, name, role_id, status, customer_id),
            ).fetchone()
        except UniqueViolation as exc:
            raise taken("user", "email", email) from exc

    def get(self, org_id: str, user_id: str) -> dict[str, Any]:
        row = self.tx.execute("SELECT * FROM users WHERE org_id = %s AND id = %s", (org_id, user_id)).fetchone()
        if row is None:
            raise NotFound("user", user_id)
        return row

    def by_subject(self, org_id: str, subject: str, email: str | None) -> dict[str, Any] | None:
        """The user an OIDC identity maps to: by subject, else an invited user with that email
        (who becomes active and is bound to the subject)."""
        row = self.tx.execute(
            "SELECT * FROM users WHERE org_id = %s AND oidc_subject = %s", (org_id, subject)
        ).fetchone()
        if row is None and email:
            row = self.tx.execute(
                "UPDATE users SET oidc_subject = %s, status = CASE WHEN status = 'invited' THEN 'active' ELSE status END,"
                " updated_at = now() WHERE org_id = %s AND lower(email) = lower(%s) AND oidc_subject IS NULL RETURNING *",
                (subject, org_id, email),
            ).fetchone()
            if row is None:
                # A concurrent first sign-in of the same identity (a console firing several
                # requests at once) may have bound it since the lookup above.
                row = self.tx.execute(
                    "SELECT * FROM users WHERE org_id = %s AND oidc_subject = %s", (org_id, subject)
                ).fetchone()
        if row is not None:
            self.tx.execute(
                "UPDATE users SET last_seen_at = now() WHERE org_id = %s AND id = %s", (org_id, row["id"])
            )
        return row

    def list(
        self,
        org_id: str,
        query: ListQuery,
        *,
        role_id: str | None = None,
        status: str | None = None,
        search: str | None = None,
    ) -> Page:
        """Users, filtered by role, status and ``search`` (a substring of email or name)."""
        filters = Filters()
        filters.add("org_id = %(org)s", org=org_id)
        if search:
            filters.add_search(search, "email", "name")
        if role_id:
            filters.add("role_id = %(role)s", role=role_id)
        if status:
            if status not in USER_STATUSES:
                raise InvalidInput("user", "status", f"must be one of {', '.join(USER_STATUSES)}")
            filters.add("status = %(status)s", status=status)
        sortable = {"created_at": "created_at", "email": "lower(email)", "name": "name"}
        return fetch_page(self.tx, "user", "users", query, sortable, filters)

    def update(self, org_id: str, user_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        unknown = set(changes) - {"name", "role_id", "status"}
        if unknown:
            raise InvalidInput("user", sorted(unknown)[0], "cannot be changed")
        if "role_id" in changes:
            Roles(self.tx).get(org_id, changes["role_id"])
            if changes["role_id"] == END_USER_ROLE and self.get(org_id, user_id)["customer_id"] is None:
                raise InvalidInput("user", "role", "an End User belongs to one customer; invite them with one")
        if "status" in changes and changes["status"] not in USER_STATUSES:
            raise InvalidInput("user", "status", f"must be one of {', '.join(USER_STATUSES)}")
        if not changes:
            return self.get(org_id, user_id)
        self._keep_an_owner(org_id, user_id, changes)
        assignments = ", ".join(f"{column} = %({column})s" for column in changes)
        row = self.tx.execute(
            f"UPDATE users SET {assignments}, updated_at = now() WHERE org_id = %(_org)s AND id = %(_id)s RETURNING *",
            {**changes, "_org": org_id, "_id": user_id},
        ).fetchone()
        if row is None:
            raise NotFound("user", user_id)
        return row

    def delete(self, org_id: str, user_id: str) -> None:
        self._keep_an_owner(org_id, user_id, None)
        if self.tx.execute("DELETE FROM users WHERE org_id = %s AND id = %s RETURNING id", (org_id, user_id)).fetchone() is None:
            raise NotFound("user", user_id)

    def _keep_an_owner(self, org_id: str, user_id: str, changes: dict[str, Any] | None) -> None:
        """Refuse to take away the last active owner; ``changes`` None means deletion."""
        # Locking every active owner serializes concurrent demotions: the second one waits and
        # then sees the first one's result, so two requests cannot each remove "the other" owner.
        owners = [
            row["id"]
            for row in self.tx.execute(
                "SELECT id FROM users WHERE org_id = %s AND role_id = %s AND status = 'active' ORDER BY id FOR UPDATE",
                (org_id, OWNER_ROLE),
            )
        ]
        if user_id not in owners:
            return
        if changes is not None and changes.get("role_id", OWNER_ROLE) == OWNER_ROLE and changes.get("status", "active") == "active":
            return
        if len(owners) == 1:
            raise Conflict("user", None, f"{user_id!r} is the last active owner; make another user owner first")

