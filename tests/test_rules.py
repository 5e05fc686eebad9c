"""The derivative table, rule by rule, against central differences (float64).

Parameterised over the table itself, so a rule added without sample inputs fails here.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.check import check_rule, table
from chainrule.rules import SAMPLES

NAMES = sorted(table())


def test_every_rule_has_sample_inputs():
    missing = [n for n in NAMES if n not in SAMPLES or not SAMPLES[n](np.random.default_rng(0))]
    assert not missing, f"rules without test inputs: {missing}"
    assert not set(SAMPLES) - set(NAMES), "samples for rules that do not exist"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rule_matches_central_differences(name, seed):
    row = check_rule(name, order=1, seed=seed)
    assert row.ok, str(row.report)


@pytest.mark.parametrize("name", NAMES)
def test_rule_second_order_matches_central_differences(name):
    """The vjps are differentiable themselves (create_graph): their derivatives check too."""
    row = check_rule(name, order=2)
    assert row.ok, str(row.report)


@pytest.mark.parametrize("name", NAMES)
def test_every_rule_has_a_formula(name):
    assert getattr(table()[name], "formula", "").strip(), f"{name} has no formula line"


@pytest.mark.parametrize("name", NAMES)
def test_float32_stays_float32(name):
    """Training runs in float32: no rule may silently upcast its output or its gradient."""
    fn = table()[name]
    for args, params in SAMPLES[name](np.random.default_rng(0)):
        ts = [
            cr.tensor(a.astype(np.float32), requires_grad=True)
            if isinstance(a, np.ndarray) and a.dtype.kind == "f"
            else a
            for a in args
        ]
        kw = dict(params)
        if name == "cast":
            kw["dtype"] = np.dtype(np.float32)
        out = fn(*ts, **kw)
        outs = out if isinstance(out, list) else [out]
        for o in outs:
            assert o.dtype == np.float32, f"{name} returned {o.dtype}"
        total = outs[0].sum()
        for o in outs[1:]:
            total = total + o.sum()
        total.backward()
        for t in ts:
            if isinstance(t, cr.Tensor) and t.grad is not None:
                assert t.grad.dtype == np.float32, f"{name}: gradient is {t.grad.dtype}"


def test_check_grad_catches_a_wrong_rule():
    """A check that cannot fail proves nothing: break a rule on purpose."""
    from chainrule.engine import Rule

    bad = Rule(lambda x: np.sin(x))
    bad.name = "bad_sin"
    bad.defvjp(lambda g, out, x: g * np.sin(x))  # should be cos
    rep = cr.check_grad(bad, np.array([0.3, 1.2]))
    assert not rep.ok
    assert "mismatch" in str(rep)


def test_check_grad_report_and_bad_input():
    rep = cr.check_grad(lambda x: (x**3).sum(), np.array([1.0, 2.0]))
    assert rep.ok and rep.max_abs_error < 1e-6
    assert "PASS" in str(rep)
    with pytest.raises(ValueError, match="non-finite"):
        cr.check_grad(lambda x: x.sum(), np.array([1.0, np.nan]))
    with pytest.raises(TypeError, match="must return a Tensor"):
        cr.check_grad(lambda x: 3.0, np.array([1.0]))


def test_gradcheck_cli_passes_and_prints_the_table(capsys):
    from chainrule.cli import main

    assert main(["gradcheck", "tanh", "softmax_cross_entropy", "conv2d"]) == 0
    out = capsys.readouterr().out
    assert "1 - f^2" in out and "p - onehot" in out and "PASS" in out
    assert "3 of 3 rules pass" in out
    assert main(["gradcheck", "no_such_rule"]) == 1


def test_gradcheck_cli_debug_shows_the_traceback_instead_of_one_line(capsys):
    from chainrule.cli import main

    assert main(["gradcheck", "tanh", "--order", "1", "--debug"]) == 0  # accepted
    assert "1 of 1 rules pass" in capsys.readouterr().out
    assert main(["gradcheck", "no_such_rule"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("chainrule gradcheck: error: unknown rule") and err.count("\n") == 1
    with pytest.raises(ValueError, match="unknown rule"):
        main(["gradcheck", "no_such_rule", "--debug"])
