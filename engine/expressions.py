"""Public surface of the expression language (JSONata in ``{{ }}`` templates)."""

from ._expressions import (
    Expression,
    Runtime,
    bind_runtime,
    check_template,
    compile_expression,
    evaluate,
    is_template,
    quote_field,
    render,
    reset_runtime,
)

__all__ = [
    "Expression", "Runtime", "bind_runtime", "check_template", "compile_expression", "evaluate", "is_template",
    "quote_field", "render", "reset_runtime",
]
