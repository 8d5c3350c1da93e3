"""The common data model and mapping suggestions."""

import pytest

from engine.datamodel import KINDS, model_schema, suggest_mapping, validate_record
from engine.errors import SpecValidationError

HUBSPOT_CONTACT = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "properties": {"type": "object", "properties": {"email": {"type": "string"}, "phone": {"type": "string"}, "company": {"type": "string"}}},
    },
}
CIN7_CUSTOMER = {
    "type": "object",
    "properties": {
        "ID": {"type": "string"},
        "Name": {"type": "string"},
        "Contacts": {"type": "array", "items": {"type": "object", "properties": {"Email": {"type": "string"}, "Phone": {"type": "string"}}}},
    },
}


def test_every_kind_has_a_schema():
    for kind in KINDS:
        assert model_schema(kind)["title"] == kind
    with pytest.raises(KeyError, match="unknown data model kind"):
        model_schema("spaceship")


def test_validate_record_names_the_field():
    validate_record("product", {"sku": "A-1", "price": 3.5})
    with pytest.raises(SpecValidationError) as info:
        validate_record("product", {"sku": 5})
    assert info.value.problems[0].pointer == "/sku"


def test_mapping_goes_through_the_model_into_nested_target_fields():
    mapping = suggest_mapping("customer", HUBSPOT_CONTACT, CIN7_CUSTOMER)
    assert mapping == {"Contacts": [{"Email": "{{ source.properties.email }}", "Phone": "{{ source.properties.phone }}"}]}
    assert "ID" not in mapping  # identities are matched, never mapped


def test_schema_paths_follow_shared_schemas_and_end_on_recursive_ones():
    from engine.datamodel import schema_paths

    defs = {"Address": {"type": "object", "properties": {"city": {"type": "string"}}},
            "Person": {"type": "object", "properties": {"email": {"type": "string"},
                                                        "address": {"$ref": "#/$defs/Address"},
                                                        "manager": {"$ref": "#/$defs/Person"}}}}
    schema = {"$defs": defs, "type": "array", "items": {"$ref": "#/$defs/Person"}}
    assert schema_paths({"$ref": "#/$defs/Person"}, defs=defs)[:3] == ["email", "address.city", "manager.email"]
    paths = schema_paths({"$defs": defs, "$ref": "#/$defs/Person"})
    assert "manager.manager.address.city" in paths and max(p.count(".") for p in paths) <= 5
    assert schema_paths(schema) == []  # an array at the top has no fields
