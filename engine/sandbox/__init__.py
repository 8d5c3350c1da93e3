"""Sandbox apps: stateful fakes of third-party APIs served from their OpenAPI documents.

How a document is read (details in ``_model.py``):

* Routes: every operation is served at the path of its first server URL plus
  its path template (Cin7: ``/ExternalApi/v2/customer``); ``SandboxServer.base_url``
  includes that path. Unknown paths are 404, known paths with another method 405.
* Resources: an item path (``/pets/{petId}``) and its parent collection
  (``/pets``); collections list (GET), create (POST), and update by a key in
  the body (PUT/PATCH, as Cin7's ``PUT /customer`` with ``ID``); items are read
  (GET), replaced (PUT), merged (PATCH, POST; JSON merge patch) and removed
  (DELETE); unknown ids are 404. A GET returning an object on a path with a
  write method is a singleton. A resource no operation creates is virtual: its
  records are synthesised from the schema, seeded by the path.
* Lists honour the API's own paging parameters (page/limit, offset/limit,
  after/cursor/pageToken; cursors are offsets as text) and fill the envelope
  the schema declares (totals, page, ``has_more``, ``paging.next.after``);
  query parameters that name a record field filter by equality.
* Requests: credentials are checked for presence (401; any complete set of
  credentials the document asks for somewhere is accepted), bodies parsed (400)
  and validated with parameters against the document (422 naming the
  parameter or JSON pointer). ``readOnly`` fields may be sent and are ignored.
* Responses: records are fitted to the documented schema (required fields
  filled deterministically) and validated before they are sent; the status is
  the documented 2xx.
* Admin routes under ``/__sandbox``: ``GET state``, ``POST reset``, ``POST seed``, ``GET describe``.
* Documents that cannot be loaded are refused with ``OpenAPIImportError``;
  those that load with warnings are served, the warnings in ``Sandbox.warnings``.
"""

from ._app import create_sandbox_app
from ._model import Binding, ListShape, Resource, Role
from ._requests import IncomingRequest
from ._sandbox import Reply, Sandbox, merge_patch
from ._server import SandboxServer, serve_sandbox
from ._store import StepClock

__all__ = [
    "Binding", "IncomingRequest", "ListShape", "Reply", "Resource", "Role", "Sandbox", "SandboxServer", "StepClock",
    "create_sandbox_app", "merge_patch", "serve_sandbox",
]
