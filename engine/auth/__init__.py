"""Auth for connector calls: applying schemes to requests and OAuth 2.0 tokens.

Credentials reach the engine through an injected ``CredentialProvider``; the engine
keeps them only in a run's memory, and never puts them in errors, logs, reprs or traces
(``OutgoingRequest`` names the headers and query parameters that carry them).

    oauth = OAuth2Client(http)                       # one per process, next to the HttpClient
    auth = Authenticator(provider, oauth)            # one per run
    authorized = await auth.authorize(connector, prepared_request)
    response = await http.request(**authorized.to_kwargs())
    if response.status_code == 401 and await auth.on_unauthorized(connector, authorized):
        ...                                          # authorize again and retry once
"""

from ._authenticator import Authenticator
from ._credentials import PLACEHOLDER_EXPIRES_AT, CredentialProvider, StaticCredentials, placeholder_credentials
from ._oauth2 import OAuth2Client, authorization_url, new_code_verifier, new_state
from ._request import OutgoingRequest
from ._schemes import apply_credentials, token_fingerprint
from ._tokens import REFRESH_LEEWAY, TOKEN_FIELDS, Clock, TokenSet

__all__ = [
    "PLACEHOLDER_EXPIRES_AT",
    "REFRESH_LEEWAY",
    "TOKEN_FIELDS",
    "Authenticator",
    "Clock",
    "CredentialProvider",
    "OAuth2Client",
    "OutgoingRequest",
    "StaticCredentials",
    "TokenSet",
    "apply_credentials",
    "authorization_url",
    "new_code_verifier",
    "new_state",
    "placeholder_credentials",
    "token_fingerprint",
]
