"""Switchboard's deterministic execution engine.

Specs (connectors, workflows) are validated data; the engine imports OpenAPI
documents into connectors, serves sandbox apps, calls actions over a guarded
HTTP layer, and computes when schedules are due (``Schedule``), and
interprets workflows with injected clock, ids and HTTP so that
a run can be recorded and replayed. Subpackages hold the parts:
``engine.specs``, ``engine.expressions``, ``engine.http``, ``engine.auth``,
``engine.actions``, ``engine.openapi``, ``engine.sandbox``, ``engine.workflow``,
``engine.datamodel``; this module re-exports the few names most callers need.
"""

from ._schedules import Due, Schedule
from ._connector_check import ActionCheck, ConnectorCheckReport, check_connector, sample_input
from ._workflow_check import check_workflow
from .errors import EngineError

__all__ = ["ActionCheck", "ConnectorCheckReport", "Due", "EngineError", "Schedule", "check_connector", "check_workflow", "sample_input"]
