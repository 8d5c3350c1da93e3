"""The offline planner's intent parser: the three prompt shapes in many phrasings, and refusals."""

from __future__ import annotations

import pytest

from agents import Intent, Refusal, parse_intent

FLAGSHIP = ("sync", ("HubSpot", "contact"), ("Cin7", "customer"), "email", ("schedule", "*/15 * * * *"))


def summary(intent: Intent) -> tuple:
    trigger = intent.trigger
    when = (trigger.kind, trigger.cron) if trigger.kind == "schedule" else (trigger.kind, trigger.app, trigger.event)
    return (intent.kind, (intent.source.app, intent.source.object), (intent.target.app, intent.target.object),
            intent.match, when)


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        # sync A's X to B's Y matching by F
        ("Sync HubSpot contacts to Cin7 customers, matching by email", FLAGSHIP),
        ("sync HubSpot's contacts to Cin7's customers matching by email", FLAGSHIP),
        ("Sync HubSpot\u2019s contacts to Cin7\u2019s customers, matching by email.", FLAGSHIP),
        ("SYNC HUBSPOT CONTACTS TO CIN7 CUSTOMERS MATCHING BY EMAIL",
         ("sync", ("HUBSPOT", "contact"), ("CIN7", "customer"), "email", ("schedule", "*/15 * * * *"))),
        ("Sync contacts from HubSpot to customers in Cin7, matched on email address", FLAGSHIP),
        ("Please sync all HubSpot contacts to Cin7 customers matching them by their email", FLAGSHIP),
        ("Keep HubSpot contacts in sync with Cin7 customers by email", FLAGSHIP),
        ("Sync HubSpot contacts with Cin7 customers using the email field", FLAGSHIP),
        ("sync hubspot contacts into cin7 customers match on email",
         ("sync", ("hubspot", "contact"), ("cin7", "customer"), "email", ("schedule", "*/15 * * * *"))),
        ("Sync HubSpot contacts to Cin7 customers matching by email every hour",
         ("sync", ("HubSpot", "contact"), ("Cin7", "customer"), "email", ("schedule", "0 * * * *"))),
        ("Every 5 minutes, sync HubSpot contacts to Cin7 customers matching by email",
         ("sync", ("HubSpot", "contact"), ("Cin7", "customer"), "email", ("schedule", "*/5 * * * *"))),
        ("Sync Shopify's orders to Cin7's sales orders matching by order number",
         ("sync", ("Shopify", "order"), ("Cin7", "sales order"), "order_number", ("schedule", "*/15 * * * *"))),
        ("Sync HubSpot companies to Cin7, matching by domain",
         ("sync", ("HubSpot", "company"), ("Cin7", "company"), "domain", ("schedule", "*/15 * * * *"))),
        # when X happens in A, create Y in B
        ("When a contact is created in HubSpot, create a customer in Cin7",
         ("event", ("HubSpot", "contact"), ("Cin7", "customer"), None, ("app_event", "HubSpot", "contact_created"))),
        ("Whenever a new HubSpot contact is added, create a Cin7 customer",
         ("event", ("HubSpot", "contact"), ("Cin7", "customer"), None, ("app_event", "HubSpot", "contact_created"))),
        ("when a new contact appears in HubSpot, create a customer in Cin7.",
         ("event", ("HubSpot", "contact"), ("Cin7", "customer"), None, ("app_event", "HubSpot", "contact_created"))),
        ("Every time a deal is won in HubSpot, create an order in Cin7",
         ("event", ("HubSpot", "deal"), ("Cin7", "order"), None, ("app_event", "HubSpot", "deal_won"))),
        ("When an order is updated in Shopify then create an invoice in QuickBooks",
         ("event", ("Shopify", "order"), ("QuickBooks", "invoice"), None, ("app_event", "Shopify", "order_updated"))),
        ("When a new contact in HubSpot, create a customer in Cin7",
         ("event", ("HubSpot", "contact"), ("Cin7", "customer"), None, ("app_event", "HubSpot", "contact_created"))),
        ("When a company gets deleted in HubSpot, add a matching customer note in Cin7",
         ("event", ("HubSpot", "company"), ("Cin7", "customer note"), None, ("app_event", "HubSpot", "company_deleted"))),
        # every day/hour, copy X from A to B
        ("Every day, copy orders from Cin7 to HubSpot",
         ("copy", ("Cin7", "order"), ("HubSpot", "order"), None, ("schedule", "0 0 * * *"))),
        ("every hour copy Cin7 products to HubSpot as products",
         ("copy", ("Cin7", "product"), ("HubSpot", "product"), None, ("schedule", "0 * * * *"))),
        ("Daily, copy invoices from QuickBooks to HubSpot deals",
         ("copy", ("QuickBooks", "invoice"), ("HubSpot", "deal"), None, ("schedule", "0 0 * * *"))),
        ("Copy HubSpot contacts to Cin7 customers every 15 minutes",
         ("copy", ("HubSpot", "contact"), ("Cin7", "customer"), None, ("schedule", "*/15 * * * *"))),
        ("Every 6 hours, export Cin7 companies to HubSpot",
         ("copy", ("Cin7", "company"), ("HubSpot", "company"), None, ("schedule", "0 */6 * * *"))),
        ("Once a week, copy Cin7 addresses to HubSpot",
         ("copy", ("Cin7", "address"), ("HubSpot", "address"), None, ("schedule", "0 0 * * 1"))),
        ("Nightly copy batches from Cin7 to HubSpot",
         ("copy", ("Cin7", "batch"), ("HubSpot", "batch"), None, ("schedule", "0 0 * * *"))),
    ],
)
def test_the_three_shapes_are_parsed(prompt: str, expected: tuple) -> None:
    intent = parse_intent(prompt)
    assert isinstance(intent, Intent), intent
    assert summary(intent) == expected
    assert intent.prompt == prompt


