"""Math expressions typed on the command line, parsed by a whitelist and evaluated with chainrule.

    parse("(1-x)^2 + 100*(y-x^2)^2")(x, y)  ==  (1 - x)**2 + 100*(y - x**2)**2

The grammar, loosest binding first (the same as Python's, with ``^`` added)::

    sum     := term (('+' | '-') term)*          left-associative
    term    := factor (('*' | '/') factor)*      left-associative
    factor  := ('+' | '-') factor | power        so -x**2 is -(x**2)
    power   := primary (('**' | '^') factor)?    right-associative: 2**3**2 is 2**(3**2)
    primary := number | name | function '(' sum ')' | '(' sum ')'

``^`` means power, as it does in maths (in Python it would be XOR). Numbers are decimal
literals such as ``3``, ``2.5``, ``.5``, ``1e-3``; the constants are ``pi`` and ``e``; the
functions take exactly one argument: abs, cos, exp, log (alias ``ln``), relu, sigmoid, sin,
sqrt, tan, tanh. Every other name is a variable. Anything else (attributes, subscripts,
strings, comparisons, keyword arguments, lambdas, ...) is refused with an ExpressionError that
says what was refused and at which column.

The text is never handed to eval, exec or compile: a small tokenizer and a recursive-descent
parser translate it into a postfix program (numbers, names and operations in evaluation
order), and evaluation runs that program on a stack. Operators apply Python's operators to
the values, so Tensors record the graph and derivatives are exact; functions are looked up
on the ``chainrule`` module when the expression is evaluated.
"""

from __future__ import annotations

import keyword
import math
import operator
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["CONSTANTS", "FUNCTIONS", "Expression", "ExpressionError", "parse"]

MAX_LENGTH = 10_000
MAX_NESTING = 100

# name typed -> name of the chainrule function it calls (ln is log)
_FUNCTIONS = {
    "abs": "abs",
    "cos": "cos",
    "exp": "exp",
    "ln": "log",
    "log": "log",
    "relu": "relu",
    "sigmoid": "sigmoid",
    "sin": "sin",
    "sqrt": "sqrt",
    "tan": "tan",
    "tanh": "tanh",
}
FUNCTIONS: tuple[str, ...] = tuple(sorted(_FUNCTIONS))
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}

_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "**": operator.pow,
}
# binding strength, for printing with as few parentheses as round-tripping allows
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3, "**": 4}
_ATOM = 5


class ExpressionError(ValueError):
    """An expression that was refused: ``message`` says what, ``column`` (1-based) says where."""

    def __init__(self, message: str, text: str = "", column: int | None = None) -> None:
        self.message = message
        self.text = text
        self.column = column
        super().__init__(_describe(message, text, column))


def _describe(message: str, text: str, column: int | None) -> str:
    if column is None:
        return message
    # show the text with a caret under the column; a window of it when the text is long
    start = max(0, column - 1 - 40) if len(text) > 80 else 0
    shown = text[start : start + 80]
    shown = "".join(c if c.isprintable() and not c.isspace() else " " for c in shown)
    return f"{message} at column {column}\n    {shown}\n    {' ' * (column - 1 - start)}^"


# ---------------------------------------------------------------------------------------------
# tokens

_NUMBER = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")  # ASCII digits only
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VALID_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_WHITESPACE = " \t\r\n\f\v"
_PUNCTUATION = ("**", "+", "-", "*", "/", "^", "(", ")", ",")

