"""5. Convolution and pooling, in terms of im2col (``unfold``) and its adjoint col2im (``fold``).

A convolution is one matrix product over the im2col matrix, Y = W im2col(x) + b, so its
derivatives are the matrix product's: de/dW = G im2col(x)^T, de/dx = col2im(W^T G). col2im is
the split rule for im2col: an input element copied into ~Fr*Fc windows receives the sum of
their gradients. Windows are laid out C x Fr x Fc x Ho x Wo x N (the batch last), so reshaped
to (C Fr Fc) x (Ho Wo N) they are the whole batch's im2col matrix.
"""

from __future__ import annotations

from .. import backend as B
from ..engine import ShapeError, composite, rule
from ._common import distinct, mask, n, pair, shape
from .shapes import mean, reshape, sum, transpose


def _stride(v):
    s = pair(v, "stride")
    if s[0] != s[1]:
        raise ValueError(f"stride: only equal strides along both axes are supported, got {v!r}")
    return s[0]


def _check_image(op, x):
    s = shape(x)
    if len(s) != 4:
        raise ShapeError(f"{op}: input must be N x C x H x W (4 axes), got shape {s}")
    return s


@rule(reads={"x": ""})
def unfold(x, window, stride=1, padding=0):
    """im2col: each input element is copied into every window that covers it (~Fr*Fc times)

    x: N x C x H x W -> windows C x Fr x Fc x Ho x Wo x N; reshaped to (C Fr Fc) x (Ho Wo N),
    the whole batch's im2col matrix.
    """
    return B.kernels.unfold(x, pair(window, "window"), _stride(stride), int(padding))


unfold.defvjp(
    lambda g, out, x, window, stride=1, padding=0: fold(
        g, x_shape=shape(x), stride=stride, padding=padding
    )
)
unfold.defsamples(
    lambda r: [
        ((n(r, 2, 2, 5, 4),), {"window": (3, 2)}),
        ((n(r, 1, 2, 5, 5),), {"window": (3, 3), "stride": 2, "padding": 1}),
        ((n(r, 1, 2, 4, 6),), {"window": (2, 2), "stride": 2}),  # windows tile the image
        ((n(r, 1, 1, 5, 5),), {"window": (2, 2), "stride": 2, "padding": 1}),
        ((n(r, 2, 1, 4, 4),), {"window": (3, 3), "padding": 1}),
    ]
)


@rule(reads={"cols": ""})
def fold(cols, x_shape, stride=1, padding=0):
    """col2im (adjoint of im2col): the copies' gradients are added back (the split rule)

    cols: C x Fr x Fc x Ho x Wo x N -> N x C x H x W (``x_shape``).
    """
    return B.kernels.fold(cols, tuple(x_shape), _stride(stride), int(padding))


fold.defvjp(
    lambda g, out, cols, x_shape, stride=1, padding=0: unfold(
        g, window=shape(cols)[1:3], stride=stride, padding=padding
    )
)
fold.defsamples(
    lambda r: [  # windows C x Fr x Fc x Ho x Wo x N
        ((n(r, 2, 3, 2, 3, 3, 2),), {"x_shape": (2, 2, 5, 4)}),
        ((n(r, 2, 3, 3, 3, 3, 1),), {"x_shape": (1, 2, 5, 5), "stride": 2, "padding": 1}),
        ((n(r, 2, 2, 2, 2, 3, 1),), {"x_shape": (1, 2, 4, 6), "stride": 2}),
        ((n(r, 1, 2, 2, 2, 2, 1),), {"x_shape": (1, 1, 5, 5), "stride": 2}),  # last row unused
        ((n(r, 1, 3, 3, 4, 4, 2),), {"x_shape": (2, 1, 4, 4), "padding": 1}),
    ]
)


@rule(saves=True, reads={"x": "w", "w": "x saved", "b": ""})
def conv2d(x, w, b=None, stride=1, padding=0):
    """Y = W im2col(x) + b:  de/dW = G im2col(x)^T,  de/db = G 1,  de/dx = col2im(W^T G)

    2-D convolution (cross-correlation): x N x C x H x W, w O x C x Fr x Fc, b O ->
    N x O x Ho x Wo with Ho = (H + 2 padding - Fr) // stride + 1 (likewise Wo).
    """
    return B.kernels.conv2d(x, w, b, stride, padding)


@conv2d.defparams
def _conv2d_params(x, w, b=None, stride=1, padding=0):
    _, c, h, wd = _check_image("conv2d", x)
    sw = shape(w)
    if len(sw) != 4 or sw[1] != c:
        raise ShapeError(
            f"conv2d: weight must be O x C x Fr x Fc with C = {c} input channels, got shape {sw} "
            f"for input shape {shape(x)}"
        )
    if b is not None and shape(b) != (sw[0],):
        raise ShapeError(f"conv2d: bias must have shape ({sw[0]},), got {shape(b)}")
    stride, padding = _stride(stride), int(padding)
    if padding < 0:
        raise ValueError(f"conv2d: padding must be >= 0, got {padding}")
    if h + 2 * padding < sw[2] or wd + 2 * padding < sw[3]:
        raise ShapeError(
            f"conv2d: a {sw[2]}x{sw[3]} kernel does not fit in a {h}x{wd} image (padding {padding})"
        )
    return {"stride": stride, "padding": padding}


