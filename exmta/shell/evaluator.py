"""
Evaluating the Shell's expressions and running its statements, with
PowerShell's semantics; L{exmta.shell.runtime.Session} inherits this and
adds pipelines and cmdlets.

  - Values: C{$null}, booleans, numbers, text, arrays (tuples), hashtables
    (dicts, keys matched case-insensitively), dates (naive local
    C{datetime}s) and time spans (C{timedelta}s), and the objects cmdlets
    output; their .NET members come from L{exmta.shell.dotnet}.
  - Comparisons are the filter language's (L{exmta.opath.evaluate}), so
    C{Where-Object} and C{if} compare alike: case-insensitive by default,
    a list on the left filters, the left side's type decides.
  - Arithmetic follows the left operand: C{"a" + 1} is C{"a1"}, C{1 +
    "2"} is C{3}, C{@(1) + 2} is C{@(1, 2)}, C{$date - $date} a time span.
  - A statement's value (C{$x = ...}, C{if (...)}) is its output: nothing
    is C{$null}, one object itself, more an array; an expression alone
    keeps its value (C{$x = @()} is an empty array).
  - Errors: see L{exmta.shell.control}.  In a block, a failing statement
    is shown and the next one runs, unless the error is C{throw}n, comes
    with C{-ErrorAction Stop}, or a C{try} is waiting for it.
  - Scopes: a function runs in a scope of its own (its parameters,
    C{$args}, C{$input}, what it assigns); it reads its caller's
    variables.  Script blocks of ForEach-Object and Where-Object run in
    the caller's scope, C{$_} and C{$PSItem} set.
"""

import datetime
import re
from collections import ChainMap
from collections.abc import Mapping

from exmta.opath import FilterError, lookupVariable, truthy
from exmta.opath.parser import OPERATORS
from exmta.opath.syntax import ArrayLiteral, Constant, ExpandableString, Member, Variable
from exmta.shell import dotnet
from exmta.shell.cmdlet import Cmdlet, Parameter, ScriptBlock
from exmta.shell.control import ErrorRecord, ExitRequest, FlowRequest, ShellError
from exmta.shell.format import evaluator, getProperty, toText
from exmta.shell.syntax import (
    ArrayExpression,
    Assignment,
    Binary,
    Cast,
    Command,
    Composite,
    Flow,
    ForEach,
    FunctionDefinition,
    HashLiteral,
    If,
    Index,
    MethodCall,
    Paren,
    Pipeline,
    ScriptBlockLiteral,
    StaticMember,
    SubExpression,
    Try,
    TypeLiteral,
    Unary,
    While,
)

_COMPARISONS = frozenset(
    f"{prefix}{operator}" for operator in OPERATORS for prefix in ("", "i", "c")
)
# How deeply functions may call functions (PowerShell's "call depth
# overflow"), well inside Python's own recursion limit.
MAX_CALL_DEPTH = 30
# A function's unnamed arguments beyond its parameters ($args), and the
# objects piped into it ($input): names no one can type after a dash.
ARGS = " args"
INPUT = " input"


class TypeRef:
    """
    A type literal's value: C{[datetime]}.
    """

    def __init__(self, name):
        self.name = name

    def __str__(self):
        return self.name


