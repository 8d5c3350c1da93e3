"""The Integration Agent's offline plan: the table of tool calls that carries the three prompt
shapes (sync, event, copy) from the prompt to the review, and how it reads review comments.

It reads only the conversation's tool results: the connectors the catalog found or the run
imported, their actions and events (``validate_connector``), the mapping proposed through the
common data model (``propose_mapping``), and builds the workflow from them: a list step and a sync
step for a sync (a create-only sync for a copy), one create step on the connector's event for an
event. A required target field no source field maps to becomes a workflow input (an existing
record keeps its value). When the connectors cannot serve the prompt (no such action or event) it
stops and says which. Review comments it acts on are :data:`COMMENT_SHAPES`; it says which others
it cannot act on, and asks for review again.
"""

from __future__ import annotations

import json
import re
from typing import Any

from agents._intent import Intent, _take_schedule
from agents._offline import REVIEW
from agents._planner import Plan, PlanState, PlanStep

KINDS = ("contact", "company", "customer", "order", "product", "invoice")
COMMENT_SHAPES = ("run every hour | every day | every N minutes", "set FIELD to VALUE", "do not map FIELD")
# The value a dry run gives a required workflow input the builder has not set yet.
DRY_RUN_PLACEHOLDER = "TBD"


# -- reading the results ------------------------------------------------------------------------


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def connector_of(state: PlanState, app_id: str) -> str | None:
    """The organization's connector for an app: one this run imported, else one the catalog found."""
    for result in state.calls("import_api"):
        if result.ok and result.arguments.get("connector_id") == app_id:
            return result.content.get("connector")
    for result in state.calls("search_catalog"):
        if not result.ok:
            continue
        for hit in result.content.get("items", []):
            key = hit.get("connector") or ""
            if hit.get("own") and (key == app_id or key.split("-")[0].split("_")[0] == app_id):
                return key
    return None


def _searched(state: PlanState, query: str) -> bool:
    return any(r.ok and r.arguments.get("query") == query for r in state.calls("search_catalog"))


def _validated(state: PlanState, key: str | None) -> dict[str, Any] | None:
    for result in reversed(state.calls("validate_connector")):
        if result.ok and result.content.get("connector") == key:
            return result.content
    return None


def _actions(state: PlanState, key: str | None) -> list[str] | None:
    found = _validated(state, key)
    return None if found is None else found.get("actions") or []


def blocked(state: PlanState) -> str | None:
    """Why the workflow cannot be written from the connectors found (an action or event missing), or None."""
    intent: Intent = state.intent
    refs = _refs(state)
    if refs is None:
        return None
    needs = [("source_list", "source", f"list {intent.source.object} records"),
             ("create", "target", f"create a {intent.target.object}")]
    if intent.kind != "event":
        needs.append(("target_list", "target", f"list {intent.target.object} records (to match them)"))
    for ref, side, what in needs:
        if not refs[ref]:
            app = getattr(intent, side)
            actions = _actions(state, refs[side]) or []
            return (f"the {app.app} connector {refs[side]!r} has no action to {what}; its actions: "
                    f"{', '.join(actions[:30]) or 'none'}. Name another kind of record in the prompt, or build the "
                    f"connector with that action")
    if intent.kind == "event":
        events = (_validated(state, refs["source"]) or {}).get("events") or []
        if intent.trigger.event not in events:
            return (f"the {intent.source.app} connector {refs['source']!r} declares no event {intent.trigger.event!r} "
                    f"(its events: {', '.join(events) or 'none'}); add it to the connector (a webhook or polling event), "
                    f"or ask for a schedule: 'every hour, copy ...'")
    return None


def _plural(word: str) -> str:
    return word[:-1] + "ies" if word.endswith("y") else word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s")


def _pick(actions: list[str], verb: str, obj: str) -> str | None:
    slug = re.sub(r"[^a-z0-9]+", "_", obj)
    wanted = [f"{verb}_{_plural(slug)}", f"{verb}_{slug}"]
    for name in wanted:
        if name in actions:
            return name
    return next((a for a in actions if a.startswith(verb + "_") and slug in a), None)


