"""JSONata's common subset compiled to Python closures, for expressions evaluated once per record.

Why: jsonata-python interprets the syntax tree node by node (a frame lookup,
two callbacks and a dispatch chain per node), about 4 µs a node. A sync maps
every record with the same few expressions, and that interpretation was most
of its time (the flagship's three mappings: ~0.35 ms a record). Here the tree
is turned once into nested closures that do only the node's own work.

Faithful by construction, not by re-implementation: each closure is the
transcription of jsonata-python's own ``_eval`` branch for its node, on
jsonata-python's own values (``None`` for undefined, ``Utils.NULL_VALUE`` for
null, ``JList`` sequences with their flags), calling its own helpers
(``Functions.lookup``, ``Functions.append``, ``Functions.string``, its
equality, comparison, arithmetic and boolean rules) and applying its
sequence "mangling" after every node. Only what is simple to transcribe is
compiled: :func:`compile_subset` returns None for anything else (lambdas,
predicates, sorting, grouping, ranges, regexes, transforms, ``$$``, unknown
variables, functions outside a short list), and that expression stays with
jsonata-python. A closure that meets data it does not decide on (a function
argument of an unexpected type, an object constructed over an array, an
error to report) raises :class:`Fallback`; the caller then evaluates the
expression with jsonata-python, which gives the result or the error. That
is sound because compiled expressions have no side effects.

Bounds: no compiled node loops except over its input's items or recurses
except into its own subtree, so an evaluation's work is bounded by the
expression's size times the data's; the caller still charges its CPU time to
the run's meter and checks cancellation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jsonata import functions as _functions
from jsonata import utils as _utils
from jsonata.jsonata import Jsonata
from jsonata.parser import Parser

__all__ = ["Compiled", "Fallback", "compile_subset"]

JList = _utils.Utils.JList
NULL = _utils.Utils.NULL_VALUE
Functions = _functions.Functions
_create_sequence = _utils.Utils.create_sequence
_is_deep_equal = _utils.Utils.is_deep_equal
_boolize = Jsonata.boolize

# Node = (input, scope) -> value; scope is the block's variables (a dict, copied by each block).
Node = Callable[[Any, dict], Any]


class Fallback(Exception):
    """This evaluation is left to jsonata-python (data the compiled form does not decide on)."""


class _Unsupported(Exception):
    """The expression is outside the compiled subset."""


# Node fields that make a node something the subset does not compile.
_REFUSED_FIELDS = ("predicate", "stages", "group", "focus", "index", "tuple", "keep_array", "ancestor",
                   "keep_singleton_array")


def _refuse_extras(node: Any) -> None:
    for field in _REFUSED_FIELDS:
        if getattr(node, field, None):
            raise _Unsupported(field)


def _mangle(result: Any) -> Any:
    # jsonata-python's _eval exit: a sequence of one is its item, an empty one is undefined
    if result is not None and type(result) is JList and result.sequence and not result.tuple_stream:
        if not result:
            return None
        if len(result) == 1 and not result.keep_singleton:
            return result[0]
    return result


class Compiled:
    """An expression compiled to closures; call :meth:`evaluate` as jsonata-python's ``evaluate``."""

    __slots__ = ("_root", "_convert_nulls")

    def __init__(self, root: Node, convert_nulls: bool):
        self._root = root
        self._convert_nulls = convert_nulls

    def evaluate(self, input: Any) -> Any:
        """The expression's value over ``input``, as ``Jsonata.evaluate`` gives it.

        Raises:
            Fallback: jsonata-python must evaluate this one (it gives the value or the error).
        """
        if isinstance(input, list) and not _utils.Utils.is_sequence(input):
            input = _create_sequence(input)
            input.outer_wrapper = True
        try:
            result = self._root(input, {})
        except Fallback:
            raise
        except Exception:
            # any failure is reported by jsonata-python, with its own message
            raise Fallback from None
        if self._convert_nulls:
            result = _utils.Utils.convert_nulls(result)
        return result