# things that are never valid, so the tokenizer refuses them as soon as it meets them
_REFUSED_OPERATORS = {
    "==": "comparisons ('==') are not allowed",
    "!=": "comparisons ('!=') are not allowed",
    "<=": "comparisons ('<=') are not allowed",
    ">=": "comparisons ('>=') are not allowed",
    ":=": "assignment expressions (':=', the walrus) are not allowed",
    "//": "operator '//' is not supported (allowed: + - * / ** ^)",
    "<<": "operator '<<' is not supported (allowed: + - * / ** ^)",
    ">>": "operator '>>' is not supported (allowed: + - * / ** ^)",
    "->": "'->' is not allowed",
    "<": "comparisons ('<') are not allowed",
    ">": "comparisons ('>') are not allowed",
    "%": "operator '%' is not supported (allowed: + - * / ** ^)",
    "@": "operator '@' is not supported (allowed: + - * / ** ^)",
    "&": "operator '&' is not supported (allowed: + - * / ** ^)",
    "|": "operator '|' is not supported (allowed: + - * / ** ^)",
    "~": "operator '~' is not supported (allowed: + - * / ** ^)",
    "[": "subscripts and lists ('[') are not allowed",
    "]": "subscripts and lists (']') are not allowed",
    "{": "sets and dicts ('{') are not allowed",
    "}": "sets and dicts ('}') are not allowed",
    ":": "slices and lambdas (':') are not allowed",
    ";": "statements (';') are not allowed",
    "#": "comments ('#') are not allowed",
    "'": "strings are not allowed",
    '"': "strings are not allowed",
}
_REFUSED_KEYWORDS = {
    "import": "imports are not allowed",
    "from": "imports are not allowed",
    "lambda": "lambda expressions are not allowed",
    "and": "boolean operators ('and') are not allowed",
    "or": "boolean operators ('or') are not allowed",
    "not": "boolean operators ('not') are not allowed",
    "in": "comparisons ('in') are not allowed",
    "is": "comparisons ('is') are not allowed",
    "if": "conditional expressions ('if') are not allowed",
    "else": "conditional expressions ('else') are not allowed",
    "for": "comprehensions ('for') are not allowed",
}
_STRING_PREFIXES = {"r", "u", "b", "f", "br", "rb", "fr", "rf"}
_LOOKALIKES = {"−": "-", "–": "-", "×": "*", "·": "*", "÷": "/", "π": "pi", "²": "**2", "³": "**3"}


@dataclass(frozen=True)
class _Token:
    kind: str  # "number", "name", one of _PUNCTUATION, "end", or "error" (text is the message)
    text: str
    column: int  # 1-based
    value: float = 0.0


def _tokenize(text: str) -> list[_Token]:
    """The tokens of ``text``; the first thing that is never valid ends the list as an error."""
    tokens: list[_Token] = []

    def refuse(message: str, i: int) -> list[_Token]:
        tokens.append(_Token("error", message, i + 1))
        return tokens

    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _WHITESPACE:
            i += 1
            continue
        number = _NUMBER.match(text, i)
        if number:
            end = number.end()
            literal = number.group()
            after = text[end : end + 1]
            if after == "." and text[end + 1 : end + 2] in {*"0123456789.", ""}:
                return refuse(f"invalid number {text[i : end + 2]!r}", i)
            if after == "_":
                return refuse(f"underscores in numbers are not allowed ({literal}_...)", i)
            if after in ("e", "E") and text[end + 1 : end + 2] in ("+", "-", ""):
                return refuse(f"incomplete exponent in number {text[i : end + 2]!r}", i)
            if after in ("j", "J") and not _NAME.match(text, end + 1):
                return refuse(f"complex numbers are not allowed ({literal}{after})", i)
            value = float(literal)
            if not math.isfinite(value):
                return refuse(f"number {literal!r} is too large", i)
            tokens.append(_Token("number", literal, i + 1, value))
            i = end
            continue
        name = _NAME.match(text, i)
        if name:
            word = name.group()
            after = text[name.end() : name.end() + 1]
            if after in ("'", '"') and word.lower() in _STRING_PREFIXES:
                prefix = word.lower()
                kind = "bytes" if "b" in prefix else "f-strings" if "f" in prefix else "strings"
                return refuse(f"{kind} are not allowed", i)
            if word in _REFUSED_KEYWORDS:
                return refuse(_REFUSED_KEYWORDS[word], i)
            if word in ("True", "False", "None"):
                return refuse(f"{word!r} is not allowed: use numbers, variables, pi and e", i)
            if keyword.iskeyword(word):
                return refuse(f"the Python keyword {word!r} is not allowed", i)
            if word.startswith("__"):
                return refuse(f"names starting with '__' are not allowed ({word!r})", i)
            tokens.append(_Token("name", word, i + 1))
            i = name.end()
            continue
        if c == "=" and text[i : i + 2] != "==":
            keyword_argument = (
                len(tokens) >= 2 and tokens[-1].kind == "name" and tokens[-2].kind in ("(", ",")
            )
            if keyword_argument:
                return refuse(f"keyword arguments ({tokens[-1].text}=...) are not allowed", i)
            return refuse("assignment ('=') is not allowed", i)
        attribute = _NAME.match(text, i + 1) if c == "." else None
        if attribute:
            return refuse(f"attribute access ('.{attribute.group()}') is not allowed", i)
        refused = _REFUSED_OPERATORS.get(text[i : i + 2]) or _REFUSED_OPERATORS.get(c)
        if refused:  # before the punctuation, so that '//' is not read as '/' '/'
            return refuse(refused, i)
        symbol = "**" if text.startswith("**", i) else c
        if symbol not in _PUNCTUATION:
            hint = f" (did you mean {_LOOKALIKES[c]!r}?)" if c in _LOOKALIKES else ""
            return refuse(f"unexpected character {c!r}{hint}", i)
        tokens.append(_Token(symbol, symbol, i + 1))
        i += len(symbol)
    tokens.append(_Token("end", "", n + 1))
    return tokens


