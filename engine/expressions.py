"""Public surface of the expression language (JSONata in ``{{ }}`` templates)."""

from ._expressions import (
    FORBIDDEN_FUNCTIONS,
    Evaluator,
    Expression,
    ExpressionBudget,
    ExpressionCache,
    ExpressionMeter,
    as_text,
    Runtime,
    bind_runtime,
    check_template,
    compile_expression,
    evaluate,
    is_template,
    quote_field,
    references,
    render,
    reset_runtime,
    shared_cache,
    template_parts,
)

__all__ = [
    "FORBIDDEN_FUNCTIONS", "Evaluator", "Expression", "ExpressionBudget", "ExpressionCache", "ExpressionMeter",
    "Runtime", "as_text", "bind_runtime", "check_template", "compile_expression", "evaluate", "is_template",
    "quote_field", "references", "render", "reset_runtime", "shared_cache", "template_parts",
]