class Evaluation:
    """
    Expressions and statements; a L{exmta.shell.runtime.Session}.
    """

    # Statements.

    def execute(self, statement, emit):
        """
        Run one statement; its output goes to C{emit}.
        """
        kind = type(statement)
        if kind is Pipeline:
            self.runPipeline(statement, emit)
        elif kind is Assignment:
            self._assignment(statement)
        elif kind is If:
            for condition, body in statement.clauses:
                if truthy(self.valueOf(condition)):
                    self.runBlock(body, emit)
                    return
            if statement.otherwise is not None:
                self.runBlock(statement.otherwise, emit)
        elif kind is ForEach:
            items = _enumerate(self.valueOf(statement.collection))
            self._loop(statement, emit, lambda item: self.assign(statement.variable, item), items)
        elif kind is While:
            self._loop(statement, emit, None, None)
        elif kind is FunctionDefinition:
            self.functions[statement.name.lower()] = (statement, self._source, self._origin)
        elif kind is Try:
            self._try(statement, emit)
        elif kind is Flow:
            self._flow(statement, emit)
        else:  # pragma: no cover - the parser makes no other statement
            raise ShellError(f"Cannot run {kind.__name__}.")

    def runBlock(self, statements, emit):
        """
        Run statements one after the other: one that fails is shown and
        the next runs, unless the error must travel (see the module's
        docstring).  C{$?} tells how the last one went.
        """
        for statement in statements:
            before = self.errorCount
            try:
                self.execute(statement, emit)
            except ShellError as error:
                error.locate(self._source, statement.start, statement.end, self._origin)
                if error.scriptTerminating or self.tryDepth or self.strict:
                    raise
                self._error(error)
            self.succeeded = self.errorCount == before

    def valueOf(self, statement):
        """
        The value of a statement: an expression's own value, or what the
        statement outputs (C{None}, one object, or a tuple).
        """
        if (
            isinstance(statement, Pipeline)
            and statement.assignTo is None
            and len(statement.elements) == 1
            and not isinstance(statement.elements[0], Command)
        ):
            return self.evaluate(statement.elements[0])
        output = []
        self.execute(statement, output.append)
        return single(output)

    def _loop(self, node, emit, bind, items):
        def once():
            try:
                self.runBlock(node.statements, emit)
            except FlowRequest as request:
                if request.keyword == "break":
                    return False
                if request.keyword != "continue":
                    raise
            return True

        if items is None:
            while truthy(self.valueOf(node.condition)):
                if not once():
                    return
            return
        for item in items:
            bind(item)
            if not once():
                return

    def _try(self, node, emit):
        try:
            self.tryDepth += 1
            try:
                self.runBlock(node.statements, emit)
            finally:
                self.tryDepth -= 1
        except ShellError as error:
            catch = next((c for c in node.catches if _catches(c, error)), None)
            if catch is None:
                raise
            record = ErrorRecord(error)
            saved = {name: self.variables.get(name) for name in ("_", "psitem")}
            self.variables["_"] = self.variables["psitem"] = record
            try:
                self.runBlock(catch.statements, emit)
            finally:
                self.variables.update(saved)
        finally:
            if node.final is not None:
                self.runBlock(node.final, emit)

    def _flow(self, node, emit):
        if node.keyword == "throw":
            value = None if node.value is None else self.valueOf(node.value)
            if isinstance(value, ErrorRecord):
                raise value.error
            error = ShellError("ScriptHalted" if value is None else toText(value))
            error.thrown = value
            error.scriptTerminating = True
            raise error.locate(self._source, node.start, node.end, self._origin)
        if node.keyword == "return" and node.value is not None:
            self.execute(node.value, emit)
        raise FlowRequest(node.keyword, node)

    def _assignment(self, node):
        value = self.valueOf(node.value)
        target = node.target
        if node.operator != "=":
            current = self.evaluate(target)
            value = self._binaryValue(node.operator[0], current, value, node)
        if isinstance(target, Variable):
            self.assign(target.name, value, node)
            return
        container = self.evaluate(target.target)
        if isinstance(target, Member):
            key = target.name
        else:
            key = self.evaluate(target.index)
        if isinstance(container, Mapping):
            container[_existingKey(container, key)] = value
        elif dotnet.isList(container) and isinstance(target, Index) and isinstance(key, int):
            items = list(container)
            try:
                items[key] = value
            except IndexError:
                raise self._located("Index was outside the bounds of the array.", node) from None
            if not isinstance(target.target, Variable):
                raise self._located("Cannot assign to an element of this array.", node)
            self.assign(target.target.name, tuple(items), node)
        elif container is None:
            raise self._located(
                f"The property '{toText(key)}' cannot be found on this object. Verify that the "
                "property exists and can be set.", node,
            )
        else:
            try:
                setattr(container, key, value)
            except (AttributeError, TypeError):
                raise self._located(f"'{toText(key)}' is a ReadOnly property.", node) from None

    # Script blocks and functions.

    def invokeBlock(self, block, current=None, arguments=()):
        """
        Run a script block in the caller's scope, C{$_} set to C{current}.

        @return: what it output, as a list.
        """
        if not isinstance(block, ScriptBlock):
            raise ShellError(f'Cannot convert "{toText(block)}" to a script block.')
        if block.statements is None:
            error = block.error
            raise ShellError(error.message).locate(error.source, error.offset,
                                                   error.offset + error.length, self._origin)
        saved = {name: self.variables.get(name) for name in ("_", "psitem", "args")}
        self.variables["_"] = self.variables["psitem"] = current
        self.variables["args"] = tuple(arguments)
        source, self._source = self._source, block.source
        output = []
        try:
            self.runBlock(block.statements, output.append)
        except FlowRequest as request:
            if request.keyword != "return":
                raise
        finally:
            self._source = source
            self.variables.update(saved)
        return output

    def functionCmdlet(self, name):
        """
        @return: the L{Cmdlet} that runs the function C{name}, or C{None}.
        """
        found = self.functions.get(name.lower())
        if found is None:
            return None
        definition, source, origin = found
        parameters = []
        position = 0
        for declared in definition.parameters:
            switch = (declared.typeName or "").lower() == "switch"
            parameters.append(Parameter(
                declared.name, kind="switch" if switch else "value", mandatory=declared.mandatory,
                position=None if switch else position, pipeline=declared.pipeline,
            ))
            position += not switch
        parameters.append(Parameter(ARGS, remaining=True))
        parameters.append(Parameter(INPUT, pipeline=True))

        def run(context, **arguments):
            return self._callFunction(definition, source, origin, arguments)

        return Cmdlet(definition.name, run, tuple(parameters), collectInput=True)

    def _callFunction(self, definition, source, origin, arguments):
        if isinstance(self.variables, ChainMap) and len(self.variables.maps) > MAX_CALL_DEPTH:
            error = ShellError("The script failed due to call depth overflow.")
            error.scriptTerminating = True
            raise error
        local = {}
        outer = self.variables
        self.variables = ChainMap(local, *(outer.maps if isinstance(outer, ChainMap) else (outer,)))
        saved = self._source, self._origin
        self._source, self._origin = source, origin
        try:
            for declared in definition.parameters:
                if declared.name in arguments:
                    value = arguments[declared.name]
                    if declared.typeName and (declared.typeName or "").lower() != "switch":
                        value = self._cast(declared.typeName, value, declared)
                elif declared.default is not None:
                    value = self.evaluate(declared.default)
                else:
                    value = False if (declared.typeName or "").lower() == "switch" else None
                local[declared.name.lower()] = value
            rest = arguments.get(ARGS, ())
            local["args"] = rest if isinstance(rest, tuple) else (rest,)
            local["input"] = arguments.get(INPUT, ())
            output = []
            try:
                self.runBlock(definition.statements, output.append)
            except FlowRequest as request:
                if request.keyword != "return":
                    raise
            return output
        finally:
            self.variables = outer
            self._source, self._origin = saved

    # Expressions.

    def evaluate(self, node):
        """
        @return: the value of an expression node.
        """
        kind = type(node)
        if kind is Constant:
            return node.value
        if kind is Variable:
            if node.name == "?":
                return self.succeeded
            return lookupVariable(self.variables, node.name)
        if kind is ExpandableString:
            return "".join(
                part if isinstance(part, str) else toText(self.evaluate(part))
                for part in node.parts
            )
        if kind is Composite:
            return "".join(toText(self.evaluate(piece)) for piece in node.pieces)
        if kind is Member:
            return self._member(self.evaluate(node.target), node)
        if kind is MethodCall:
            target = self.evaluate(node.target)
            arguments = tuple(self.evaluate(argument) for argument in node.arguments)
            return self._invokeMethod(target, node, arguments)
        if kind is Index:
            return self._index(self.evaluate(node.target), self.evaluate(node.index), node)
        if kind is ArrayLiteral:
            return tuple(self.evaluate(item) for item in node.items)
        if kind is Paren:
            return self.valueOf(node.pipeline)
        if kind is SubExpression:
            return single(self._outputOf(node.statements))
        if kind is ArrayExpression:
            return tuple(self._outputOf(node.statements))
        if kind is HashLiteral:
            return {key: self.valueOf(value) for key, value in node.pairs}
        if kind is ScriptBlockLiteral:
            return node.block
        if kind is Binary:
            return self._binary(node)
        if kind is Unary:
            return self._unary(node)
        if kind is TypeLiteral:
            return TypeRef(node.name)
        if kind is Cast:
            return self._cast(node.type.name, self.evaluate(node.operand), node)
        if kind is StaticMember:
            arguments = None
            if node.arguments is not None:
                arguments = tuple(self.evaluate(argument) for argument in node.arguments)
            try:
                return dotnet.staticMember(node.type.name, node.name, arguments)
            except dotnet.MemberError as error:
                raise self._located(str(error), node) from None
        if kind is Pipeline:
            return self.valueOf(node)
        raise ShellError(f"Cannot evaluate {kind.__name__}.")

    def _outputOf(self, statements):
        output = []
        self.runBlock(statements, output.append)
        return output

    def _located(self, message, node):
        return ShellError(message, None, self._source, node.start, node.end, self._origin)

    def _member(self, target, node):
        if isinstance(target, Mapping) and not any(
            isinstance(key, str) and key.lower() == node.name.lower() for key in target
        ):
            lower = node.name.lower()
            if lower in ("count", "keys", "values"):
                return {"count": len(target), "keys": tuple(target), "values": tuple(target.values())}[lower]
        try:
            return evaluator.member(target, node.name)
        except FilterError as error:
            raise self._located(str(error), node) from None

    def _invokeMethod(self, target, node, arguments):
        try:
            return dotnet.callMethod(target, node.name, arguments)
        except dotnet.MemberError as error:
            if dotnet.isList(target) and target and "does not contain a method" in str(error):
                return tuple(self._invokeMethod(item, node, arguments) for item in target)
            raise self._located(str(error), node) from None
        except (ShellError, ExitRequest, FlowRequest, KeyboardInterrupt):
            raise
        except Exception as error:  # noqa: BLE001 - an object's own method failed
            raise self._located(
                f'Exception calling "{node.name}" with "{len(arguments)}" argument(s): "{error}"',
                node,
            ) from None

    def _index(self, target, index, node):
        if target is None:
            raise self._located("Cannot index into a null array.", node)
        if dotnet.isList(index):
            return tuple(self._index(target, item, node) for item in index)
        if isinstance(target, Mapping):
            key = _existingKey(target, index)
            return target.get(key)
        if isinstance(target, (str, list, tuple)):
            number = dotnet.toNumber(index)
            if number is None:
                raise self._located(
                    f'Cannot convert value "{toText(index)}" to type "System.Int32". '
                    'Error: "Input string was not in a correct format."', node,
                )
            try:
                return target[int(number)]
            except IndexError:
                return None
        found = getProperty(target, toText(index), _MISSING)
        if found is _MISSING:
            raise self._located(f"Unable to index into an object of type {dotnet.typeName(target)}.", node)
        return found

    def _cast(self, name, value, node):
        try:
            return dotnet.cast(name, value)
        except dotnet.MemberError as error:
            raise self._located(str(error), node) from None

    def _unary(self, node):
        value = self.evaluate(node.operand)
        if node.operator == "not":
            return not truthy(value)
        if node.operator == "-" and isinstance(value, datetime.timedelta):
            return -value
        number = self._number(value, node)
        return -number if node.operator == "-" else number

    def _binary(self, node):
        operator = node.operator
        if operator in ("and", "or", "xor"):
            left = truthy(self.evaluate(node.left))
            if operator == "and" and not left:
                return False
            if operator == "or" and left:
                return True
            right = truthy(self.evaluate(node.right))
            return left != right if operator == "xor" else right
        left, right = self.evaluate(node.left), self.evaluate(node.right)
        if operator in _COMPARISONS:
            try:
                return evaluator.compare(operator, left, right)
            except FilterError as error:
                raise self._located(str(error), node) from None
        return self._binaryValue(operator, left, right, node)

    def _binaryValue(self, operator, left, right, node):
        caseSensitive = operator[:1] == "c" and operator[1:] in ("replace", "split")
        bare = operator[1:] if operator[:1] in ("c", "i") and operator[1:] in ("replace", "split") else operator
        try:
            if bare == "replace":
                return _replace(left, right, caseSensitive)
            if bare == "split":
                return _split(left, right, caseSensitive)
            if bare == "join":
                items = left if dotnet.isList(left) else (left,)
                return toText(right).join(toText(item) for item in items)
            if bare in ("is", "isnot"):
                found = dotnet.isInstance(left, str(right))
                return found if bare == "is" else not found
            if bare == "as":
                try:
                    return dotnet.cast(str(right), left)
                except dotnet.MemberError:
                    return None
            if bare == "f":
                arguments = tuple(right) if dotnet.isList(right) else (right,)
                return dotnet.formatComposite(toText(left), arguments)
            if bare == "..":
                first, last = int(self._number(left, node)), int(self._number(right, node))
                step = 1 if last >= first else -1
                return tuple(range(first, last + step, step))
        except dotnet.MemberError as error:
            raise self._located(str(error), node) from None
        except re.error as error:
            raise self._located(f"The regular expression pattern is not valid: {error}.", node) from None
        return self._arithmetic(bare, left, right, node)

    def _arithmetic(self, operator, left, right, node):
        if operator == "+":
            if left is None:
                return right
            if dotnet.isList(left):
                return tuple(left) + (tuple(right) if dotnet.isList(right) else (right,))
            if isinstance(left, Mapping):
                merged = dict(left)
                for key, value in dict(right if isinstance(right, Mapping) else {}).items():
                    if _existingKey(merged, key) in merged:
                        raise self._located(
                            f"Item has already been added. Key in dictionary: '{toText(key)}'", node
                        )
                    merged[key] = value
                return merged
            if isinstance(left, str):
                return left + toText(right)
        if isinstance(left, (datetime.datetime, datetime.timedelta)):
            try:
                if operator == "+":
                    return left + right
                if operator == "-":
                    return left - right
            except TypeError:
                pass
            raise self._located(
                f"Method invocation failed because [{dotnet.typeName(left)}] does not contain a "
                f"method named 'op_{'Addition' if operator == '+' else 'Subtraction'}'.", node,
            )
        if operator == "*" and isinstance(left, str):
            return left * int(self._number(right, node))
        if operator == "*" and dotnet.isList(left):
            return tuple(left) * int(self._number(right, node))
        a = self._number(0 if left is None else left, node)
        b = self._number(right, node)
        if operator in ("/", "%") and b == 0:
            raise self._located("Attempted to divide by zero.", node)
        if operator == "+":
            return a + b
        if operator == "-":
            return a - b
        if operator == "*":
            return a * b
        if operator == "%":
            return a % b
        quotient = a / b
        return int(quotient) if isinstance(a, int) and isinstance(b, int) and a % b == 0 else quotient

    def _number(self, value, node):
        number = dotnet.toNumber(value)
        if number is None:
            raise self._located(
                f'Cannot convert value "{toText(value)}" to type "System.Int32". '
                'Error: "Input string was not in a correct format."', node,
            )
        return number