# ---------------------------------------------------------------------------------------------
# parser: recursive descent that emits the postfix program as it goes
#
# program instructions: ("num", float) ("const", name) ("var", name) ("call", chainrule name)
#                       ("neg", None) and (op, None) for op in + - * / **

_Instruction = tuple[str, Any]


class _Parser:
    def __init__(self, text: str, variables: tuple[str, ...] | None) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.position = 0
        self.variables = variables
        self.program: list[_Instruction] = []
        self.columns: list[int] = []  # the column of each instruction's token
        self.names: set[str] = set()
        self.depth = 0

    def emit(self, op: str, arg: Any, token: _Token) -> None:
        self.program.append((op, arg))
        self.columns.append(token.column)

    def error(self, message: str, token: _Token) -> ExpressionError:
        return ExpressionError(message, self.text, token.column)

    def peek(self) -> _Token:
        token = self.tokens[self.position]
        if token.kind == "error":
            raise self.error(token.text, token)
        return token

    def advance(self) -> _Token:
        token = self.peek()
        self.position += 1
        return token

    @contextmanager
    def nested(self, token: _Token) -> Iterator[None]:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(
                f"expression is nested too deeply (more than {MAX_NESTING} levels)", token
            )
        yield
        self.depth -= 1

    def expression(self) -> list[_Instruction]:
        self.sum()
        token = self.peek()
        if token.kind != "end":
            raise self.unexpected(token)
        return self.program

    def sum(self) -> None:
        self.term()
        while self.peek().kind in ("+", "-"):
            op = self.advance()
            self.term()
            self.emit(op.kind, None, op)

    def term(self) -> None:
        self.factor()
        while self.peek().kind in ("*", "/"):
            op = self.advance()
            self.factor()
            self.emit(op.kind, None, op)

    def factor(self) -> None:
        token = self.peek()
        if token.kind not in ("+", "-"):
            self.power()
            return
        self.advance()
        with self.nested(token):
            self.factor()
        if token.kind == "-":
            self.emit("neg", None, token)  # unary plus is the identity and leaves no trace

    def power(self) -> None:
        self.primary()
        token = self.peek()
        if token.kind in ("**", "^"):
            self.advance()
            with self.nested(token):
                self.factor()
            self.emit("**", None, token)

    def primary(self) -> None:
        token = self.advance()
        if token.kind == "number":
            self.emit("num", token.value, token)
        elif token.kind == "name":
            self.name(token)
        elif token.kind == "(":
            with self.nested(token):
                self.sum()
            closing = self.peek()
            if closing.kind != ")":
                if closing.kind == "end":
                    raise self.error(
                        f"missing ')' (the '(' at column {token.column} is never closed)", closing
                    )
                raise self.unexpected(closing)
            self.advance()
        elif token.kind in ("*", "**"):
            raise self.error(f"starred expressions ('{token.kind}x') are not allowed", token)
        elif token.kind == "end":
            raise self.error("incomplete expression: expected a number, a name or '('", token)
        else:
            raise self.error(f"expected a number, a name or '(' but found {token.text!r}", token)

    def name(self, token: _Token) -> None:
        word = token.text
        called = self.peek().kind == "("
        if word in _FUNCTIONS:
            if not called:
                raise self.error(
                    f"function {word!r} is used without an argument: write {word}(...)", token
                )
            self.call(token)
        elif called:
            if word in CONSTANTS:
                raise self.error(f"{word!r} is a constant, not a function", token)
            allowed = f"allowed functions: {', '.join(FUNCTIONS)}"
            if self.variables is not None and word in self.variables:
                message = (
                    f"{word!r} is a variable, not a function ({allowed}; for a product write '*')"
                )
            else:
                message = f"unknown function {word!r}; {allowed}"
            raise self.error(message, token)
        elif word in CONSTANTS:
            self.emit("const", word, token)
        else:
            if self.variables is not None and word not in self.variables:
                known = ", ".join(self.variables) if self.variables else "none"
                raise self.error(f"unknown variable {word!r} (the variables are: {known})", token)
            self.names.add(word)
            self.emit("var", word, token)

    def call(self, function: _Token) -> None:
        opening = self.advance()
        count = 0
        if self.peek().kind != ")":
            with self.nested(opening):
                while True:
                    self.sum()
                    count += 1
                    token = self.peek()
                    if token.kind == ",":
                        self.advance()
                    elif token.kind == ")":
                        break
                    elif token.kind == "end":
                        raise self.error(
                            f"missing ')' (the '(' at column {opening.column} is never closed)",
                            token,
                        )
                    else:
                        raise self.unexpected(token)
        self.advance()
        if count != 1:
            raise self.error(
                f"{function.text}() takes exactly 1 argument ({count} given)", function
            )
        self.emit("call", _FUNCTIONS[function.text], function)

    def unexpected(self, token: _Token) -> ExpressionError:
        """The error for a token that follows a complete operand but cannot continue it."""
        if token.kind in ("number", "name"):
            return self.error(
                f"missing operator before {token.text!r} (for a product write '*')", token
            )
        if token.kind == "(":
            return self.error(
                "'(' after an expression: only a function name can be called"
                " (for a product write '*')",
                token,
            )
        if token.kind == ")":
            return self.error("unmatched ')'", token)
        if token.kind == ",":
            return self.error("tuples and extra arguments (',') are not allowed here", token)
        return self.error(f"unexpected {token.text!r}", token)


