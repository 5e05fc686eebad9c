"""The whitelist parser for typed expressions: what it accepts, what it refuses, and where."""

from __future__ import annotations

import builtins
import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chainrule
from chainrule.expr import CONSTANTS, FUNCTIONS, Expression, ExpressionError, parse

# ---------------------------------------------------------------------------------------------
# accepted text: (typed, normalized, variables)

VALID = [
    ("x**2 - y**2", "x**2 - y**2", ("x", "y")),
    ("(1-x)**2 + 100*(y-x**2)**2", "(1 - x)**2 + 100 * (y - x**2)**2", ("x", "y")),
    ("sin(3*x)", "sin(3 * x)", ("x",)),
    ("exp(-x^2) * cos(y)", "exp(-x**2) * cos(y)", ("x", "y")),
    ("ln(x) + log(y)", "log(x) + log(y)", ("x", "y")),
    (
        "sqrt(abs(x)) + tanh(y) + sigmoid(z) + relu(x) + tan(y)",
        "sqrt(abs(x)) + tanh(y) + sigmoid(z) + relu(x) + tan(y)",
        ("x", "y", "z"),
    ),
    ("2*pi*e", "2 * pi * e", ()),
    ("1e-3 * x", "0.001 * x", ("x",)),
    ("2.50 + .5 + 7. + 1E2", "2.5 + 0.5 + 7 + 100", ()),
    ("  x\t+\ny  ", "x + y", ("x", "y")),
    ("+x", "x", ("x",)),
    ("-(-x)", "--x", ("x",)),
    ("x - -y", "x - -y", ("x", "y")),
    ("x * -y", "x * -y", ("x", "y")),
    ("2**-x", "2**-x", ("x",)),
    ("x^-1", "x**-1", ("x",)),
    ("(-2)**x", "(-2)**x", ("x",)),
    ("a - (b - c)", "a - (b - c)", ("a", "b", "c")),
    ("(a - b) - c", "a - b - c", ("a", "b", "c")),
    ("a / (b * c)", "a / (b * c)", ("a", "b", "c")),
    ("(x**y)**z", "(x**y)**z", ("x", "y", "z")),
    ("((((x))))", "x", ("x",)),
    ("-(x + y)", "-(x + y)", ("x", "y")),
    ("x_1 * X", "x_1 * X", ("X", "x_1")),
]


@pytest.mark.parametrize(("text", "normalized", "variables"), VALID)
def test_valid_expressions_parse_to_their_normal_form(text, normalized, variables):
    expr = parse(text)
    assert isinstance(expr, Expression)
    assert expr.text == text
    assert expr.variables == variables
    assert str(expr) == expr.to_string() == normalized
    assert parse(normalized, variables) == expr  # the normal form means the same thing
    assert repr(expr) == f"Expression({normalized!r}, variables={variables!r})"


def test_variables_are_x_y_z_first_then_in_natural_order():
    expr = parse("b10 + a + x10 + b2 + z + x2 + y + x + b1")
    assert expr.variables == ("x", "y", "z", "a", "b1", "b2", "b10", "x2", "x10")


def test_constants_and_functions_are_not_variables():
    assert parse("sin(x) * pi + e").variables == ("x",)


def test_explicit_variables_fix_the_order_and_may_include_unused_ones():
    expr = parse("y - x", variables=["y", "x", "w"])
    assert expr.variables == ("y", "x", "w")
    assert expr(5.0, 2.0, 100.0) == 3.0


def test_caret_is_power_with_the_binding_of_power():
    assert parse("x^2 + 1") == parse("x**2 + 1")
    assert parse("2^3^2")() == 512.0
    assert parse("x ^ 2")(3.0) == 9.0


def test_unary_minus_binds_looser_than_power():
    assert parse("-x**2") == parse("-(x**2)")
    assert parse("-x**2")(3.0) == -9.0
    assert parse("-2^2")() == -4.0


def test_power_is_right_associative():
    assert parse("2**3**2") == parse("2**(3**2)")
    assert parse("2**3**2") != parse("(2**3)**2")
    assert parse("2**3**2")() == 512.0


def test_products_and_sums_are_left_associative():
    assert parse("8 / 4 / 2")() == 1.0
    assert parse("8 - 4 - 2")() == 2.0
    assert parse("2 + 3 * 4")() == 14.0
    assert parse("-2 * 3 + 1")() == -5.0