_MISSING = object()


def single(values):
    """
    PowerShell's result of a pipeline as a value: nothing is C{$null}, one
    object is itself, more are an array.
    """
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return tuple(values)


def _enumerate(value):
    """
    The objects a value sends down a pipeline: an array's items, one object,
    or nothing for C{$null}.
    """
    if value is None:
        return ()
    if dotnet.isList(value):
        return value
    return (value,)


def _existingKey(mapping, key):
    if isinstance(key, str):
        for existing in mapping:
            if isinstance(existing, str) and existing.lower() == key.lower():
                return existing
    return key


def _catches(catch, error):
    if not catch.types:
        return True
    kind = ErrorRecord(error).Exception.GetType()
    names = {kind.FullName.lower(), kind.Name.lower()}
    return any(
        name.lower() in names or name.lower() in ("exception", "system.exception")
        or (name.lower().endswith("runtimeexception") and error.thrown is not None)
        for name in catch.types
    )


def _pattern(text, caseSensitive):
    return re.compile(text, 0 if caseSensitive else re.IGNORECASE)


def _replace(left, right, caseSensitive):
    pattern, replacement = (tuple(right) + ("",))[:2] if dotnet.isList(right) else (right, "")
    regex = _pattern(toText(pattern), caseSensitive)

    def expand(match):
        def group(reference):
            name = reference.group(1) or reference.group(2)
            if reference.group() == "$$":
                return "$"
            try:
                return match.group(int(name) if name.isdigit() else name) or ""
            except IndexError:
                return reference.group()

        return re.sub(r"\$(\d+)|\$\{(\w+)\}|\$\$", group, toText(replacement))

    if dotnet.isList(left):
        return tuple(regex.sub(expand, toText(item)) for item in left)
    return regex.sub(expand, toText(left))


def _split(left, right, caseSensitive):
    pattern, limit = (tuple(right) + (0,))[:2] if dotnet.isList(right) else (right, 0)
    regex = _pattern(toText(pattern), caseSensitive)
    items = left if dotnet.isList(left) else (left,)
    parts = []
    for item in items:
        parts.extend(regex.split(toText(item), maxsplit=max(0, int(limit) - 1)))
    return tuple(parts)
