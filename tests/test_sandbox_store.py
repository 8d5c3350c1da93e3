"""The sandbox's record store: records by resource, scope and key, in insertion order."""

from __future__ import annotations

from engine.sandbox._store import Entry, RecordStore

ALICE = (("EmployeeID", "alice"),)
BOB = (("EmployeeID", "bob"),)


def test_the_same_key_in_two_scopes_is_two_records():
    store = RecordStore()
    store.put("/Leave", ALICE, "1", {"days": 1})
    store.put("/Leave", BOB, "1", {"days": 2})
    assert store.find("/Leave", ALICE, "1").data == {"days": 1}
    assert store.find("/Leave", BOB, "1").data == {"days": 2}
    # a put of an existing record replaces it in place, keeping its position
    store.put("/Leave", ALICE, "1", {"days": 3})
    assert [e.data for e in store.snapshot()["/Leave"]] == [{"days": 3}, {"days": 2}]
    assert store.is_taken("/Leave", "1") and not store.is_taken("/Leave", "2")


def test_delete_removes_one_record_and_forgets_its_key_with_the_last():
    store = RecordStore()
    for key in ("a", "b", "c"):
        store.put("/Contacts", (), key, {"id": key})
    store.put("/Leave", ALICE, "a", {})
    assert store.delete("/Contacts", (), "b")
    assert not store.delete("/Contacts", (), "b")
    assert [e.key for e in store.entries("/Contacts", ())] == ["a", "c"]
    assert store.find("/Contacts", (), "b") is None and not store.is_taken("/Contacts", "b")
    assert store.find("/Leave", ALICE, "a") is not None  # another collection's key is its own
    store.put("/Contacts", (), "b", {"id": "b2"})
    assert [e.key for e in store.entries("/Contacts", ())] == ["a", "c", "b"]


def test_a_lookup_scope_may_name_more_parameters_than_the_record_was_stored_under():
    store = RecordStore()
    store.put("/Leave", ALICE, "1", {})
    assert store.find("/Leave", ALICE + (("LeaveID", "1"),), "1") is not None
    assert store.find("/Leave", BOB + (("LeaveID", "1"),), "1") is None


def test_reset_goes_back_to_the_seed_and_its_keys():
    store = RecordStore()
    store.set_seed({"/Contacts": [Entry("s1", (), {"id": "s1"})]})
    store.put("/Contacts", (), "new", {"id": "new"})
    store.delete("/Contacts", (), "s1")
    store.reset()
    assert [e.key for e in store.entries("/Contacts", ())] == ["s1"]
    assert store.find("/Contacts", (), "s1").data == {"id": "s1"} and store.find("/Contacts", (), "new") is None
    # the seed itself is not changed by writes after a reset
    store.put("/Contacts", (), "s1", {"id": "changed"})
    store.reset()
    assert store.find("/Contacts", (), "s1").data == {"id": "s1"}