def compile_subset(ast: Any, environment: Any, convert_nulls: bool = False) -> Compiled | None:
    """``ast`` (a parsed jsonata-python expression) as closures, or None when it is outside the subset.

    ``environment`` is the expression's jsonata-python frame: a variable the
    expression binds must not shadow anything bound there (built-ins included).
    """
    bound = _bound_names(ast)
    for name in bound:
        if environment.lookup(name) is not None:
            return None
    try:
        return Compiled(_Compiler(bound).node(ast), convert_nulls)
    except (_Unsupported, RecursionError):
        return None


def _bound_names(ast: Any) -> set[str]:
    names: set[str] = set()
    stack = [ast]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if isinstance(node, (list, tuple)):
            stack.extend(node)
            continue
        if not isinstance(node, Parser.Symbol) or id(node) in seen:
            continue
        seen.add(id(node))
        if node.type == "bind" and getattr(node.lhs, "type", None) == "variable":
            names.add(str(node.lhs.value))
        for key in ("lhs", "rhs", "expressions", "steps", "condition", "then", "_else", "arguments",
                    "procedure", "lhs_object", "expression"):
            child = getattr(node, key, None)
            if child is not None:
                stack.append(child)
    return names


def _literal(value: Any) -> Node:
    def literal(input: Any, scope: dict) -> Any:
        return value
    return literal


