"""The common data model (contact, company, customer, order, product, invoice) used by field mapping."""

from ._model import KINDS, model_schema, schema_paths, suggest_mapping, validate_record

__all__ = ["KINDS", "model_schema", "schema_paths", "suggest_mapping", "validate_record"]
