"""OpenAPI import: read OpenAPI 2.0 / 3.0 / 3.1 documents and turn them into connector specs."""

from ._document import OpenAPIDocument, Operation, Parameter, RequestBody, Response, load_openapi

__all__ = ["OpenAPIDocument", "Operation", "Parameter", "RequestBody", "Response", "load_openapi"]