# ---------------------------------------------------------------------------------------------
# the expression


def _function(name: str) -> Callable[[Any], Any]:
    import chainrule  # at call time: the parser needs nothing from the engine

    function = getattr(chainrule, name, None)
    if function is not None:
        return function  # type: ignore[no-any-return]
    if name == "tan":
        sin, cos = chainrule.sin, chainrule.cos  # type: ignore[attr-defined]
        return lambda x: sin(x) / cos(x)
    raise NotImplementedError(f"chainrule provides no function {name!r}")


def _format_number(value: float) -> str:
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def _to_text(program: Sequence[_Instruction]) -> str:
    stack: list[tuple[str, int]] = []  # (text, precedence of its outermost operation)

    def wrapped(text: str, parenthesize: bool) -> str:
        return f"({text})" if parenthesize else text

    for op, arg in program:
        if op == "num":
            stack.append((_format_number(arg), _ATOM))
        elif op in ("const", "var"):
            stack.append((arg, _ATOM))
        elif op == "call":
            stack.append((f"{arg}({stack.pop()[0]})", _ATOM))
        elif op == "neg":
            text, precedence = stack.pop()
            stack.append(("-" + wrapped(text, precedence < _PRECEDENCE["neg"]), _PRECEDENCE["neg"]))
        else:
            (right, right_precedence), (left, left_precedence) = stack.pop(), stack.pop()
            p = _PRECEDENCE[op]
            if op == "**":  # right-associative, and its exponent may be a signed factor
                text = (
                    wrapped(left, left_precedence <= p)
                    + "**"
                    + wrapped(right, right_precedence < _PRECEDENCE["neg"])
                )
            else:  # left-associative: keep a right operand of equal strength in parentheses
                text = (
                    wrapped(left, left_precedence < p)
                    + f" {op} "
                    + wrapped(right, right_precedence <= p)
                )
            stack.append((text, p))
    return stack[0][0]