def _refs(state: PlanState) -> dict[str, str] | None:
    """The actions the workflow uses (``source_list``, ``target_list``, ``create``, ``update``), once known."""
    intent: Intent = state.intent
    source, target = connector_of(state, intent.source.app_id), connector_of(state, intent.target.app_id)
    source_actions, target_actions = _actions(state, source), _actions(state, target)
    if source_actions is None or target_actions is None:
        return None
    refs = {"source": source, "target": target,
            "source_list": _pick(source_actions, "list", intent.source.object),
            "target_list": _pick(target_actions, "list", intent.target.object),
            "create": _pick(target_actions, "create", intent.target.object),
            "update": _pick(target_actions, "update", intent.target.object)}
    return refs


def _mapping(state: PlanState) -> dict[str, Any] | None:
    result = state.last("propose_mapping")
    return result.content if result is not None and result.ok else None


def workflow_key(intent: Intent) -> str:
    """The workflow key a prompt's integration gets: ``hubspot-contacts-to-cin7-customers``."""
    parts = [intent.source.app_id, _plural(intent.source.object), "to", intent.target.app_id, _plural(intent.target.object)]
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")[:100]


def _nest(fields: dict[str, Any]) -> dict[str, Any]:
    """``{"Contacts.Email": e, "Name": n}`` -> ``{"Contacts": [{"Email": e}], "Name": n}``: a dotted
    target field lives in an array of objects (see ``engine.datamodel.suggest_mapping``)."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        head, _, rest = key.partition(".")
        if rest:
            holder = out.setdefault(head, [{}])
            holder[0][rest] = value
        else:
            out[key] = value
    return out


def _keep_others(fields: dict[str, Any], match_key: str, source_path: str) -> dict[str, Any]:
    """The array holding the match key (Cin7's ``Contacts[].Email``) updated in place: the entry
    with the source's key is merged with the mapped item, the others kept; a new record gets the
    item alone. Replacing the array would drop a customer's other contacts."""
    head, _, inner = match_key.partition(".")
    item = fields.get(head)
    if not (isinstance(item, list) and len(item) == 1 and isinstance(item[0], dict)):
        return fields
    parts = []
    for name, value in item[0].items():
        path = _source_path(value)
        parts.append(f'"{name}": source.{path}' if path else None)
    if None in parts:
        return fields  # an item with other expressions than plain fields: leave it whole
    expression = (
        "{{ ( $item := {" + ", ".join(parts) + "}; "
        f"$key := $lowercase($trim(source.{source_path})); "
        f"$exists(target.{head}) ? [target.{head}.($lowercase($trim({inner})) = $key ? $merge([$, $item]) : $)] : [$item] ) }}}}"
    )
    return {**fields, head: expression}


def _source_path(expression: Any) -> str | None:
    found = re.fullmatch(r"\{\{\s*source\.([A-Za-z0-9_.`]+)\s*\}\}", expression) if isinstance(expression, str) else None
    return found[1].replace("`", "") if found else None


def build_workflow(state: PlanState) -> dict[str, Any] | None:
    """The workflow spec for the intent from the actions found and the proposed mapping; None
    until those are known or when they cannot make one (the plan then stops at its next row)."""
    intent: Intent = state.intent
    refs, mapping = _refs(state), _mapping(state)
    if refs is None or mapping is None or not refs["source_list"] or not refs["create"]:
        return None
    proposed = mapping.get("map") or {}
    if isinstance(proposed.get("body"), list) and proposed["body"] and isinstance(proposed["body"][0], dict):
        proposed = proposed["body"][0]
    flat = dict(proposed)
    # The field to match by: the mapped target field named like the prompt's match field (or, for a
    # copy, the email when mapped, else the first field), read from the source path it maps from.
    wanted = intent.match or "email"
    match_key = next((k for k in flat if k.split(".")[-1].lower() == wanted.lower() and _source_path(flat[k])), None)
    if match_key is None and intent.kind == "copy":
        match_key = next((k for k in flat if _source_path(flat[k])), None)
    inputs: dict[str, Any] = {}
    fields = _nest(flat)
    if match_key is not None and "." in match_key and intent.kind != "event":
        fields = _keep_others(fields, match_key, _source_path(flat[match_key]) or "")
    for name in mapping.get("required_unmapped") or []:
        # No source field: an existing record keeps its value, a new one takes the workflow's input.
        variable = re.sub(r"[^a-z0-9_]+", "_", name.lower())
        inputs[variable] = {"type": "string", "description": f"{name} of new {intent.target.app} {intent.target.object}s "
                                                            f"(no {intent.source.app} field maps to it)"}
        fields[name] = "{{ $exists(target.%s) ? target.%s : input.%s }}" % (name, name, variable)
    key = workflow_key(intent)
    trigger: dict[str, Any]
    if intent.trigger.kind == "schedule":
        trigger = {"kind": "schedule", "cron": intent.trigger.cron}
    else:
        trigger = {"kind": "app_event", "connector": refs["source"], "event": intent.trigger.event}
    spec: dict[str, Any] = {"id": key, "name": intent.prompt.strip().rstrip(".")[:200], "tier": "standard",
                            "trigger": trigger}
    if inputs:
        spec["input"] = {"type": "object", "properties": inputs, "required": sorted(inputs)}
    if intent.kind == "event":
        # An app event's run sees the record that fired it as trigger.record (runtime's poller).
        body = json.loads(json.dumps(fields).replace("source.", "trigger.record."))
        for name in inputs:
            body = json.loads(json.dumps(body).replace(f"$exists(target.{name}) ? target.{name} : ", ""))
        spec["steps"] = [{"id": "create", "action": f"{refs['target']}.{refs['create']}", "input": {"body": body}}]
        spec["output"] = "{{ steps.create }}"
        return spec
    if match_key is None or not refs["target_list"]:
        return None
    # An id the target keeps in its records: an app whose fields are capitalised names it ``ID``.
    id_field = "ID" if any(k[:1].isupper() for k in fields) else "id"
    target: dict[str, Any] = {"list": f"{refs['target']}.{refs['target_list']}", "create": f"{refs['target']}.{refs['create']}"}
    if refs["update"] and intent.kind == "sync":
        target["update"] = f"{refs['target']}.{refs['update']}"
        target["update_input"] = {"body": "{{ $merge([fields, {'%s': target.%s}]) }}" % (id_field, id_field)}
    spec["steps"] = [
        {"id": "records", "action": f"{refs['source']}.{refs['source_list']}"},
        {"id": "sync", "sync": {"source": "{{ $exists(steps.records.items) ? steps.records.items : steps.records }}",
                                "target": target, "match": {"source": _source_path(flat[match_key]), "target": match_key},
                                "map": fields}},
    ]
    spec["output"] = {"created": "{{ steps.sync.created }}", "updated": "{{ steps.sync.updated }}",
                      "unchanged": "{{ steps.sync.unchanged }}", "skipped": "{{ $count(steps.sync.skipped) }}"}
    return spec


def _written(state: PlanState) -> dict[str, Any] | None:
    result = state.last("write_workflow_draft")
    return result.arguments.get("spec") if result is not None and result.ok else None


# -- review comments ----------------------------------------------------------------------------


def latest_review(state: PlanState) -> dict[str, Any] | None:
    """The builder's latest answer to a review, when it came after the latest request."""
    review = state.last(REVIEW)
    return review.content if review is not None and state.after(REVIEW, "request_review") else None


def comment_patch(comments: str, spec: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """JSON Patch operations for the comments the offline planner understands (:data:`COMMENT_SHAPES`)
    on the workflow ``spec`` it wrote, and the comments it cannot act on."""
    ops: list[dict[str, Any]] = []
    cannot: list[str] = []
    sync = next((i for i, s in enumerate(spec.get("steps") or []) if "sync" in s), None)
    fields = spec["steps"][sync]["sync"]["map"] if sync is not None else {}
    where = f"/steps/{sync}/sync/map" if sync is not None else None
    for comment in [c.strip() for c in re.split(r"[.;\n]+", comments) if c.strip()]:
        text = re.sub(r"^(?:please|and|also|but)\s+", "", comment, flags=re.I)
        schedule, rest = _take_schedule(re.sub(r"^(?:run|sync|make it run|schedule it)\s+", "", text, flags=re.I))
        set_field = re.fullmatch(r"(?:set|make|use)\s+(?:the\s+)?(\w+)\s+(?:to|=|as)\s+['\"]?([^'\"]+?)['\"]?", text, re.I)
        drop_field = re.fullmatch(r"(?:do\s+not|don't|dont|never)\s+(?:map|sync|copy|send)\s+(?:the\s+)?(\w+)"
                                  r"(?:\s+field)?|remove\s+(?:the\s+)?(\w+)(?:\s+field)?(?:\s+from\s+the\s+map(?:ping)?)?", text, re.I)
        if schedule is not None and not isinstance(schedule, str) and not rest and spec.get("trigger", {}).get("kind") == "schedule":
            ops.append({"op": "replace", "path": "/trigger", "value": {"kind": "schedule", "cron": schedule.cron}})
        elif set_field and where is not None and (name := _field(fields, set_field[1])):
            value = set_field[2].strip().replace("'", "")
            ops.append({"op": "replace", "path": f"{where}/{name}", "value": value})
            variable = re.sub(r"[^a-z0-9_]+", "_", name.lower())
            if variable in ((spec.get("input") or {}).get("properties") or {}):
                ops.append({"op": "remove", "path": "/input"})
        elif drop_field and where is not None and (name := _field(fields, drop_field[1] or drop_field[2])):
            ops.append({"op": "remove", "path": f"{where}/{name}"})
        else:
            cannot.append(comment)
    return ops, cannot


def _field(fields: dict[str, Any], name: str) -> str | None:
    return next((k for k in fields if k.lower() == name.lower()), None)


def _comment_patch(state: PlanState) -> dict[str, Any] | None:
    review, spec = latest_review(state), _written(state)
    if review is None or review.get("action") != "reject" or spec is None or state.after("patch_workflow_draft", REVIEW):
        return None
    current = _current_spec(state) or spec
    ops, _ = comment_patch(str(review.get("comments") or ""), current)
    return {"workflow": current["id"], "patch": ops} if ops else None


def _current_spec(state: PlanState) -> dict[str, Any] | None:
    """The draft as the run last wrote it: the written spec with every successful patch applied."""
    import jsonpatch

    spec = _written(state)
    if spec is None:
        return None
    for result in state.calls("patch_workflow_draft"):
        if result.ok:
            try:
                spec = jsonpatch.apply_patch(spec, result.arguments.get("patch") or [], in_place=False)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
                return None
    return spec


def _summary(state: PlanState) -> str:
    intent: Intent = state.intent
    spec = _current_spec(state) or {}
    lines = [f"offline planner: {intent.kind} {intent.source.app} {intent.source.object}s -> "
             f"{intent.target.app} {intent.target.object}s as workflow {spec.get('id')}",
             f"trigger: {json.dumps(spec.get('trigger'))}"]
    sync = next((s["sync"] for s in spec.get("steps") or [] if "sync" in s), None)
    if sync is not None:
        lines.append(f"match: {sync['match']['source']} = {sync['match']['target']}")
        lines.append("map: " + ", ".join(sorted(sync["map"])))
    for name, schema in ((spec.get("input") or {}).get("properties") or {}).items():
        lines.append(f"input {name}: {schema.get('description')}; the dry run used {DRY_RUN_PLACEHOLDER!r}")
    run = state.last("dry_run_workflow")
    if run is not None and run.ok:
        lines.append(f"dry run: {run.content.get('status')}, output {json.dumps(run.content.get('output'))}, "
                     f"{run.content.get('calls_total')} call(s) on sandboxes {', '.join(run.content.get('sandboxes') or [])}")
    review = latest_review(state)
    if review is not None and review.get("action") == "reject":
        _, cannot = comment_patch(str(review.get("comments") or ""), spec)
        if cannot:
            lines.append("cannot act on these comments (offline planner; it handles: " + " | ".join(COMMENT_SHAPES)
                         + "): " + " | ".join(cannot))
        else:
            lines.append("changed after review: " + str(review.get("comments")))
    return "\n".join(lines)[:4000]


def _dry_run_input(state: PlanState) -> dict[str, Any]:
    spec = _current_spec(state) or {}
    return {name: DRY_RUN_PLACEHOLDER for name in (spec.get("input") or {}).get("required") or []}


def _fresh(tool: str):
    # Done when the latest call succeeded and no change to the draft came after it.
    return lambda s: s.succeeded(tool) and s.after(tool, "patch_workflow_draft")


def _app_rows(side: str) -> tuple[PlanStep, ...]:
    def app(s: PlanState):
        return getattr(s.intent, side)

    def query(s: PlanState) -> str:
        return f"{app(s).app} {app(s).object}"

    def missing(s: PlanState) -> bool:
        return _searched(s, query(s)) and connector_of(s, app(s).app_id) is None

    def import_args(s: PlanState) -> dict[str, Any] | None:
        found = [r for r in s.calls("find_api_description") if r.ok and r.arguments.get("app") == app(s).app]
        candidates = found[-1].content.get("candidates", []) if found else []
        local = [c for c in candidates if c.get("source") == "local"]
        chosen = (local or candidates or [None])[0]
        if chosen is None:
            return None
        where = {"document": chosen["document"]} if chosen["source"] == "local" else {"url": chosen["url"]}
        return where | {"connector_id": app(s).app_id}

    def imported(s: PlanState) -> str | None:
        return next((r.content.get("connector") for r in s.calls("import_api")
                     if r.ok and r.arguments.get("connector_id") == app(s).app_id), None)

    return (
        PlanStep("search_catalog", lambda s: {"query": query(s), "limit": 10}, done=lambda s: _searched(s, query(s)),
                 purpose=f"find the {side} connector"),
        PlanStep("find_api_description", lambda s: {"app": app(s).app}, when=missing,
                 done=lambda s: any(r.ok and r.arguments.get("app") == app(s).app for r in s.calls("find_api_description")),
                 purpose=f"find the {side} app's API description"),
        PlanStep("import_api", import_args, when=missing, done=lambda s: imported(s) is not None,
                 purpose=f"import the {side} app's API"),
        PlanStep("test_connector", lambda s: {"connector": imported(s)} if imported(s) else None,
                 done=lambda s: imported(s) is None or any(r.ok and r.arguments.get("connector") == imported(s)
                                                          for r in s.calls("test_connector")),
                 purpose=f"test the imported {side} connector on its sandbox"),
        PlanStep("validate_connector",
                 lambda s: {"connector": connector_of(s, app(s).app_id)} if connector_of(s, app(s).app_id) else None,
                 done=lambda s: _actions(s, connector_of(s, app(s).app_id)) is not None,
                 purpose=f"read the {side} connector's actions"),
    )


def _mapping_arguments(state: PlanState) -> dict[str, Any] | None:
    intent: Intent = state.intent
    refs = _refs(state)
    if refs is None or not refs["source_list"] or not refs["create"]:
        return None
    kind = intent.source.object if intent.source.object in KINDS else intent.target.object
    if kind not in KINDS:
        return None
    return {"kind": kind, "source": f"{refs['source']}.{refs['source_list']}", "target": f"{refs['target']}.{refs['create']}"}


INTEGRATION_PLAN = Plan((
    *_app_rows("source"),
    *_app_rows("target"),
    PlanStep("propose_mapping", _mapping_arguments, blocked=blocked, purpose="map the fields through the common data model"),
    PlanStep("write_workflow_draft", lambda s: {"spec": build_workflow(s)} if build_workflow(s) else None,
             purpose="write the workflow"),
    PlanStep("patch_workflow_draft", _comment_patch, done=lambda s: _comment_patch(s) is None,
             purpose="act on the builder's review comments"),
    PlanStep("validate_workflow", lambda s: {"workflow": workflow_key(s.intent)} if _written(s) else None,
             done=lambda s: _fresh("validate_workflow")(s) and (s.last("validate_workflow").content or {}).get("valid", False),
             attempts=1, purpose="validate the workflow"),
    PlanStep("dry_run_workflow", lambda s: {"workflow": workflow_key(s.intent), "input": _dry_run_input(s)}
             if _written(s) else None,
             done=lambda s: _fresh("dry_run_workflow")(s) and (s.last("dry_run_workflow").content or {}).get("status") == "completed",
             attempts=1, purpose="dry-run it on the sandboxes"),
    PlanStep("request_review", lambda s: {"kind": "workflow", "key": workflow_key(s.intent), "summary": _summary(s)}
             if _written(s) else None,
             done=lambda s: s.succeeded("request_review") and s.after("request_review", REVIEW),
             purpose="ask the builder to review"),
))
