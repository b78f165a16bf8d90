"""Op table, linear part: Conv, ConvTranspose, MatMul, Gemm, pooling and Resize."""

from __future__ import annotations

import numpy as np

from graphopt.testing._ops_core import (
    ALL,
    FLOATS,
    MAX_DIM,
    MAX_ELEMENTS,
    NO_DOUBLE,
    Builder,
    Ctx,
    OpSpec,
    T,
    broadcast,
    divisors,
    fits,
    max_abs,
    numel,
)


def _pads(ctx: Ctx, d: int, k: int, eff: int, s: int, most: int) -> tuple[int, int]:
    """Begin/end pads below the kernel size that keep the output dim <= ``most``."""
    cap = most * s - 1 - d + eff
    begin = ctx.integer(0, min(k - 1, cap))
    return begin, ctx.integer(0, min(k - 1, cap - begin))


def _window(ctx: Ctx, d: int, dilate: bool, pad: bool, most: int) -> tuple[int, int, int, int, int]:
    """(kernel, stride, dilation, pad_begin, pad_end) of one spatial dim: the window fits in d, pads
    only without dilation (so no window lies wholly in padding), output dim <= ``most``."""
    dil = ctx.integer(1, 2) if dilate and d >= 3 else 1
    k = ctx.integer(1, min(3, (d - 1) // dil + 1))
    s = ctx.integer(1, 2)
    pb, pe = _pads(ctx, d, k, dil * (k - 1) + 1, s, most) if pad and dil == 1 else (0, 0)
    return k, s, dil, pb, pe


def _conv_attrs(ctx: Ctx, wins: list[tuple[int, int, int, int, int]]) -> dict[str, object]:
    """kernel_shape/strides/dilations/pads attributes, each left out when it is the default."""
    ks, ss, ds = [w[0] for w in wins], [w[1] for w in wins], [w[2] for w in wins]
    pads = [w[3] for w in wins] + [w[4] for w in wins]
    return {"kernel_shape": ks, "strides": ss if any(v != 1 for v in ss) or ctx.rarely() else None,
            "dilations": ds if any(v != 1 for v in ds) else None, "pads": pads if any(pads) else None}


def _channels(ctx: Ctx, c: int, cap: int) -> tuple[int, int]:
    """(group, output channels): groups divide c (depthwise included), outputs a multiple of group."""
    groups = [g for g in divisors(c) if g <= cap]
    group = ctx.choice(sorted(groups, key=lambda g: (g != 1, g != c)))  # 1, depthwise, the rest
    return group, group * ctx.integer(1, cap // group)


def _conv(ctx: Ctx, x: T) -> None:
    """Conv (1-D or 2-D) with groups, strides, pads or auto_pad, dilations and an optional bias."""
    n, c, *spatial = x.shape
    auto = ctx.choice(("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")) if ctx.rarely() else "NOTSET"
    # onnxruntime rejects dilations with auto_pad SAME_UPPER/SAME_LOWER
    wins = [_window(ctx, d, not auto.startswith("SAME"), auto == "NOTSET", MAX_DIM) for d in spatial]
    if auto.startswith("SAME"):
        out = [-(-d // w[1]) for d, w in zip(spatial, wins)]
    else:
        out = [(d + w[3] + w[4] - w[2] * (w[0] - 1) - 1) // w[1] + 1 for d, w in zip(spatial, wins)]
    group, c_out = _channels(ctx, c, min(MAX_DIM, MAX_ELEMENTS // (n * numel(out))))
    fan_in = c // group * numel([w[0] for w in wins])
    weight, w = ctx.weight([c_out, c // group] + [w[0] for w in wins], x.dtype, fan_in ** -0.5)
    gain = float(np.abs(w.astype(np.float64)).reshape(c_out, -1).sum(1).max()) if w is not None \
        else float(fan_in)
    inputs, bias_bound = [x.name, weight], 0.0
    if ctx.flag():
        bias, b = ctx.weight([c_out], x.dtype)
        inputs.append(bias)
        bias_bound = max_abs(b, 1.0)
    attrs = _conv_attrs(ctx, wins)
    if auto != "NOTSET":
        attrs.update(auto_pad=auto, pads=None)
    if ctx.rarely():
        attrs["kernel_shape"] = None  # inferred from the weight
    ctx.emit("Conv", inputs, x.dtype, [n, c_out] + out, x.bound * gain + bias_bound,
             group=group if group > 1 else None, **attrs)


def _transpose_dim(ctx: Ctx, d: int) -> tuple[int, int, int, int, int, int]:
    """(kernel, stride, output_padding, pad_begin, pad_end, out) of one ConvTranspose dim.

    out = stride * (d - 1) + output_padding + kernel - pads, with each pad <= kernel - 1 and
    output_padding < stride; only choices that can land in [1, MAX_DIM] are offered.
    """
    k = ctx.integer(1, 3)
    s = ctx.choice([s for s in (1, 2, 3) if s * (d - 1) + k - MAX_DIM <= 2 * (k - 1)])
    out_pad = ctx.choice([p for p in range(s) if s * (d - 1) + k + p - MAX_DIM <= 2 * (k - 1)])
    base = s * (d - 1) + k + out_pad
    total = ctx.integer(max(0, base - MAX_DIM), min(base - 1, 2 * (k - 1)))
    begin = ctx.integer(max(0, total - (k - 1)), min(total, k - 1))
    return k, s, out_pad, begin, total - begin, base - total


def _conv_transpose(ctx: Ctx, x: T) -> None:
    """ConvTranspose with groups, strides, output_padding and pads; optional bias."""
    n, c, *spatial = x.shape
    dims = [_transpose_dim(ctx, d) for d in spatial]
    out = [t[5] for t in dims]
    group, c_out = _channels(ctx, c, min(MAX_DIM, MAX_ELEMENTS // (n * numel(out))))
    kernel = [t[0] for t in dims]
    fan_in = c // group * numel(kernel)
    weight, w = ctx.weight([c, c_out // group] + kernel, x.dtype, fan_in ** -0.5)
    if w is None:
        gain = float(fan_in)
    else:  # output channel j of group g sums over that group's input channels and the kernel taps
        per = np.abs(w.astype(np.float64)).reshape(group, c // group, c_out // group, -1)
        gain = float(per.sum(axis=(1, 3)).max())
    inputs, bias_bound = [x.name, weight], 0.0
    if ctx.flag():
        bias, b = ctx.weight([c_out], x.dtype)
        inputs.append(bias)
        bias_bound = max_abs(b, 1.0)
    pads = [t[3] for t in dims] + [t[4] for t in dims]
    strides, out_pads = [t[1] for t in dims], [t[2] for t in dims]
    ctx.emit("ConvTranspose", inputs, x.dtype, [n, c_out] + out, x.bound * gain + bias_bound,
             kernel_shape=kernel if ctx.flag() else None, group=group if group > 1 else None,
             strides=strides if any(s > 1 for s in strides) else None,
             output_padding=out_pads if any(out_pads) else None, pads=pads if any(pads) else None)


def _conv_ok(ctx: Ctx, x: T) -> bool:
    """Rank 3 or 4 and the worst gain (8 channels x 3x3 kernel, plus a bias) stays in bounds."""
    return x.rank in (3, 4) and ctx.within(x.dtype, x.bound * ctx.gain(x.dtype, 8 * 9) + 1.0)


def _pool(op: str) -> Builder:
    """MaxPool/AveragePool with kernels, strides, pads (ceil_mode, count_include_pad, dilations)."""
    def build(ctx: Ctx, x: T) -> None:
        """Emit the pooling node."""
        dilate = op == "MaxPool" or ctx.cfg.opset >= 19
        wins = [_window(ctx, d, dilate, True, d) for d in x.shape[2:]]  # pads never grow the tensor
        floor, ceil = [], []
        for d, (k, s, dil, pb, pe) in zip(x.shape[2:], wins):
            span = d + pb + pe - dil * (k - 1) - 1
            floor.append(span // s + 1)
            # ceil_mode only where all conventions agree: its extra window starts inside the input.
            # A last window starting past it is kept by onnx shape inference before opset 22 but
            # dropped by onnxruntime (and by onnx from opset 22).
            extra = -(-span // s) + 1
            ceil.append(extra if (extra - 1) * s < d + pb and extra <= d else None)
        use_ceil = None not in ceil and ceil != floor and ctx.rarely()
        out = ceil if use_ceil else floor
        attrs = _conv_attrs(ctx, wins)
        if op == "AveragePool" and attrs["pads"] is not None and ctx.flag():
            attrs["count_include_pad"] = 1
        ctx.emit(op, [x.name], x.dtype, list(x.shape[:2]) + out, x.bound,
                 ceil_mode=1 if use_ceil else None, **attrs)
    return build


def _global_pool(ctx: Ctx, x: T) -> None:
    """GlobalAveragePool: spatial dims become 1."""
    ctx.emit("GlobalAveragePool", [x.name], x.dtype, x.shape[:2] + (1,) * (x.rank - 2), x.bound)


def _matmul_forms(ctx: Ctx, x: T) -> list[tuple[str, T | None, tuple[int, ...]]]:
    """Ways to multiply x: by a weight on the right/left, or by a pool tensor y on the right."""
    forms: list[tuple[str, T | None, tuple[int, ...]]] = [("right", None, ())]
    if x.rank >= 2:
        forms.append(("left", None, ()))
    for y in ctx.operands(x.dtype):
        if y.rank >= 2 and y.shape[-2] == x.shape[-1]:
            batch = broadcast(x.shape[:-2], y.shape[:-2])
            out = None if batch is None else batch + x.shape[-2:-1] + y.shape[-1:]
            if out is not None and fits(out) and ctx.within(x.dtype, x.bound * y.bound * x.shape[-1]):
                forms.append(("pool", y, out))
    return forms


def _matmul(ctx: Ctx, x: T) -> None:
    """MatMul of x with a weight (either side, scaled by 1/sqrt(K)) or with another pool tensor."""
    form, y, out = ctx.choice(_matmul_forms(ctx, x))
    if y is not None:
        ctx.emit("MatMul", [x.name, y.name], x.dtype, out, x.bound * y.bound * x.shape[-1])
        return
    k = x.shape[-1] if form == "right" else x.shape[-2]
    m = ctx.integer(1, min(MAX_DIM, MAX_ELEMENTS // (numel(x.shape) // k)))
    axis = 0 if form == "right" else 1  # the axis of the weight that is summed over
    weight, w = ctx.weight((k, m) if form == "right" else (m, k), x.dtype, k ** -0.5)
    gain = ctx.gain(x.dtype, k) if w is None else float(np.abs(w.astype(float)).sum(axis).max())
    if form == "right":
        ctx.emit("MatMul", [x.name, weight], x.dtype, x.shape[:-1] + (m,), x.bound * gain)
    else:
        ctx.emit("MatMul", [weight, x.name], x.dtype, x.shape[:-2] + (m, x.shape[-1]), x.bound * gain)


def _gemm(ctx: Ctx, x: T) -> None:
    """Gemm: alpha * op(x) @ op(B) + beta * C, with transA/transB and C broadcast to [M, N]."""
    trans_a, trans_b = ctx.flag(), ctx.flag()
    m, k = x.shape[::-1] if trans_a else x.shape
    n = ctx.integer(1, MAX_DIM)
    weight, w = ctx.weight((n, k) if trans_b else (k, n), x.dtype, k ** -0.5)
    gain = ctx.gain(x.dtype, k) if w is None else \
        float(np.abs(w.astype(float)).sum(1 if trans_b else 0).max())
    alpha, beta = ctx.choice((None, 0.5, 2.0)), ctx.choice((None, 0.5, -1.0))
    bound = (alpha or 1.0) * x.bound * gain
    inputs = [x.name, weight]
    if ctx.flag():
        c, cw = ctx.weight(ctx.choice(((n,), (m, n), (), (1, n), (m, 1))), x.dtype)
        inputs.append(c)
        bound += abs(beta or 1.0) * max_abs(cw, 1.0)
    ctx.emit("Gemm", inputs, x.dtype, (m, n), bound, alpha=alpha, beta=beta,
             transA=1 if trans_a else None, transB=1 if trans_b else None)


def _resize_dims(ctx: Ctx, x: T, use_scales: bool) -> tuple[list[float], list[int]]:
    """Scales and output sizes of H and W: each <= MAX_DIM and N*C*H*W <= MAX_ELEMENTS."""
    room = MAX_ELEMENTS // (x.shape[0] * x.shape[1])
    (h, w), scales, out = x.shape[2:], [], []
    for d, cap in ((h, min(MAX_DIM, room // w)), (w, 0)):
        cap = cap or min(MAX_DIM, room // out[0])  # W gets the room H left (at least its own size)
        if use_scales:
            s = ctx.choice([s for s in (1.0, 2.0, 0.5, 1.5, 3.0, 0.25, 4.0) if 1 <= int(d * s) <= cap])
            scales.append(s)
            out.append(int(d * s))
        else:
            out.append(ctx.integer(1, cap))
    return scales, out


def _resize(ctx: Ctx, x: T) -> None:
    """Resize of H and W (nearest or linear) by scales or sizes; N and C are kept."""
    mode, use_scales = ctx.choice(("nearest", "linear")), ctx.flag()
    scales, out = _resize_dims(ctx, x, use_scales)
    modes = ["half_pixel", "asymmetric", "pytorch_half_pixel"]
    if min(out) > 1:  # align_corners divides by (out - 1)
        modes.append("align_corners")
    if mode == "linear" and ctx.cfg.opset >= 19:
        modes.append("half_pixel_symmetric")
    axes = ctx.cfg.opset >= 18 and ctx.rarely()
    if use_scales:
        params = ["", ctx.const(np.array(([] if axes else [1.0, 1.0]) + scales, dtype=np.float32))]
    else:
        params = ["", "", ctx.ints(([] if axes else list(x.shape[:2])) + out)]
    nearest = ctx.choice((None, "floor", "ceil", "round_prefer_ceil")) if mode == "nearest" else None
    ctx.emit("Resize", [x.name] + params, x.dtype, x.shape[:2] + tuple(out), x.bound, mode=mode,
             coordinate_transformation_mode=ctx.choice([None] + modes), nearest_mode=nearest,
             axes=[2, 3] if axes else None)


def _matmul_ok(ctx: Ctx, x: T) -> bool:
    """A weight of K <= 8 rows keeps x within bounds."""
    return ctx.within(x.dtype, x.bound * ctx.gain(x.dtype, MAX_DIM))


def _gemm_ok(ctx: Ctx, x: T) -> bool:
    """Rank 2 and the worst Gemm (alpha 2, beta -1) stays in bounds."""
    return x.rank == 2 and ctx.within(x.dtype, 2 * x.bound * ctx.gain(x.dtype, MAX_DIM) + 1.0)


SPATIAL = (3, 4)
SPECS: tuple[OpSpec, ...] = (
    OpSpec("MatMul", _matmul, ALL, accepts=_matmul_ok, total_ranks=(1, 2, 3, 4)),
    OpSpec("Conv", _conv, NO_DOUBLE, accepts=_conv_ok, total_ranks=SPATIAL),
    OpSpec("Gemm", _gemm, FLOATS, accepts=_gemm_ok, total_ranks=(2,)),
    OpSpec("MaxPool", _pool("MaxPool"), FLOATS, accepts=lambda c, x: x.rank in SPATIAL,
           total_ranks=SPATIAL),
    OpSpec("AveragePool", _pool("AveragePool"), NO_DOUBLE, accepts=lambda c, x: x.rank in SPATIAL,
           total_ranks=SPATIAL),
    OpSpec("GlobalAveragePool", _global_pool, NO_DOUBLE, accepts=lambda c, x: x.rank in SPATIAL,
           total_ranks=SPATIAL),
    OpSpec("ConvTranspose", _conv_transpose, NO_DOUBLE, accepts=_conv_ok, total_ranks=SPATIAL),
    OpSpec("Resize", _resize, NO_DOUBLE, accepts=lambda c, x: x.rank == 4, total_ranks=(4,)),
)