def test_evaluate_takes_values_by_name_and_ignores_extra_ones():
    expr = parse("x - 2*y")
    assert expr.evaluate({"y": 1.0, "x": 5.0, "unused": 9.0}) == 3.0
    with pytest.raises(ValueError, match="no value given for variable.*y"):
        expr.evaluate({"x": 1.0})


def test_calling_with_the_wrong_number_of_values_is_a_type_error():
    with pytest.raises(TypeError, match=r"takes 2 value\(s\) \(x, y\), got 1"):
        parse("x + y")(1.0)


def test_numbers_are_python_floats():
    assert type(parse("3")()) is float
    assert parse("pi")() == pytest.approx(3.141592653589793)


def test_equal_expressions_hash_alike():
    assert hash(parse("x+1")) == hash(parse(" x + 1 "))
    assert parse("ln(x)") == parse("log(x)")
    assert parse("x", ["x", "y"]) != parse("x")


def test_long_flat_sums_are_not_nesting():
    text = "+".join(["x"] * 3000)
    expr = parse(text)
    assert expr(1.0) == 3000.0
    assert len(str(expr)) == len(" + ".join(["x"] * 3000))


def test_nesting_up_to_the_limit_is_accepted():
    assert parse("(" * 100 + "x" + ")" * 100)(2.0) == 2.0
    assert parse("-" * 100 + "x")(2.0) == 2.0


def test_never_calls_eval_exec_or_compile(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec/compile must not be used")

    for name in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, name, forbidden)
    assert parse("(1 - x)^2 + 100*(y - x^2)^2")(1.0, 1.0) == 0.0
    with pytest.raises(ExpressionError):
        parse("__import__('os').system('true')")


# ---------------------------------------------------------------------------------------------
# refused text: (typed, a pattern its message must contain); every message names a column

REFUSED = [
    ("x.__class__", r"attribute access \('\.__class__'\) .* column 2"),
    ("(x).real", r"attribute access .* column 4"),
    ("x[0]", r"subscripts .* column 2"),
    ("[x]", r"subscripts and lists"),
    ("{x}", r"sets and dicts"),
    ("__import__('os')", r"'__' .*'__import__'.* column 1"),
    ("x + __class__", r"'__class__'.* column 5"),
    ("import os", r"imports are not allowed at column 1"),
    ("from os import path", r"imports are not allowed"),
    ("lambda x: x", r"lambda expressions are not allowed"),
    ("x < y", r"comparisons \('<'\) .* column 3"),
    ("x == y", r"comparisons \('=='\)"),
    ("x != y", r"comparisons \('!='\)"),
    ("x >= y", r"comparisons \('>='\)"),
    ("x in y", r"comparisons \('in'\)"),
    ("x is y", r"comparisons \('is'\)"),
    ("x and y", r"boolean operators \('and'\) .* column 3"),
    ("x or y", r"boolean operators \('or'\)"),
    ("not x", r"boolean operators \('not'\)"),
    ("x if y else z", r"conditional expressions"),
    ("sin(x=1)", r"keyword arguments \(x=\.\.\.\) .* column 6"),
    ("x = 1", r"assignment \('='\) .* column 3"),
    ("(y := 2)", r"walrus.* column 4"),
    ("open(x)", r"unknown function 'open'; allowed functions: " + ", ".join(FUNCTIONS)),
    ("eval(x)", r"unknown function 'eval'"),
    ("exec(x)", r"unknown function 'exec'"),
    ("foo(x)", r"unknown function 'foo'.* column 1"),
    ("pi(2)", r"'pi' is a constant, not a function"),
    ("(x)(2)", r"only a function name can be called .* column 4"),
    ("2(x)", r"only a function name can be called"),
    ("sin(x)(y)", r"only a function name can be called .* column 7"),
    ("'abc'", r"strings are not allowed at column 1"),
    ('x + "abc"', r"strings are not allowed at column 5"),
    ("b'abc'", r"bytes are not allowed"),
    ("rb'abc'", r"bytes are not allowed"),
    ("f'{x}'", r"f-strings are not allowed"),
    ("*x", r"starred expressions .* column 1"),
    ("sin(*x)", r"starred expressions .* column 5"),
    ("sin(**x)", r"starred expressions"),
    ("sin", r"function 'sin' is used without an argument"),
    ("x * exp", r"function 'exp' is used without an argument.* column 5"),
    ("sin(x, y)", r"sin\(\) takes exactly 1 argument \(2 given\)"),
    ("cos()", r"cos\(\) takes exactly 1 argument \(0 given\)"),
    ("", r"empty expression"),
    ("   \t", r"empty expression"),
    ("x +", r"incomplete expression.* column 4"),
    ("x + / y", r"expected a number, a name or '\(' but found '/' at column 5"),
    ("x + * y", r"starred expressions .* column 5"),
    ("(x + 1", r"missing '\)' \(the '\(' at column 1 is never closed\) at column 7"),
    ("sin(x", r"missing '\)'"),
    ("x)", r"unmatched '\)' at column 2"),
    ("2x", r"missing operator before 'x' \(for a product write '\*'\) at column 2"),
    ("x y", r"missing operator before 'y'"),
    ("x, y", r"tuples .* column 2"),
    ("1j", r"complex numbers are not allowed"),
    ("1_000", r"underscores in numbers"),
    ("1e", r"incomplete exponent"),
    ("1.2.3", r"invalid number"),
    ("1e999", r"number '1e999' is too large"),
    ("True", r"'True' is not allowed"),
    ("None", r"'None' is not allowed"),
    ("yield x", r"the Python keyword 'yield'"),
    ("x % 2", r"operator '%' is not supported"),
    ("x // 2", r"operator '//' is not supported"),
    ("x @ y", r"operator '@' is not supported"),
    ("~x", r"operator '~' is not supported"),
    ("x; y", r"statements"),
    ("x # note", r"comments"),
    ("x $ y", r"unexpected character '\$'"),
    ("x − y", r"unexpected character '−' \(did you mean '-'\?\)"),
    ("2πx", r"did you mean 'pi'"),
    ("٣ * x", r"unexpected character '٣'"),
]


