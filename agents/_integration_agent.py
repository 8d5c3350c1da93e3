"""The Integration Agent: from a prompt, find or build the connectors, write the workflow (trigger,
field mapping; a sync step for a sync), validate and dry-run it on sandboxes, then stop for the
builder's review; publish and deploy on approval, act on the comments of a rejection.

Graph::

    START -> agent <-> tools --(request_review answered)--> review --approve--> publish -> END
                                                              \\--reject(comments)--> agent

``review`` calls ``interrupt({"type": "review", "summary", "diff", "workflow", ...})`` and is
resumed with ``Command(resume={"action": "approve"})`` or ``{"action": "reject", "comments":
"..."}``. A rejection becomes a builder message named ``review`` that the model reads. ``publish``
grants the approval (``ctx.approvals``) and publishes, through the tools' one call path, the
connectors the workflow uses that have unpublished drafts, then the workflow, deployed to the
test customer's environment; it skips what is already published, so a re-run publishes nothing
twice.

Offline, :data:`INTEGRATION_PLAN` carries the three prompt shapes; review comments it can act on
are :data:`COMMENT_SHAPES`; for any other comment it says it cannot and asks for review again.
"""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

import prompts
import store
from agents._intent import Intent, _take_schedule
from agents._loop import AgentState, add_agent_loop, graph_message, is_error, prompt_text, tool_result
from agents._offline import REVIEW
from agents._planner import Plan, PlanState, PlanStep
from agents.errors import ReviewAnswerInvalid

NAME = "integration_agent"
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


# -- the graph ----------------------------------------------------------------------------------


