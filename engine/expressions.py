"""Public surface of the expression language (JSONata in ``{{ }}`` templates)."""

from ._expressions import (
    Expression,
    as_text,
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
    "Expression", "Runtime", "as_text", "bind_runtime", "check_template", "compile_expression", "evaluate", "is_template",
    "quote_field", "render", "reset_runtime",
]
