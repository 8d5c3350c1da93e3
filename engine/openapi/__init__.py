"""OpenAPI import: read OpenAPI 2.0 / 3.0 / 3.1 documents and turn them into connector specs."""

from ._convert import ImportResult, action_name, dump_connector, import_connector, import_to_file, slug
from ._document import OpenAPIDocument, Operation, Parameter, RequestBody, Response, load_openapi

__all__ = [
    "ImportResult", "OpenAPIDocument", "Operation", "Parameter", "RequestBody", "Response", "action_name",
    "dump_connector", "import_connector", "import_to_file", "load_openapi", "slug",
]