@pytest.mark.parametrize(("text", "pattern"), REFUSED)
def test_refusals_name_the_problem(text, pattern):
    with pytest.raises(ExpressionError, match=pattern) as info:
        parse(text)
    assert isinstance(info.value, ValueError)
    if text.strip():
        assert info.value.column is not None
        assert f"at column {info.value.column}" in str(info.value)


@pytest.mark.parametrize(
    ("text", "named", "why"),
    [
        ("9**9**9**9 + x", "9**9**9 (at column 4)", "overflows"),
        ("x + 10**400", "10**400 (at column 5)", "overflows"),
        ("x * (1e308 * 10)", "1e+308 * 10 (at column 6)", "overflows"),  # inf, no exception
        ("exp(1000) - x", "exp(1000) (at column 1)", "overflows"),
        ("x + 1/0", "1 / 0 (at column 5)", "divides by zero"),
        ("x * 0**-1", "0**-1", "divides by zero"),
        ("log(0) + x", "log(0)", "undefined"),
        ("x + sqrt(-1)", "sqrt(-1)", "undefined"),
        ("x + (-8)**(1/3)", "(-8)**(1 / 3)", "not a real number"),
        ("9**9**9**9", "9**9**9", "overflows"),  # a constant expression, as approx takes
    ],
)
def test_constants_without_a_float64_value_are_one_line_errors(text, named, why):
    with pytest.raises(ExpressionError) as info:
        parse(text)
    message = str(info.value)
    assert message.startswith(f"the constant {named}") and why in message
    assert "\n" not in message and info.value.column is not None


def test_large_but_finite_constants_and_constant_functions_are_kept():
    assert float(parse("1e308 + 0*x")(2.0)) == 1e308
    assert parse("sigmoid(-1000) + x")(1.0) == 1.0  # exp(1000) is not needed for it
    assert parse("2**-1074 * x")(1.0) == 5e-324


def test_the_message_points_a_caret_at_the_column():
    with pytest.raises(ExpressionError) as info:
        parse("x + y.real")
    assert info.value.column == 6
    assert info.value.message == "attribute access ('.real') is not allowed"
    assert str(info.value).splitlines()[1:] == ["    x + y.real", "         ^"]


def test_unknown_variables_are_refused_when_the_variables_are_given():
    with pytest.raises(ExpressionError, match=r"unknown variable 'z' \(the variables are: x, y\)"):
        parse("x + z", variables=("x", "y"))
    with pytest.raises(ExpressionError, match=r"unknown variable 'x' \(the variables are: none\)"):
        parse("x", variables=())
    with pytest.raises(ExpressionError, match=r"'x' is a variable, not a function"):
        parse("x(y + 1)", variables=("x", "y"))


@pytest.mark.parametrize("name", [*FUNCTIONS, *CONSTANTS])
def test_function_and_constant_names_cannot_be_variables(name):
    with pytest.raises(ExpressionError, match=rf"'{name}' is a (function|constant)"):
        parse("x", variables=["x", name])


