"""The lecture's "Optimization" section, with exact derivatives from chainrule's engine.

    minimise f_0(x)  subject to  f_c(x) <= b_c,  c = 1..m

* least squares: ``lstsq(A, y)`` solves the normal equations A^T A x = A^T y (Cholesky; never
  an explicit inverse), with ``method="qr"|"svd"`` for badly conditioned or rank-deficient A;
  ``least_squares_gd`` reaches the same x by x_{t+1} = x_t - alpha 2 A^T (A x_t - y);
* gradient descent: ``gradient_descent(f, x0, step=...)`` with constant, diminishing,
  backtracking (Armijo) and exact (quadratic) step sizes;
* critical points: ``classify(f, x)`` reads minimum / maximum / saddle / degenerate from the
  Hessian's eigenvalues; ``critical_points(f, bounds)`` finds them by Newton's method;
* problem classes: ``is_convex`` / ``is_linear`` test the defining inequality / equality on
  random samples and return the evidence;
* constraints: ``minimize(f0, x0, constraints=[(f_c, b_c)], bounds=...)`` by the log-barrier
  interior-point method and projected gradient;
* pictures: ``contour_plot`` for functions of two variables.

Objectives are functions of one Tensor x returning a scalar Tensor (``from_expression`` makes
one from typed text). Results are :class:`OptimizeResult` objects (x, fun, grad_norm,
iterations, converged, message, history), as in SciPy.

    import chainrule.optimize as opt
    f = opt.from_expression("(1-x)**2 + 100*(y-x**2)**2")
    opt.gradient_descent(f, [-1.2, 1.0], max_iter=50_000).x      # ~ [1, 1]
    opt.classify(f, [1.0, 1.0]).kind                              # 'minimum'
"""

from .classes import ClassEvidence, is_convex, is_linear
from .constrained import minimize
from .critical import KINDS, MAX_STARTS, CriticalPoint, classify, critical_points
from .descent import (
    Backtracking,
    Constant,
    Diminishing,
    ExactLineSearch,
    StepRule,
    gradient_descent,
    step_rule,
)
from .least_squares import ConditionWarning, least_squares_gd, lstsq
from .objective import ExpressionFunction, constraint_from_text, from_expression, shared_variables
from .plot import contour_plot
from .result import OptimizeResult

__all__ = [
    "OptimizeResult",
    "lstsq",
    "least_squares_gd",
    "ConditionWarning",
    "gradient_descent",
    "StepRule",
    "Constant",
    "Diminishing",
    "Backtracking",
    "ExactLineSearch",
    "step_rule",
    "classify",
    "critical_points",
    "MAX_STARTS",
    "CriticalPoint",
    "KINDS",
    "is_convex",
    "is_linear",
    "ClassEvidence",
    "minimize",
    "contour_plot",
    "from_expression",
    "constraint_from_text",
    "shared_variables",
    "ExpressionFunction",
]
