"""Public surface of the sample generator: deterministic instances of JSON Schemas."""

from ._samples import merge_all_of, sample_from_schema, schema_view

__all__ = ["merge_all_of", "sample_from_schema", "schema_view"]