@pytest.mark.parametrize(
    ("variables", "pattern"),
    [
        (["x", "x"], r"named twice: x"),
        (["1x"], r"invalid variable name '1x'"),
        (["x y"], r"invalid variable name"),
        (["lambda"], r"'lambda' cannot be a variable name"),
        (["__class__"], r"cannot be a variable name"),
    ],
)
def test_bad_variable_lists_are_refused(variables, pattern):
    with pytest.raises(ExpressionError, match=pattern):
        parse("1", variables=variables)


def test_wrong_argument_types_are_type_errors():
    with pytest.raises(TypeError, match="must be a str"):
        parse(b"x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a string"):
        parse("x*y", variables="xy")


def test_overlong_input_is_refused():
    with pytest.raises(ExpressionError, match=r"too long \(10001 characters; at most 10000\)"):
        parse("x" * 10_001)
    parse("+".join(["x"] * 5000))  # 9999 characters


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("(" * 101 + "x" + ")" * 101, 101),
        ("-" * 101 + "x", 101),
        ("2**" * 101 + "2", 302),
        ("sin(" * 101 + "x" + ")" * 101, 404),
        ("(" * 5000 + "x" + ")" * 4999, 101),
        ("-" * 9000 + "x", 101),
    ],
    ids=["parentheses", "signs", "powers", "calls", "5000 parentheses", "9000 signs"],
)
def test_deep_nesting_is_refused_not_a_recursion_error(text, column):
    with pytest.raises(
        ExpressionError, match=r"nested too deeply \(more than 100 levels\)"
    ) as info:
        parse(text)
    assert info.value.column == column


# ---------------------------------------------------------------------------------------------
# properties

_SOUP = st.lists(
    st.sampled_from(
        [
            "x",
            "y",
            "sin",
            "ln",
            "pi",
            "e",
            "1",
            "2.5",
            "1e-3",
            "(",
            ")",
            "+",
            "-",
            "*",
            "/",
            "**",
            "^",
            ",",
            " ",
            ".",
            "=",
            "'",
            "[",
            "__x",
            "lambda",
            "j",
            "_",
            "<",
            ":",
        ]
    ),
    max_size=30,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(string.printable, max_size=40), st.text(max_size=40), _SOUP))
def test_any_text_parses_or_raises_expression_error(text):
    try:
        expr = parse(text)
    except ExpressionError as error:
        assert error.message
        return
    assert parse(str(expr), expr.variables) == expr


_LEAF = st.one_of(
    st.sampled_from(["x", "y", "z", "a1", "a10", "pi", "e"]),
    st.integers(0, 10**6).map(str),
    st.floats(0, 1e30, allow_nan=False).map(repr),
    st.sampled_from(["1e-3", ".5", "7.", "2E+2"]),
)


def _extend(children):
    binary = st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**", "^"]), children)
    return st.one_of(
        binary.map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        binary.map(lambda t: f"{t[0]}{t[1]}{t[2]}"),
        children.map(lambda s: f"({s})"),
        st.tuples(st.sampled_from(["-", "+"]), children).map("".join),
        st.tuples(st.sampled_from(list(FUNCTIONS)), children).map(lambda t: f"{t[0]}({t[1]})"),
    )


