"""Auth schemes a connector declares.

A scheme says *where* credentials go; the credential values themselves reach
the engine at run time through an injected provider and are never part of a
spec. Each scheme names the credential fields it reads, so a widget can ask a
customer for exactly those and a test can send placeholders of the right shape.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Scheme(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def credential_fields(self) -> list[str]:
        """Names of the credential values this scheme needs at run time."""
        return []


class NoAuth(_Scheme):
    """The API needs no credentials."""

    type: Literal["none"] = "none"


class ApiKeyPlacement(BaseModel):
    """One key: which credential value goes into which header, query or cookie parameter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    credential: str = Field(description="name of the credential value, e.g. api_key or account_id")
    in_: Literal["header", "query", "cookie"] = Field(alias="in")
    name: str = Field(description="the header, query or cookie parameter name")
    prefix: str = Field(default="", description="text put before the value, e.g. 'Token '")


class ApiKeyAuth(_Scheme):
    """One or more API keys sent together (Cin7 Core sends an account id and an application key)."""

    type: Literal["api_key"] = "api_key"
    keys: list[ApiKeyPlacement] = Field(min_length=1)

    def credential_fields(self) -> list[str]:
        return list(dict.fromkeys(k.credential for k in self.keys))


class BearerAuth(_Scheme):
    """``Authorization: Bearer <token>``."""

    type: Literal["bearer"] = "bearer"
    credential: str = "token"
    scheme: str = "Bearer"

    def credential_fields(self) -> list[str]:
        return [self.credential]


class BasicAuth(_Scheme):
    """HTTP basic auth from a username and a password credential."""

    type: Literal["basic"] = "basic"
    username: str = Field(default="username", description="credential holding the user name")
    password: str = Field(default="password", description="credential holding the password")

    def credential_fields(self) -> list[str]:
        return [self.username, self.password]


class OAuth2Auth(_Scheme):
    """OAuth 2.0: client credentials, or authorization code with refresh."""

    type: Literal["oauth2"] = "oauth2"
    flow: Literal["authorization_code", "client_credentials"] = "authorization_code"
    authorize_url: str | None = None
    token_url: str
    refresh_url: str | None = None
    scopes: list[str] = Field(default_factory=list)
    scope_separator: str = " "
    token_auth_method: Literal["client_secret_post", "client_secret_basic"] = "client_secret_basic"
    pkce: bool = True
    extra_authorize_params: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _authorize_url_for_code_flow(self) -> "OAuth2Auth":
        if self.flow == "authorization_code" and not self.authorize_url:
            raise ValueError("authorize_url is required for the authorization_code flow")
        return self

    def credential_fields(self) -> list[str]:
        fields = ["client_id", "client_secret"]
        if self.flow == "authorization_code":
            fields += ["access_token", "refresh_token", "expires_at"]
        return fields


AuthSpec = Annotated[
    Union[NoAuth, ApiKeyAuth, BearerAuth, BasicAuth, OAuth2Auth],
    Field(discriminator="type"),
]