class _Compiler:
    def __init__(self, bound: set[str]):
        self.bound = bound

    def node(self, expr: Any) -> Node:
        if not isinstance(expr, Parser.Symbol):
            raise _Unsupported(type(expr).__name__)
        _refuse_extras(expr)
        kind = expr.type
        if kind in ("string", "number", "value"):
            return _literal(expr.value if expr.value is not None else NULL)
        if kind == "name":
            return self.name(expr)
        if kind == "path":
            return self.path(expr)
        if kind == "variable":
            return self.variable(expr)
        if kind == "binary":
            return self.binary(expr)
        if kind == "unary":
            return self.unary(expr)
        if kind == "condition":
            return self.condition(expr)
        if kind == "block":
            return self.block(expr)
        if kind == "bind":
            return self.bind(expr)
        if kind == "function":
            return self.function(expr)
        raise _Unsupported(kind)

    def name(self, expr: Any) -> Node:
        key = str(expr.value)
        lookup = Functions.lookup

        def name(input: Any, scope: dict) -> Any:
            if type(input) is dict:  # the common case, as Functions.lookup does it
                result = input.get(key, _MISSING)
                if result is _MISSING:
                    return None
                return NULL if result is None else _mangle(result)
            return _mangle(lookup(input, key))
        return name

    def variable(self, expr: Any) -> Node:
        name = str(expr.value)
        if name == "":
            def context(input: Any, scope: dict) -> Any:
                if type(input) is JList and input.outer_wrapper:
                    return input[0]
                return input
            return context
        if name not in self.bound:
            raise _Unsupported(f"${name}")

        def variable(input: Any, scope: dict) -> Any:
            return _mangle(scope.get(name))
        return variable

    def path(self, expr: Any) -> Node:
        steps = expr.steps
        if not steps:
            raise _Unsupported("empty path")
        first_is_variable = steps[0].type == "variable"
        if steps[0].consarray:
            raise _Unsupported("array constructor step")
        compiled = [self.node(step) for step in steps]
        count = len(compiled)
        # The leading steps that are plain names are walked directly while each value is one
        # object (the common case: source.properties.email); the rest follow evaluate_step.
        keys = []
        for step in steps:
            if step.type != "name":
                break
            keys.append(str(step.value))

        def general(sequence: Any, start: int, scope: dict) -> Any:
            result = sequence
            for index in range(start, count):
                result = _step(compiled[index], sequence, scope, index == count - 1)
                if not result:
                    break
                sequence = result
            return _mangle(result)

        def path(input: Any, scope: dict) -> Any:
            if keys and type(input) is dict:
                value = input
                for index, key in enumerate(keys):
                    found = value.get(key, _MISSING)
                    if found is _MISSING:
                        return None
                    found = NULL if found is None else _mangle(found)
                    last = index == count - 1
                    if type(found) is dict:
                        if last:
                            return found
                        value = found
                        continue
                    if isinstance(found, list):
                        if type(found) is JList and found.cons:
                            sequence = _create_sequence(found)
                        elif last and not (type(found) is JList and found.sequence):
                            return _mangle(found)
                        else:
                            sequence = _create_sequence()
                            sequence.extend(found)
                        if last:
                            return _mangle(sequence)
                        return general(sequence, index + 1, scope)
                    if last:
                        return found
                    if index + 1 < len(keys):
                        return None  # a name looked up in a string, number, boolean or null
                    return general(_create_sequence(found), index + 1, scope)
                # the names led to one object and the path goes on with other steps
                return general(_create_sequence(value), len(keys), scope)
            if isinstance(input, list) and not first_is_variable:
                sequence = input
            else:
                sequence = _create_sequence(input)
            return general(sequence, 0, scope)
        return path

    def binary(self, expr: Any) -> Node:
        op = str(expr.value)
        lhs, rhs = self.node(expr.lhs), self.node(expr.rhs)
        if op in ("and", "or"):
            is_and = op == "and"

            def boolean(input: Any, scope: dict) -> Any:
                left = _boolize(lhs(input, scope))
                if is_and:
                    return left and _boolize(rhs(input, scope))
                return left or _boolize(rhs(input, scope))
            return boolean
        operation = _BINARY.get(op)
        if operation is None:
            raise _Unsupported(op)

        def binary(input: Any, scope: dict) -> Any:
            return _mangle(operation(lhs(input, scope), rhs(input, scope), op))
        return binary

    def unary(self, expr: Any) -> Node:
        op = str(expr.value)
        if op == "-":
            operand = self.node(expr.expression)

            def negate(input: Any, scope: dict) -> Any:
                value = operand(input, scope)
                if value is None:
                    return None
                if _utils.Utils.is_numeric(value):
                    return _utils.Utils.convert_number(-float(value))
                raise Fallback  # jsonata-python reports D1002
            return negate
        if op == "[":
            return self.array(expr)
        if op == "{":
            return self.object(expr)
        raise _Unsupported(op)

    def array(self, expr: Any) -> Node:
        items = [(self.node(item), str(item.value) == "[") for item in expr.expressions]
        cons = bool(expr.consarray)

        def array(input: Any, scope: dict) -> Any:
            result = JList()
            for item, nested in items:
                value = item(input, scope)
                if value is not None:
                    # Functions.append copies result (its flags are the defaults) and adds value's items
                    if nested or not isinstance(value, list):
                        result.append(value)
                    else:
                        result.extend(value)
            if cons:
                if type(result) is not JList:
                    result = JList(result)
                result.cons = True
            return _mangle(result)
        return array

    def object(self, expr: Any) -> Node:
        pairs = []
        keys: set[str] = set()
        for pair in expr.lhs_object:
            key, value = pair[0], pair[1]
            # literal, distinct keys: computed keys and duplicates (an error) stay with jsonata-python
            if getattr(key, "type", None) != "string" or not isinstance(key.value, str) or key.value in keys:
                raise _Unsupported("object key")
            _refuse_extras(key)
            keys.add(key.value)
            pairs.append((key.value, self.node(value)))

        def construct(input: Any, scope: dict) -> Any:
            if isinstance(input, list):
                raise Fallback  # grouping over the items of an array
            result = {}
            for key, value in pairs:
                found = value(input, scope)
                if found is not None:
                    result[key] = found
            return result
        return construct

    def condition(self, expr: Any) -> Node:
        test = self.node(expr.condition)
        then = self.node(expr.then)
        otherwise = self.node(expr._else) if expr._else is not None else None

        def condition(input: Any, scope: dict) -> Any:
            if _boolize(test(input, scope)):
                return _mangle(then(input, scope))
            if otherwise is not None:
                return _mangle(otherwise(input, scope))
            return None
        return condition

    def block(self, expr: Any) -> Node:
        body = [self.node(item) for item in (expr.expressions or [])]

        def block(input: Any, scope: dict) -> Any:
            inner = dict(scope)  # a block's bindings end with it
            result = None
            for item in body:
                result = item(input, inner)
            return _mangle(result)
        return block

    def bind(self, expr: Any) -> Node:
        if getattr(expr.lhs, "type", None) != "variable":
            raise _Unsupported("bind target")
        name = str(expr.lhs.value)
        value = self.node(expr.rhs)

        def bind(input: Any, scope: dict) -> Any:
            result = value(input, scope)
            scope[name] = result
            return _mangle(result)
        return bind

    def function(self, expr: Any) -> Node:
        procedure = expr.procedure
        if getattr(procedure, "type", None) != "variable" or procedure.value in self.bound:
            raise _Unsupported("procedure")
        _refuse_extras(procedure)
        builtin = _FUNCTIONS.get(str(procedure.value))
        arguments = [self.node(argument) for argument in (expr.arguments or [])]
        if builtin is None or len(arguments) not in builtin[0]:
            raise _Unsupported(f"${procedure.value}")
        call = builtin[1]

        def function(input: Any, scope: dict) -> Any:
            return _mangle(call(*[argument(input, scope) for argument in arguments]))
        return function