_EXPRESSIONS = st.recursive(_LEAF, _extend, max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(_EXPRESSIONS)
def test_generated_expressions_parse_and_their_normal_form_round_trips(text):
    try:
        expr = parse(text)
    except ExpressionError as error:  # e.g. 1e30**1e30: a constant with no float64 value
        assert error.message.startswith("the constant ") and error.column is not None
        return
    normalized = str(expr)
    again = parse(normalized, expr.variables)
    assert again == expr
    assert str(again) == normalized


# ---------------------------------------------------------------------------------------------
# evaluation with chainrule: values against NumPy, derivatives against the hand-derived ones

NUMERIC = [
    ("x**2 - y**2", lambda x, y: x**2 - y**2),
    ("(1-x)^2 + 100*(y-x^2)^2", lambda x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2),
    ("sin(3*x)", lambda x, y: np.sin(3 * x)),
    ("exp(-x^2) * cos(y)", lambda x, y: np.exp(-(x**2)) * np.cos(y)),
    ("tan(x) + tanh(y)", lambda x, y: np.tan(x) + np.tanh(y)),
    ("ln(x) - log(y) / 2", lambda x, y: np.log(x) - np.log(y) / 2),
    ("sqrt(x*y) + abs(x - y)", lambda x, y: np.sqrt(x * y) + np.abs(x - y)),
    ("sigmoid(x - y)", lambda x, y: 1 / (1 + np.exp(-(x - y)))),
    ("relu(x - y) - relu(y - x)", lambda x, y: np.maximum(x - y, 0) - np.maximum(y - x, 0)),
    ("-x^2 / y", lambda x, y: -(x**2) / y),
    ("2^x^y", lambda x, y: 2 ** (x**y)),
    ("x^-1 + 1e-3*y", lambda x, y: 1 / x + 1e-3 * y),
    ("pi*x + e^y", lambda x, y: np.pi * x + np.e**y),
    ("8 / x / y", lambda x, y: 8 / x / y),
]


def _values(out):
    return out.data if isinstance(out, chainrule.Tensor) else np.asarray(out)


@pytest.mark.parametrize(("text", "reference"), NUMERIC)
def test_values_match_numpy(text, reference):
    x = np.array([0.3, 0.7, 1.1, 1.9])
    y = np.array([0.5, 1.3, 0.2, 0.9])
    expr = parse(text, ("x", "y"))
    expected = reference(x, y)
    np.testing.assert_allclose(_values(expr(x, y)), expected, rtol=1e-13)
    np.testing.assert_allclose(_values(expr(chainrule.tensor(x), y)), expected, rtol=1e-13)
    np.testing.assert_allclose(_values(expr.evaluate({"x": x, "y": y})), expected, rtol=1e-13)


# (text, d/dx, d/dy), derived by hand
DERIVATIVES = [
    ("x**2 - y**2", lambda x, y: 2 * x, lambda x, y: -2 * y),
    (
        "(1-x)^2 + 100*(y-x^2)^2",
        lambda x, y: -2 * (1 - x) - 400 * x * (y - x**2),
        lambda x, y: 200 * (y - x**2),
    ),
    ("sin(3*x) * y", lambda x, y: 3 * np.cos(3 * x) * y, lambda x, y: np.sin(3 * x)),
    (
        "exp(-x^2) * cos(y)",
        lambda x, y: -2 * x * np.exp(-(x**2)) * np.cos(y),
        lambda x, y: -np.exp(-(x**2)) * np.sin(y),
    ),
    ("tan(x*y)", lambda x, y: y / np.cos(x * y) ** 2, lambda x, y: x / np.cos(x * y) ** 2),
    ("ln(x) * sqrt(y)", lambda x, y: np.sqrt(y) / x, lambda x, y: np.log(x) / (2 * np.sqrt(y))),
    ("x^y", lambda x, y: y * x ** (y - 1), lambda x, y: x**y * np.log(x)),
    ("x / y", lambda x, y: 1 / y, lambda x, y: -x / y**2),
    ("-tanh(x)^2 + 0*y", lambda x, y: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2), lambda x, y: 0.0),
    (
        "sigmoid(x*y)",
        lambda x, y: y * np.exp(-x * y) / (1 + np.exp(-x * y)) ** 2,
        lambda x, y: x * np.exp(-x * y) / (1 + np.exp(-x * y)) ** 2,
    ),
    ("abs(x - y) + relu(x)", lambda x, y: np.sign(x - y) + (x > 0), lambda x, y: -np.sign(x - y)),
    ("pi * x * e", lambda x, y: np.pi * np.e, lambda x, y: 0.0),
]


@pytest.mark.parametrize(("text", "dx", "dy"), DERIVATIVES)
@pytest.mark.parametrize(("x", "y"), [(0.3, 0.8), (1.7, 0.45), (0.9, 2.2)])
def test_gradients_are_the_hand_derived_derivatives(text, dx, dy, x, y):
    expr = parse(text, ("x", "y"))
    gx, gy = chainrule.grad(expr, argnums=(0, 1))(x, y)
    assert gx == pytest.approx(dx(x, y), rel=1e-12, abs=1e-12)
    assert gy == pytest.approx(dy(x, y), rel=1e-12, abs=1e-12)


def test_backward_through_an_expression_of_a_tensor():
    t = chainrule.tensor([0.5, 1.5, -2.0], requires_grad=True)
    parse("x^3 - 2*x").evaluate({"x": t}).sum().backward()
    np.testing.assert_allclose(t.grad, 3 * t.data**2 - 2, rtol=1e-14)


def test_hessian_of_a_saddle():
    expr = parse("x^2 - y^2 + x*y")
    hessian = chainrule.hessian(lambda v: expr(v[0], v[1]))(np.array([0.3, -0.2]))
    np.testing.assert_allclose(hessian, [[2.0, 1.0], [1.0, -2.0]], atol=1e-12)