def _im2col_matrix(x, w, stride, padding):
    o, c, fr, fc = shape(w)
    cols = unfold(x, window=(fr, fc), stride=stride, padding=padding)  # C Fr Fc Ho Wo N
    return reshape(cols, shape=(c * fr * fc, -1)), shape(cols)


def _g_matrix(g):
    """G (N x O x Ho x Wo) as O x (Ho Wo N), the columns in im2col's order."""
    return reshape(transpose(g, axes=(1, 2, 3, 0)), shape=(shape(g)[1], -1))


def _conv2d_vjp_x(g, out, x, w, b=None, stride=1, padding=0, saved=None):
    o, c, fr, fc = shape(w)
    _, _, ho, wo = shape(g)
    dcols = transpose(reshape(w, shape=(o, -1)), axes=(1, 0)) @ _g_matrix(g)  # W^T G
    dcols = reshape(dcols, shape=(c, fr, fc, ho, wo, shape(x)[0]))
    return fold(dcols, x_shape=shape(x), stride=stride, padding=padding)


def _conv2d_vjp_w(g, out, x, w, b=None, stride=1, padding=0, saved=None):
    xm, _ = _im2col_matrix(x, w, stride, padding)
    return reshape(_g_matrix(g) @ transpose(xm, axes=(1, 0)), shape=shape(w))  # G im2col(x)^T


conv2d.defvjp(
    _conv2d_vjp_x,
    _conv2d_vjp_w,
    lambda g, out, x, w, b=None, stride=1, padding=0, saved=None: sum(g, axis=(0, 2, 3)),
)
conv2d.defsamples(
    lambda r: [
        ((n(r, 2, 2, 6, 5), n(r, 3, 2, 3, 3), n(r, 3)), {}),
        ((n(r, 1, 2, 5, 5), n(r, 2, 2, 3, 3)), {"stride": 2, "padding": 1}),
        ((n(r, 2, 1, 4, 5), n(r, 2, 1, 3, 2), n(r, 2)), {"padding": 1}),
        # a kernel of more than 256 numbers (NumPy's kernel then uses one product for all rows)
        ((n(r, 2, 3, 4, 4), n(r, 10, 3, 3, 3) / 4, n(r, 10)), {"padding": 1}),
    ]
)


def _pool_params(op):
    def prepare(x, kernel_size, stride=None):
        _, _, h, w = _check_image(op, x)
        k = pair(kernel_size, "kernel_size")
        s = _stride(stride if stride is not None else k)
        if k[0] > h or k[1] > w:
            raise ShapeError(f"{op}: a {k[0]}x{k[1]} window does not fit in a {h}x{w} image")
        return {"kernel_size": k, "stride": s}

    return prepare


@rule(saves=True, reads={"x": "saved"})
def max_pool2d(x, kernel_size, stride=None):
    """d maxpool/dx: each window's gradient goes to its saved argmax (first maximum on ties)

    Max pooling: x N x C x H x W -> N x C x Ho x Wo (stride defaults to the kernel size).
    Ties go to the first maximum in the window's row-major order, as in PyTorch. The saved
    argmax is a mask in the layout of :func:`unfold`'s windows (C x kr x kc x Ho x Wo x N).
    """
    return B.kernels.max_pool2d(x, kernel_size, stride)


def _max_pool2d_vjp(g, out, x, kernel_size, stride=None, saved=None):
    c, _, _, ho, wo, _ = shape(saved)
    d = reshape(transpose(g, axes=(1, 2, 3, 0)), shape=(c, 1, 1, ho, wo, -1))  # G per window
    return fold(d * mask(saved, g), x_shape=shape(x), stride=stride, padding=0)


max_pool2d.defvjp(_max_pool2d_vjp)
max_pool2d.defparams(_pool_params("max_pool2d"))
max_pool2d.defsamples(
    lambda r: [
        ((distinct(r, (2, 2, 4, 4)),), {"kernel_size": 2}),
        ((distinct(r, (1, 2, 5, 5)),), {"kernel_size": 3, "stride": 1}),
        ((distinct(r, (1, 1, 5, 5)),), {"kernel_size": 2}),
        ((distinct(r, (1, 2, 5, 6)),), {"kernel_size": (2, 3), "stride": 1}),
    ]
)


@composite("d avgpool/dx: each window's gradient is divided equally among its Fr*Fc inputs")
def avg_pool2d(x, kernel_size, stride=None):
    """Average pooling: x N x C x H x W -> N x C x Ho x Wo (stride defaults to the kernel size)."""
    p = _pool_params("avg_pool2d")(x, kernel_size, stride)
    win = unfold(x, window=p["kernel_size"], stride=p["stride"], padding=0)  # C kr kc Ho Wo N
    return transpose(mean(win, axis=(1, 2)), axes=(3, 0, 1, 2))


avg_pool2d.defsamples(
    lambda r: [
        ((n(r, 2, 2, 4, 4),), {"kernel_size": 2}),
        ((n(r, 1, 1, 5, 5),), {"kernel_size": 3, "stride": 2}),
    ]
)

__all__ = [  # this section's entries (tests/test_layout.py checks them against the table)
    "unfold",
    "fold",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
]