_MISSING = object()


def _step(step: Node, sequence: Any, scope: dict, last: bool) -> Any:
    # jsonata-python's evaluate_step (no sort, stages or tuples: those are not compiled)
    result = []
    for item in sequence:
        value = step(item, scope)
        if value is not None:
            result.append(value)
    if last and len(result) == 1 and isinstance(result[0], list) and not (
            type(result[0]) is JList and result[0].sequence):
        return result[0]
    flat = _create_sequence()
    for value in result:
        if not isinstance(value, list) or (type(value) is JList and value.cons):
            flat.append(value)
        else:
            flat.extend(value)
    return flat


# jsonata-python's own operators (instance methods that use no instance state).
_BINARY: dict[str, Callable[[Any, Any, str], Any]] = {}
for _op in ("+", "-", "*", "/", "%"):
    _BINARY[_op] = lambda lhs, rhs, op: Jsonata.evaluate_numeric_expression(None, lhs, rhs, op)
for _op in ("=", "!="):
    _BINARY[_op] = lambda lhs, rhs, op: Jsonata.evaluate_equality_expression(None, lhs, rhs, op)
for _op in ("<", "<=", ">", ">="):
    _BINARY[_op] = lambda lhs, rhs, op: Jsonata.evaluate_comparison_expression(None, lhs, rhs, op)
_BINARY["&"] = lambda lhs, rhs, op: Jsonata.evaluate_string_concat(None, lhs, rhs)
_BINARY["in"] = lambda lhs, rhs, op: Jsonata.evaluate_includes_expression(None, lhs, rhs)


# Built-ins called directly on argument values their signatures take as they are; any other
# value (one jsonata-python's signature check would coerce or refuse) goes back to it.
def _string_argument(value: Any) -> Any:
    if value is None or type(value) is str:
        return value
    raise Fallback


def _text(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def call(value: Any) -> Any:
        return function(_string_argument(value))
    return call


def _join(strings: Any, separator: Any = None) -> Any:
    if strings is None or type(strings) is str:  # undefined, or one string (its signature wraps it)
        strings = None if strings is None else [strings]
    elif not isinstance(strings, list) or any(type(item) is not str for item in strings):
        raise Fallback
    if separator is not None and type(separator) is not str:
        raise Fallback
    return None if strings is None else Functions.join(strings, separator)


def _merge(objects: Any) -> Any:
    if objects is None or type(objects) is dict:  # undefined, or one object (its signature wraps it)
        objects = None if objects is None else [objects]
    elif not isinstance(objects, list) or any(type(item) is not dict for item in objects):
        raise Fallback
    return None if objects is None else Functions.merge(objects)


def _exists(value: Any) -> Any:
    if callable(value) or isinstance(value, Parser.Symbol):
        raise Fallback
    return Functions.exists(value)


_FUNCTIONS: dict[str, tuple[tuple[int, ...], Callable[..., Any]]] = {
    "trim": ((1,), _text(Functions.trim)),
    "lowercase": ((1,), _text(Functions.lowercase)),
    "uppercase": ((1,), _text(Functions.uppercase)),
    "join": ((1, 2), _join),
    "merge": ((1,), _merge),
    "exists": ((1,), _exists),
}