def test_known_apps_split_names_of_several_words_and_give_their_spelling() -> None:
    intent = parse_intent("Every day, copy google sheets rows to hubspot contacts", apps=["Google Sheets", "HubSpot"])
    assert isinstance(intent, Intent)
    assert (intent.source.app, intent.source.object, intent.source.app_id) == ("Google Sheets", "row", "google_sheets")
    assert (intent.target.app, intent.target.object) == ("HubSpot", "contact")
    # Without the catalog, the last word is the object and the rest the app.
    plain = parse_intent("Every day, copy Google Sheets rows to HubSpot contacts")
    assert isinstance(plain, Intent) and plain.source.app == "Google Sheets"
    # ...and the catalog also tells an object of several words from its app.
    orders = parse_intent("Sync Shopify orders to Cin7 sales orders matching by order number", apps=["Cin7", "Shopify"])
    assert isinstance(orders, Intent) and (orders.target.app, orders.target.object) == ("Cin7", "sales order")


def test_an_intent_is_plain_data() -> None:
    intent = parse_intent("Sync HubSpot contacts to Cin7 customers, matching by email")
    assert isinstance(intent, Intent)
    assert intent.as_dict() == {
        "kind": "sync",
        "source": {"app": "HubSpot", "object": "contact", "app_id": "hubspot"},
        "target": {"app": "Cin7", "object": "customer", "app_id": "cin7"},
        "trigger": {"kind": "schedule", "cron": "*/15 * * * *", "every": "15 minutes", "app": None, "event": None},
        "match": "email",
        "prompt": "Sync HubSpot contacts to Cin7 customers, matching by email",
    }


@pytest.mark.parametrize(
    ("prompt", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("Summarize my inbox", "none of the shapes"),
        ("What can you do?", "none of the shapes"),
        ("Delete all customers in Cin7", "none of the shapes"),
        ("Don't sync HubSpot contacts to Cin7 customers matching by email", "none of the shapes"),
        ("Sync HubSpot contacts to Cin7 customers", "matching by <field>"),
        ("Keep HubSpot contacts in sync with Cin7 customers", "matching by <field>"),
        ("sync contacts to customers matching by email", "needs both an app and a kind of record"),
        ("Sync HubSpot contacts and companies to Cin7 customers matching by email", "more than one thing"),
        ("Sync HubSpot contacts to Cin7 customers matching by email and phone", "one field"),
        ("Sync HubSpot contacts to HubSpot companies matching by email", "same app"),
        ("When a contact is created in HubSpot, send an email to the owner", "can only create a record"),
        ("When a contact is created in HubSpot, create a contact in HubSpot", "same app"),
        ("When it rains, create a customer in Cin7", "not of the form"),
        ("Every day, when a contact is created in HubSpot, create a customer in Cin7", "not on a schedule"),
        ("Copy HubSpot contacts to Cin7 customers", "needs a schedule"),
        ("Every month, copy orders from Cin7 to HubSpot", "month"),
        ("Every 90 minutes, copy orders from Cin7 to HubSpot", "1-59 minutes"),
        ("Every 0 hours, copy orders from Cin7 to HubSpot", "1-23 hours"),
        ("Every 2 weeks, copy orders from Cin7 to HubSpot", "only 'every week'"),
        ("Every day, copy orders to HubSpot", "needs both an app and a kind of record"),
    ],
)
def test_other_prompts_are_refused_with_a_reason(prompt: str, reason: str) -> None:
    refusal = parse_intent(prompt)
    assert isinstance(refusal, Refusal), refusal
    assert reason in refusal.reason
    assert refusal.prompt == prompt


def test_any_text_gets_an_answer() -> None:
    for prompt in ["'", "sync", "sync to", "when , create", "every", "copy  to  ", "a" * 10_000, "s's's to b's y by z"]:
        assert isinstance(parse_intent(prompt), (Intent, Refusal))
