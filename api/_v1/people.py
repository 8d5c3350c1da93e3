"""People: users of the organization, roles (system and custom) and the permission vocabulary.

Nobody hands out more than they hold: inviting or re-assigning a user, and creating or changing a
custom role, are refused (403, naming the permission) when the role grants a permission the
caller lacks; and a user or custom role that holds more than the caller cannot be changed by them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query, Response
from pydantic import BaseModel, ConfigDict, Field

import store
from api._auth import Principal, require
from api._deps import Db
from api._lists import ListParams, PageOut, page_out
from api._v1._common import router as make_router
from api._v1._common import tenant_tx
from runtime.errors import Forbidden

router = make_router("people")

# Deliberately loose (the invitation email is the real check); it keeps out what is plainly not an address.
_EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s.]{1,63}$"
Matrix = dict[str, list[str]]


def ensure_grantable(principal: Principal, permissions: Matrix, what: str) -> None:
    """Raise ``Forbidden`` naming the first permission of ``permissions`` the caller does not hold.

    ``what`` says what would grant it, for the message (e.g. "role 'admin'").
    """
    missing = store.exceeding_permissions(permissions, principal.permissions)
    if missing:
        raise Forbidden(
            missing[0], f"{what} grants {missing[0]}, which the caller's role {principal.role_id!r} does not hold"
        )


class UserOut(BaseModel):
    id: str
    email: str
    name: str
    role_id: str
    status: Literal["invited", "active", "disabled"]
    customer_id: str | None = Field(None, description="The end customer this user belongs to (End Users).")
    sso_linked: bool = Field(description="Whether the user has signed in through the identity provider.")
    created_at: datetime
    updated_at: datetime
    last_seen_at: datetime | None


class UserIn(BaseModel):
    """An invitation: the user becomes active on first sign-in."""

    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=320, pattern=_EMAIL)
    role: str = Field("viewer", min_length=1, max_length=64, description="Role id (system or custom).")
    name: str = Field("", max_length=200)
    customer: str | None = Field(
        None, min_length=1, max_length=128, description="Make the user one end customer's own (required for end_user)."
    )


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=200)
    role: str | None = Field(None, min_length=1, max_length=64, description="Role id to assign.")
    status: Literal["active", "disabled"] | None = None


class RoleOut(BaseModel):
    id: str
    name: str
    description: str
    system: bool
    permissions: Matrix = Field(description="Area -> the actions this role may take there.")
    created_at: datetime
    updated_at: datetime


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=500)
    permissions: Matrix = Field(description="Area -> actions; areas left out get none. See GET /v1/permissions.")


class RolePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = Field(None, max_length=500)
    permissions: Matrix | None = None


class RoleMatrix(BaseModel):
    id: str
    name: str
    system: bool
    permissions: Matrix


class PermissionsOut(BaseModel):
    """The permission vocabulary and the matrix of every role the organization can assign."""

    areas: list[str]
    actions: list[str]
    area_actions: Matrix = Field(description="The actions that apply to each area.")
    roles: list[RoleMatrix]
    caller: RoleMatrix = Field(description="The role of the credentials making this request.")


def _user(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "sso_linked": row.get("oidc_subject") is not None}


def _changes(patch: BaseModel) -> dict[str, Any]:
    return {k: v for k, v in patch.model_dump(exclude_unset=True).items() if v is not None}


def _role_permissions(tx: store.Tx, principal: Principal, role_id: str) -> Matrix:
    return store.Roles(tx).get(principal.org_id, role_id)["permissions"]


@router.get("/users", name="user.list", response_model=PageOut[UserOut])
def list_users(
    db: Db,
    principal: Annotated[Principal, require("people", "read")],
    page: ListParams,
    role: Annotated[str | None, Query(max_length=64, description="Role id.")] = None,
    status: Literal["invited", "active", "disabled"] | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Search in email and name.")] = None,
) -> Any:
    """Users of the organization (sort: created_at, email, name)."""
    with tenant_tx(db, principal) as tx:
        result = store.Users(tx).list(principal.org_id, page.query(), role_id=role, status=status, search=q)
    return page_out(result, _user)


@router.post("/users", name="user.create", response_model=UserOut, status_code=201)
def invite_user(body: UserIn, db: Db, principal: Annotated[Principal, require("people", "write")]) -> Any:
    """Invite a person with a role (default viewer). When the organization lists email domains,
    only addresses in them may be invited (422 naming ``email``)."""
    with tenant_tx(db, principal) as tx:
        ensure_grantable(principal, _role_permissions(tx, principal, body.role), f"role {body.role!r}")
        return _user(
            store.Users(tx).invite(principal.org_id, body.email, body.role, body.name, customer_id=body.customer)
        )


@router.get("/users/{user_id}", name="user.get", response_model=UserOut)
def get_user(user_id: str, db: Db, principal: Annotated[Principal, require("people", "read")]) -> Any:
    """One user."""
    with tenant_tx(db, principal) as tx:
        return _user(store.Users(tx).get(principal.org_id, user_id))


@router.patch("/users/{user_id}", name="user.update", response_model=UserOut)
def update_user(
    user_id: str, patch: UserPatch, db: Db, principal: Annotated[Principal, require("people", "write")]
) -> Any:
    """Rename a user, assign a role, or activate or disable them. The organization keeps at least
    one active owner (409)."""
    changes = _changes(patch)
    if "role" in changes:
        changes["role_id"] = changes.pop("role")
    with tenant_tx(db, principal) as tx:
        user = store.Users(tx).get(principal.org_id, user_id)
        ensure_grantable(principal, _role_permissions(tx, principal, user["role_id"]), f"user {user_id!r}'s role")
        if "role_id" in changes:
            ensure_grantable(principal, _role_permissions(tx, principal, changes["role_id"]), f"role {changes['role_id']!r}")
        return _user(store.Users(tx).update(principal.org_id, user_id, changes))


@router.delete("/users/{user_id}", name="user.delete", status_code=204)
def delete_user(user_id: str, db: Db, principal: Annotated[Principal, require("people", "write")]) -> Response:
    """Remove a user from the organization (not the last active owner: 409)."""
    with tenant_tx(db, principal) as tx:
        user = store.Users(tx).get(principal.org_id, user_id)
        ensure_grantable(principal, _role_permissions(tx, principal, user["role_id"]), f"user {user_id!r}'s role")
        store.Users(tx).delete(principal.org_id, user_id)
    return Response(status_code=204)


@router.get("/roles", name="role.list", response_model=PageOut[RoleOut])
def list_roles(
    db: Db,
    principal: Annotated[Principal, require("people", "read")],
    page: ListParams,
    system: Annotated[bool | None, Query(description="Only system (true) or custom (false) roles.")] = None,
) -> Any:
    """System and custom roles with their permission matrices (sort: created_at, name, id)."""
    with tenant_tx(db, principal) as tx:
        return page_out(store.Roles(tx).list(principal.org_id, page.query("created_at"), system=system), dict)


@router.post("/roles", name="role.create", response_model=RoleOut, status_code=201)
def create_role(body: RoleIn, db: Db, principal: Annotated[Principal, require("people", "write")]) -> Any:
    """Create a custom role. An area or action outside the vocabulary is refused (422 naming
    ``permissions/<area>``); a name taken by another role, system roles included, is 409."""
    matrix = store.check_permissions(body.permissions)
    ensure_grantable(principal, matrix, "the role")
    with tenant_tx(db, principal) as tx:
        return store.Roles(tx).create(principal.org_id, body.name, matrix, body.description)


@router.get("/roles/{role_id}", name="role.get", response_model=RoleOut)
def get_role(role_id: str, db: Db, principal: Annotated[Principal, require("people", "read")]) -> Any:
    """One role (system or custom)."""
    with tenant_tx(db, principal) as tx:
        return store.Roles(tx).get(principal.org_id, role_id)


@router.patch("/roles/{role_id}", name="role.update", response_model=RoleOut)
def update_role(
    role_id: str, patch: RolePatch, db: Db, principal: Annotated[Principal, require("people", "write")]
) -> Any:
    """Rename a custom role or change its matrix; it applies to its holders at once. System
    roles cannot change (409)."""
    changes = _changes(patch)
    with tenant_tx(db, principal) as tx:
        roles = store.Roles(tx)
        role = roles.get(principal.org_id, role_id)
        if not role["system"]:
            ensure_grantable(principal, role["permissions"], f"role {role_id!r}")
            if "permissions" in changes:
                changes["permissions"] = store.check_permissions(changes["permissions"])
                ensure_grantable(principal, changes["permissions"], "the changed role")
        return roles.update(principal.org_id, role_id, changes)


@router.delete("/roles/{role_id}", name="role.delete", status_code=204)
def delete_role(role_id: str, db: Db, principal: Annotated[Principal, require("people", "write")]) -> Response:
    """Delete a custom role nobody holds (409 for a system role or one still held)."""
    with tenant_tx(db, principal) as tx:
        roles = store.Roles(tx)
        role = roles.get(principal.org_id, role_id)
        if not role["system"]:
            ensure_grantable(principal, role["permissions"], f"role {role_id!r}")
        roles.delete(principal.org_id, role_id)
    return Response(status_code=204)


@router.get("/permissions", name="permission.list", response_model=PermissionsOut)
def list_permissions(db: Db, principal: Annotated[Principal, require("people", "read")]) -> Any:
    """The permission vocabulary (areas, actions, which actions each area has) and the matrix of
    every role: the system roles, then the organization's custom roles by name."""
    with tenant_tx(db, principal) as tx:
        roles = store.Roles(tx).all(principal.org_id)
        caller = store.Roles(tx).get(principal.org_id, principal.role_id)
    return {
        "areas": list(store.AREAS),
        "actions": list(store.ACTIONS),
        "area_actions": {area: list(actions) for area, actions in store.AREA_ACTIONS.items()},
        "roles": roles,
        "caller": caller,
    }