def _sigmoid(v: float) -> float:
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    z = math.exp(v)  # no overflow for v < 0
    return z / (1.0 + z)


# the functions on Python floats, to check constant sub-expressions when parsing
_FLOAT_FUNCTIONS: dict[str, Callable[[float], float]] = {
    "abs": abs,
    "cos": math.cos,
    "exp": math.exp,
    "log": math.log,
    "relu": lambda v: max(v, 0.0),
    "sigmoid": _sigmoid,
    "sin": math.sin,
    "sqrt": math.sqrt,
    "tan": math.tan,
    "tanh": math.tanh,
}


def _constant_value(op: str, arg: Any, operands: list[float]) -> tuple[float | None, str]:
    """The value of one operation on constants, or (None, why it has no float64 value)."""
    try:
        if op == "call":
            value: Any = _FLOAT_FUNCTIONS[arg](operands[0])
        elif op == "neg":
            value = -operands[0]
        else:
            value = _BINARY[op](*operands)
    except OverflowError:
        value = math.inf
    except ZeroDivisionError:
        return None, "divides by zero"
    except ValueError:  # math domain error: log(0), sqrt(-1)
        return None, f"is undefined: {arg}() is not defined at {operands[0]:g}"
    if isinstance(value, complex):
        return None, "is not a real number (a negative number to a fractional power)"
    if not math.isfinite(value):
        return None, (
            "overflows: its value is beyond the range of float64 (about 1.8e308); "
            "use smaller numbers"
        )
    return float(value), ""


def _check_constants(text: str, program: Sequence[_Instruction], columns: Sequence[int]) -> None:
    """Refuse a sub-expression without variables whose value is not a finite float64.

    Such a constant is the same at every x, so it is computed once here (as evaluation would
    compute it, on Python floats) and an overflow such as 10**400 or 9**9**9**9, or 1/0 or
    log(0), is one clear error naming the smallest sub-expression that fails.
    """
    stack: list[tuple[float | None, int]] = []  # (value, or None if it has variables; start)
    for i, (op, arg) in enumerate(program):
        if op in ("num", "const", "var"):
            value = arg if op == "num" else CONSTANTS[arg] if op == "const" else None
            stack.append((value, i))
            continue
        count = 1 if op in ("call", "neg") else 2
        operands = stack[-count:]
        del stack[-count:]
        start = operands[0][1]
        if any(v is None for v, _ in operands):
            stack.append((None, start))
            continue
        value, why = _constant_value(op, arg, [v for v, _ in operands])  # type: ignore[misc]
        if value is None:
            column = min(columns[start : i + 1])
            error = ExpressionError(
                f"the constant {_to_text(program[start : i + 1])} (at column {column}) {why}"
            )
            error.text, error.column = text, column
            raise error
        stack.append((value, start))


def _natural_key(name: str) -> tuple[int, list[int | str], str]:
    # x, y, z first; then x2 before x10; the name itself breaks ties such as x1 / x01
    chunks = re.split(r"(\d+)", name)
    first = {"x": 0, "y": 1, "z": 2}.get(name, 3)
    return first, [int(c) if i % 2 else c for i, c in enumerate(chunks)], name