def _last_review_request(state: AgentState) -> dict[str, Any] | None:
    """The request_review result the last tools step answered (ok), else None."""
    messages = state["messages"]
    names = {c["id"]: c["name"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        if names.get(message.tool_call_id) == "request_review" and message.status != "error":
            result = tool_result(message)
            if isinstance(result, dict) and not is_error(result):
                return result
    return None


def after_tools(state: AgentState) -> str:
    """To review once the model asked for it, else back to the model."""
    return "review" if _last_review_request(state) is not None else "agent"


def _dry_run(messages: list[Any]) -> dict[str, Any] | None:
    names = {c["id"]: c["name"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    for message in reversed(messages):
        if isinstance(message, ToolMessage) and names.get(message.tool_call_id) == "dry_run_workflow":
            result = tool_result(message)
            if isinstance(result, dict) and not is_error(result):
                return {k: result.get(k) for k in ("status", "output", "failure", "sandboxes", "calls_total")}
    return None


def review_node(state: AgentState) -> dict[str, Any]:
    """Stop for the builder (``interrupt``); on resume, record the answer. Re-running it before
    the answer asks again; after, it reads the same answer (LangGraph keeps it)."""
    request = _last_review_request(state) or {}
    payload = {"type": "review", "summary": request.get("summary", ""), "diff": request.get("diff", []),
               "workflow": request.get("key"), "kind": request.get("kind", "workflow"), "valid": request.get("valid"),
               "problems": request.get("problems", []), "first_version": request.get("first_version"),
               "dry_run": _dry_run(state["messages"])}
    answer = interrupt(payload)
    action = answer.get("action") if isinstance(answer, dict) else None
    if action == "approve":
        return {"review": {**payload, "decision": "approve"}}
    if action == "reject":
        comments = str(answer.get("comments") or "").strip()
        decision = {"action": "reject", "comments": comments}
        message = HumanMessage(comments or "rejected without comments", name=REVIEW,
                               additional_kwargs={"review": decision})
        return {"review": {**payload, "decision": "reject", "comments": comments}, "messages": [message], "steps": 0}
    raise ReviewAnswerInvalid(answer)


def after_review(state: AgentState) -> str:
    """Publish on approval; back to the model with the comments otherwise."""
    return "publish" if (state.get("review") or {}).get("decision") == "approve" else "agent"


def build_integration_agent(ctx: Any, model: Any, registry: Any, checkpointer: Any) -> Any:
    """The Integration Agent's compiled graph (see the module)."""
    chat = model.for_plan(INTEGRATION_PLAN)
    cache: dict[str, str] = {}

    def context() -> dict[str, str]:
        with ctx.platform.db.tenant(ctx.org_id) as tx:
            organization = str(store.Organizations(tx).get(ctx.org_id).get("name") or ctx.org_id)
            rows = store.Connectors(tx).list(ctx.org_id, store.ListQuery(limit=100)).items
        connectors = "\n".join(f"- {r['key']}: {r['name']}" for r in rows) or "(none yet)"
        return {"organization": organization, "connectors": connectors}

    async def system_prompt(state: AgentState) -> str:
        if not cache:
            cache.update(await anyio.to_thread.run_sync(context))
        return prompts.load(NAME).render(request=prompt_text(state["messages"])[:2000],
                                         test_customer=ctx.customer_id or "(none)", **cache)

    async def publish_node(state: AgentState) -> dict[str, Any]:
        review = state.get("review") or {}
        key = review.get("workflow")
        published = await publish_approved(ctx, registry, review.get("kind", "workflow"), key)
        lines = [(f"published {p['kind']} {p['key']}", f"version {p.get('version')}"
                  + (f", deployed to {p['deployed_to']}" if p.get("deployed_to") else "")
                  + (" (already published)" if p.get("already") else "")) for p in published["published"]]
        lines += [(f"not published: {e['kind']} {e['key']}", str(e["error"])) for e in published["errors"]]
        status = "published" if not published["errors"] else "publish failed"
        return {"published": published, "messages": [graph_message(lines, status=status, name=NAME)]}

    graph = StateGraph(AgentState)
    add_agent_loop(graph, name=NAME, model=chat, tools=registry.as_langchain_tools(ctx), system_prompt=system_prompt,
                   after_tools=after_tools, after_tools_to=("review",))
    graph.add_node("review", review_node)
    graph.add_node("publish", publish_node)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("review", after_review, ["publish", "agent"])
    graph.add_edge("publish", END)
    return graph.compile(checkpointer=checkpointer, name=NAME)


async def publish_approved(ctx: Any, registry: Any, kind: str, key: str | None) -> dict[str, Any]:
    """Grant the builder's approval and publish ``key`` (a workflow: first the connectors it uses
    that have unpublished drafts; then the workflow, deployed to the test customer's environment).
    What is already published as it is now is skipped."""
    if not key:
        return {"published": [], "errors": [{"kind": kind, "key": key, "error": "the review named nothing to publish"}]}

    def read() -> dict[str, Any]:
        with ctx.platform.db.tenant(ctx.org_id) as tx:
            if kind == "connector":
                row = store.Connectors(tx).get(ctx.org_id, key)
                return {"connectors": [row] if row.get("published_version") != row["latest_version"] else [],
                        "done": row.get("published_version") == row["latest_version"], "environment": None}
            workflows = store.Workflows(tx)
            row = workflows.get(ctx.org_id, key)
            keys = sorted({s["action"].split(".")[0] for s in _steps(row["draft"]) if "action" in s}
                          | {ref.split(".")[0] for s in _steps(row["draft"]) if "sync" in s
                             for ref in (s["sync"]["target"].get("list"), s["sync"]["target"].get("create"),
                                         s["sync"]["target"].get("update")) if ref})
            connectors = store.Connectors(tx)
            pending = [c for c in (connectors.get(ctx.org_id, k) for k in keys)
                       if c.get("published_version") != c["latest_version"]]
            latest = workflows.version(ctx.org_id, row["id"], row["latest_version"])["spec"] if row["latest_version"] else None
            environment = ctx.environment
            if environment is None and ctx.customer_id:
                environment = store.Customers(tx).get(ctx.org_id, ctx.customer_id)["environment_id"]
            return {"connectors": pending, "done": latest == row["draft"], "environment": environment,
                    "version": row["latest_version"]}

    found = await anyio.to_thread.run_sync(read)
    published: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for connector in found["connectors"]:
        ctx.approvals.grant("connector", connector["key"])
        result = await registry.invoke(ctx, "publish", {"kind": "connector", "key": connector["key"]})
        (errors.append({"kind": "connector", "key": connector["key"], "error": result["error"]}) if is_error(result)
         else published.append(result))
    if kind == "workflow" and not errors:
        if found["done"]:
            published.append({"kind": "workflow", "key": key, "version": found["version"], "already": True})
        else:
            ctx.approvals.grant("workflow", key)
            arguments = {"kind": "workflow", "key": key}
            if found["environment"]:
                arguments["deploy_to"] = found["environment"]
            result = await registry.invoke(ctx, "publish", arguments)
            (errors.append({"kind": "workflow", "key": key, "error": result["error"]}) if is_error(result)
             else published.append(result))
    return {"published": published, "errors": errors}


def _steps(spec: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for step in spec.get("steps") or []:
        out.append(step)
        for nested in ("steps", "then", "else"):
            if isinstance(step.get(nested), list):
                out += _steps({"steps": step[nested]})
    return out
