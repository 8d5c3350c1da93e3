"""Sandboxes of documents loaded with shared schemas (``load_openapi(keep_refs=True)``, what a path and
``switchboard sandbox`` load): read as the inlined document is, and Xero's accounting document, which
inlined is over a hundred megabytes, served with its several keys per collection."""

from __future__ import annotations

import json

import pytest
from support.sandbox import SPECS_DIR, load_spec

from engine.openapi import load_openapi
from engine.sandbox import IncomingRequest, Sandbox

LARGE = SPECS_DIR / "large"
SMALL = sorted(p.name for p in SPECS_DIR.iterdir() if p.suffix in (".yaml", ".json")
               and p.name != "oai-petstore-separate-extref-v2.json")


@pytest.mark.parametrize("name", SMALL)
def test_shared_schemas_are_read_as_the_inlined_document(name):
    shared = load_openapi(SPECS_DIR / name, keep_refs=True)
    assert Sandbox(shared).describe() == Sandbox(load_spec(name)).describe()


@pytest.fixture(scope="module")
def xero():
    return Sandbox(LARGE / "xero_accounting.yaml")


def call(sandbox, method, path, body=None):
    headers = {"authorization": "Bearer t", "xero-tenant-id": "t1", "content-type": "application/json"}
    payload = json.dumps(body).encode() if body is not None else b""
    return sandbox.handle(IncomingRequest(method, sandbox.base_path + path, headers=headers, body=payload))


def test_xero_accounting_reads_its_shared_schemas(xero):
    assert xero.document.schemas and "Contact" in xero.document.schemas
    contacts = next(r for r in xero.resources if r.key == "/Contacts")
    # the id-like parameter is the item path; {ContactNumber} looks records up by that field
    assert (contacts.item_template, contacts.id_field, contacts.key_field) == ("/Contacts/{ContactID}", "ContactID", "ContactID")
    roles = {(o["method"], o["path"]): (o["role"], o["collection"]) for o in xero.describe()["operations"]}
    assert roles[("GET", "/Contacts/{ContactNumber}")] == ("get", "/Contacts")
    assert roles[("GET", "/RepeatingInvoices/{RepeatingInvoiceID}")] == ("get", "/RepeatingInvoices")


def test_same_shape_paths_are_told_apart_by_the_values(xero):
    # /Journals/{JournalID} wants a uuid, /Journals/{JournalNumber} an integer: 19 is a journal number
    reply = call(xero, "GET", "/Journals/19")
    assert reply.status == 200, reply.body
    assert call(xero, "GET", "/Journals/not-a-number").status == 422
    created = call(xero, "POST", "/Contacts", {"Contacts": [{"Name": "Acme"}]})
    assert created.status == 200, created.body
    contact_id = created.body["Contacts"][0]["ContactID"]
    fetched = call(xero, "GET", f"/Contacts/{contact_id}")
    assert fetched.status == 200 and fetched.body["Contacts"][0]["ContactID"] == contact_id
    assert call(xero, "GET", "/Contacts/C-404").status == 404