class Expression:
    """A parsed expression: call it with one value per variable, in ``variables`` order."""

    __slots__ = ("text", "variables", "_program")

    def __init__(
        self, text: str, variables: tuple[str, ...], program: Sequence[_Instruction]
    ) -> None:
        self.text = text
        self.variables = variables
        self._program = tuple(program)

    def __call__(self, *values: Any) -> Any:
        """The value at ``values`` (Tensors, arrays or floats), one per variable, in order."""
        if len(values) != len(self.variables):
            raise TypeError(
                f"{self.to_string()!r} takes {len(self.variables)} value(s)"
                f" ({', '.join(self.variables) or 'none'}), got {len(values)}"
            )
        return self._run(dict(zip(self.variables, values, strict=True)))

    def evaluate(self, mapping: Mapping[str, Any]) -> Any:
        """The value of the expression with each variable taken from ``mapping`` by name."""
        missing = [name for name in self.variables if name not in mapping]
        if missing:
            raise ValueError(f"no value given for variable(s): {', '.join(missing)}")
        return self._run({name: mapping[name] for name in self.variables})

    def _run(self, values: Mapping[str, Any]) -> Any:
        stack: list[Any] = []
        for op, arg in self._program:
            if op == "num":
                stack.append(arg)
            elif op == "var":
                stack.append(values[arg])
            elif op == "const":
                stack.append(CONSTANTS[arg])
            elif op == "call":
                stack.append(_function(arg)(stack.pop()))
            elif op == "neg":
                stack.append(-stack.pop())
            else:
                right = stack.pop()
                stack.append(_BINARY[op](stack.pop(), right))
        return stack[0]

    def to_string(self) -> str:
        """The normalized text: ``**`` for power, ``log`` for ``ln``, only needed parentheses."""
        return _to_text(self._program)

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"Expression({self.to_string()!r}, variables={self.variables!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Expression):
            return NotImplemented
        return (self.variables, self._program) == (other.variables, other._program)

    def __hash__(self) -> int:
        return hash((self.variables, self._program))


def _check_variables(variables: Sequence[str]) -> tuple[str, ...]:
    if isinstance(variables, str):
        raise TypeError("variables must be a sequence of names such as ('x', 'y'), not a string")
    names = tuple(variables)
    for name in names:
        if not isinstance(name, str) or not _VALID_NAME.match(name):
            raise ExpressionError(f"invalid variable name {name!r}")
        if name in _FUNCTIONS:
            raise ExpressionError(f"{name!r} is a function and cannot be a variable name")
        if name in CONSTANTS:
            raise ExpressionError(f"{name!r} is a constant and cannot be a variable name")
        if keyword.iskeyword(name) or name.startswith("__"):
            raise ExpressionError(f"{name!r} cannot be a variable name")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ExpressionError(f"variable(s) named twice: {', '.join(duplicates)}")
    return names


def parse(text: str, variables: Sequence[str] | None = None) -> Expression:
    """The Expression that ``text`` denotes; raises ExpressionError for anything not in the grammar.

    With ``variables`` the expression takes exactly those, in that order, and any other name
    is refused; without, it takes the names it uses: x, y, z first, then the others in natural
    order (x2 before x10).
    """
    if not isinstance(text, str):
        raise TypeError(f"expression must be a str, not {type(text).__name__}")
    names = None if variables is None else _check_variables(variables)
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression is too long ({len(text)} characters; at most {MAX_LENGTH})"
        )
    if not text.strip():
        raise ExpressionError("empty expression")
    parser = _Parser(text, names)
    try:
        program = parser.expression()
    except RecursionError:
        raise ExpressionError(
            f"expression is nested too deeply (more than {MAX_NESTING} levels)"
        ) from None
    _check_constants(text, program, parser.columns)
    if names is None:
        names = tuple(sorted(parser.names, key=_natural_key))
    return Expression(text, names, program)
