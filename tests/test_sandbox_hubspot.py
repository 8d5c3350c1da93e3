"""HubSpot CRM contacts: create, list with ``after`` cursors, fetch, update, archive."""

from __future__ import annotations

import httpx
from support.sandbox import assert_matches_document, load_spec, running_sandbox

DOC = "hubspot-crm-contacts-v3.json"
COLLECTION = "/crm/v3/objects/contacts"
ITEM = "/crm/v3/objects/contacts/{contactId}"


def test_contacts_lifecycle_with_cursor_paging() -> None:
    document = load_spec(DOC)
    with running_sandbox(document) as server:
        client = httpx.Client(base_url=server.base_url, headers={"Authorization": "Bearer test-token"})
        ids = []
        for index in range(5):
            created = client.post(COLLECTION, json={"properties": {"email": f"c{index}@example.com", "firstname": f"C{index}"}})
            assert created.status_code == 200, created.text
            assert_matches_document(document, "POST", COLLECTION, 200, created.json())
            assert created.json()["properties"]["email"] == f"c{index}@example.com"
            ids.append(created.json()["id"])
        assert len(set(ids)) == 5

        seen, after, pages = [], None, 0
        while True:
            params = {"limit": 2} | ({"after": after} if after else {})
            page = client.get(COLLECTION, params=params)
            assert page.status_code == 200, page.text
            assert_matches_document(document, "GET", COLLECTION, 200, page.json())
            seen += [c["id"] for c in page.json()["results"]]
            pages += 1
            after = page.json().get("paging", {}).get("next", {}).get("after")
            if after is None:
                break
        assert seen == ids and pages == 3

        fetched = client.get(f"{COLLECTION}/{ids[2]}")
        assert fetched.status_code == 200
        assert_matches_document(document, "GET", ITEM, 200, fetched.json())
        assert fetched.json()["id"] == ids[2] and fetched.json()["properties"]["firstname"] == "C2"

        patched = client.patch(f"{COLLECTION}/{ids[2]}", json={"properties": {"firstname": "Changed"}})
        assert patched.status_code == 200
        assert_matches_document(document, "PATCH", ITEM, 200, patched.json())
        # a merge patch keeps the properties it does not name
        assert patched.json()["properties"] == {"email": "c2@example.com", "firstname": "Changed"}
        assert patched.json()["createdAt"] == fetched.json()["createdAt"]
        assert patched.json()["updatedAt"] > fetched.json()["updatedAt"]

        archived = client.delete(f"{COLLECTION}/{ids[2]}")
        assert archived.status_code == 204 and archived.content == b""
        assert client.get(f"{COLLECTION}/{ids[2]}").status_code == 404
        assert client.delete(f"{COLLECTION}/{ids[2]}").status_code == 404
        remaining = client.get(COLLECTION, params={"limit": 100}).json()
        assert [c["id"] for c in remaining["results"]] == [i for i in ids if i != ids[2]]
        assert "paging" not in remaining

        unknown_cursor = client.get(COLLECTION, params={"after": "not-a-cursor"})
        assert unknown_cursor.status_code == 422
        assert unknown_cursor.json()["error"]["problems"][0]["name"] == "after"


def test_any_accepted_credential_kind_is_enough() -> None:
    with running_sandbox(DOC) as server:
        url = server.base_url + COLLECTION
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"private-app": "x"}).status_code == 200
        assert httpx.get(url, headers={"Authorization": "Bearer t"}).status_code == 200
        assert httpx.get(url, headers={"Authorization": "Basic dTpw"}).status_code == 401
        body = httpx.get(url).json()["error"]
        assert body["code"] == "unauthorized" and "private-app" in body["problems"][0]["reason"]
