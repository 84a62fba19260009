"""Static shape propagation for the backdoor heuristic, in pure Python.

The heuristic needs one fact about a trigger candidate: is it one value per sample (rank 0, or
every non-batch dimension 1)? onnx's C++ shape inference would answer that, but it is native
code run on an untrusted model; this propagator covers the ops a trigger is built from
(elementwise, reductions, slicing, gathering, reshaping, pooling, matmul) and answers "unknown"
for everything else. Value annotations in the file (``value_info``) are not trusted: an attacker
could declare a trigger non-scalar. Dims are ints, symbolic names (str), or None (unknown);
a shape of None means the rank is unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from scanner.analyzers.onnx.consts import Const

Dim = int | str | None
Shape = tuple[Dim, ...] | None

BROADCAST = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "And", "Or", "Xor", "Not", "Equal", "Greater", "Less",
    "GreaterOrEqual", "LessOrEqual", "Where", "Sum", "Mean", "Max", "Min", "Relu", "LeakyRelu", "PRelu",
    "Sigmoid", "Tanh", "Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round",
    "Sign", "Clip", "Cast", "CastLike", "Identity", "Erf", "Softplus", "Softsign", "HardSigmoid",
    "HardSwish", "Elu", "Selu", "Celu", "Gelu", "Mish", "ThresholdedRelu", "Shrink", "IsNaN", "IsInf",
    "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot", "BitShift", "Sin", "Cos", "Tan", "Asin",
    "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "QuickGelu", "FastGelu", "BiasGelu",
})
SAME_AS_FIRST = frozenset({
    "Dropout", "LayerNormalization", "BatchNormalization", "InstanceNormalization", "GroupNormalization",
    "Softmax", "LogSoftmax", "Hardmax", "QuantizeLinear", "DequantizeLinear", "LRN",
    "MeanVarianceNormalization", "SimplifiedLayerNormalization", "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization", "CumSum", "Trilu", "RMSNormalization", "ReverseSequence",
    "DynamicQuantizeLinear", "LpNormalization", "Binarizer", "Scaler", "Normalizer", "Imputer",
})
REDUCE = frozenset({"ReduceMax", "ReduceMin", "ReduceSum", "ReduceMean", "ReduceProd", "ReduceL1",
                    "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"})
POOL = frozenset({"MaxPool", "AveragePool", "LpPool", "Conv", "ConvInteger", "QLinearConv", "FusedConv"})
GLOBAL_POOL = frozenset({"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"})
BIG = 1 << 40


def attr(node: Any, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name != name:
            continue
        kind = a.type
        if kind == 0:  # untyped (malformed, but some loaders guess): infer from the fields set
            kind = 2 if a.HasField("i") else 7 if len(a.ints) else 1 if a.HasField("f") else 3
        if kind == 2:
            return int(a.i)
        if kind == 7:
            return [int(v) for v in a.ints]
        if kind == 1:
            return float(a.f)
        if kind == 3:
            return a.s
        return default
    return default


def broadcast(shapes: Sequence[Shape]) -> Shape:
    if any(s is None for s in shapes):
        return None
    known = [s for s in shapes if s is not None]
    if not known:
        return None
    rank = max(len(s) for s in known)
    out: list[Dim] = []
    for i in range(rank):
        dim: Dim = 1
        for s in known:
            j = i - (rank - len(s))
            if j < 0:
                continue
            d = s[j]
            if d == 1:
                continue
            if dim == 1:
                dim = d
            elif d != dim:
                dim = None
        out.append(dim)
    return tuple(out)


def _norm_axes(axes: list[int], rank: int) -> list[int] | None:
    out = [a + rank if a < 0 else a for a in axes]
    return out if all(0 <= a < rank for a in out) else None


def _axes(node: Any, const: Callable[[int], Const | None], position: int) -> list[int] | None:
    value = attr(node, "axes")
    if isinstance(value, list):
        return value
    if position < len(node.input) and node.input[position]:
        c = const(position)
        return c.ints() if c is not None else None
    return []  # no axes given


def _reduce(node: Any, x: Shape, const: Callable[[int], Const | None]) -> Shape:
    keep = attr(node, "keepdims", 1)
    axes = _axes(node, const, 1)
    if axes is None:
        return None
    if not axes:
        if attr(node, "noop_with_empty_axes", 0):
            return x
        if x is None:
            return () if not keep else ()  # all reduced: one value (all-ones of unknown rank)
        return tuple(1 for _ in x) if keep else ()
    if x is None:
        return None
    norm = _norm_axes(axes, len(x))
    if norm is None:
        return None
    if keep:
        return tuple(1 if i in norm else d for i, d in enumerate(x))
    return tuple(d for i, d in enumerate(x) if i not in norm)


def _slice_len(dim: Dim, start: int, end: int, step: int) -> Dim:
    if isinstance(dim, int):
        return len(range(dim)[slice(start, end, step)])
    if step == 1 and 0 <= start <= end < BIG:
        return end - start  # symbolic dim assumed long enough for a constant window
    return None


def _slice(node: Any, x: Shape, const: Callable[[int], Const | None]) -> Shape:
    if x is None:
        return None
    if attr(node, "starts") is not None:
        starts, ends = attr(node, "starts"), attr(node, "ends")
        axes, steps = attr(node, "axes"), None
    else:
        vals = [const(i) if i < len(node.input) and node.input[i] else None for i in range(1, 5)]
        if vals[0] is None or vals[1] is None:
            return tuple(None for _ in x)
        starts, ends = vals[0].ints(), vals[1].ints()
        axes = vals[2].ints() if vals[2] is not None else None
        steps = vals[3].ints() if vals[3] is not None else None
    if starts is None or ends is None:
        return tuple(None for _ in x)
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    norm = _norm_axes(axes, len(x))
    if norm is None or not (len(starts) == len(ends) == len(norm) == len(steps)) or 0 in steps:
        return None
    out = list(x)
    for axis, s, e, st in zip(norm, starts, ends, steps, strict=True):
        out[axis] = _slice_len(x[axis], s, e, st)
    return tuple(out)


def _gather(node: Any, x: Shape, idx: Shape) -> Shape:
    if x is None or idx is None:
        return None
    axis = attr(node, "axis", 0)
    axis = axis + len(x) if axis < 0 else axis
    if not 0 <= axis < len(x):
        return None
    return x[:axis] + idx + x[axis + 1:]


def _reshape(x: Shape, target: list[int] | None, allowzero: int) -> Shape:
    if target is None:
        return None
    out: list[Dim] = []
    for i, d in enumerate(target):
        if d == 0 and not allowzero:
            out.append(x[i] if x is not None and i < len(x) else None)
        elif d == -1:
            out.append(-1)
        else:
            out.append(d)
    if -1 in out:
        total = _prod(x)
        rest = _prod(tuple(d for d in out if d != -1))
        fill: Dim = total // rest if isinstance(total, int) and isinstance(rest, int) and rest else None
        out = [fill if d == -1 else d for d in out]
    return tuple(out)


def _prod(shape: Shape) -> int | None:
    if shape is None:
        return None
    total = 1
    for d in shape:
        if not isinstance(d, int):
            return None
        total *= d
    return total


def _spatial(node: Any, x: Shape, w: Shape) -> Shape:
    """Pooling / convolution output: N, C kept (C from the weight for Conv), spatial computed."""
    if x is None or len(x) < 3:
        return None
    channels: Dim = w[0] if node.op_type.endswith("Conv") and w else x[1]
    kernel = attr(node, "kernel_shape") or (list(w[2:]) if w and all(isinstance(d, int) for d in w[2:]) else None)
    strides = attr(node, "strides") or [1] * (len(x) - 2)
    pads = attr(node, "pads") or [0] * (2 * (len(x) - 2))
    dil = attr(node, "dilations") or [1] * (len(x) - 2)
    auto = attr(node, "auto_pad", b"NOTSET")
    ceil = attr(node, "ceil_mode", 0)
    out: list[Dim] = [x[0], channels]
    n = len(x) - 2
    for i in range(n):
        d = x[2 + i]
        try:
            if not isinstance(d, int) or kernel is None:
                out.append(None)
            elif auto in (b"SAME_UPPER", b"SAME_LOWER"):
                out.append(-(-d // strides[i]))
            elif auto == b"VALID":
                out.append((d - ((kernel[i] - 1) * dil[i] + 1)) // strides[i] + 1)
            else:
                span = d + pads[i] + pads[i + n] - ((kernel[i] - 1) * dil[i] + 1)
                out.append((-(-span // strides[i]) if ceil else span // strides[i]) + 1)
        except (IndexError, ZeroDivisionError, TypeError):
            out.append(None)
    return tuple(out)


def _matmul(a: Shape, b: Shape) -> Shape:
    if a is None or b is None or not a or not b:
        return None
    if len(a) == 1 and len(b) == 1:
        return ()
    if len(a) == 1:
        return b[:-2] + b[-1:]
    if len(b) == 1:
        return a[:-1]
    batch = broadcast([a[:-2], b[:-2]])
    return None if batch is None else batch + (a[-2], b[-1])


def infer(node: Any, shapes: list[Shape], const: Callable[[int], Const | None]) -> list[Shape]:
    """Output shapes of ``node`` given input shapes (``shapes[i]`` for ``node.input[i]``).

    A malformed node (attributes of the wrong type, impossible axes) yields unknown shapes: the
    runtime would reject it, and the heuristic must not crash on it."""
    try:
        return _infer(node, shapes, const)
    except (ValueError, TypeError, IndexError, KeyError, RuntimeError, ZeroDivisionError, OverflowError):
        return [None] * len(node.output)


def _infer(node: Any, shapes: list[Shape], const: Callable[[int], Const | None]) -> list[Shape]:
    op = node.op_type
    n_out = len(node.output)
    first = shapes[0] if shapes else None
    out: Shape = None
    if op in BROADCAST:
        data = shapes[:1] if op in ("Clip",) else [s for s, name in zip(shapes, node.input, strict=False) if name]
        out = broadcast(data)
    elif op in SAME_AS_FIRST:
        out = first
    elif op in REDUCE:
        out = _reduce(node, first, const)
    elif op in ("ArgMax", "ArgMin"):
        if first is not None:
            axis = attr(node, "axis", 0)
            norm = _norm_axes([axis], len(first))
            if norm is not None:
                out = tuple(1 if i == norm[0] else d for i, d in enumerate(first)) if attr(
                    node, "keepdims", 1) else tuple(d for i, d in enumerate(first) if i != norm[0])
    elif op == "Slice":
        out = _slice(node, first, const)
    elif op == "Gather":
        out = _gather(node, first, shapes[1] if len(shapes) > 1 else None)
    elif op == "GatherElements":
        out = shapes[1] if len(shapes) > 1 else None
    elif op in ("Unsqueeze", "Squeeze"):
        axes = _axes(node, const, 1)
        if first is not None and axes is not None:
            if op == "Unsqueeze":
                rank = len(first) + len(axes)
                norm = _norm_axes(axes, rank)
                if norm is not None:
                    rest = iter(first)
                    out = tuple(1 if i in norm else next(rest) for i in range(rank))
            elif axes:
                norm = _norm_axes(axes, len(first))
                out = None if norm is None else tuple(d for i, d in enumerate(first) if i not in norm)
            elif all(isinstance(d, int) for d in first):
                out = tuple(d for d in first if d != 1)
    elif op == "Reshape":
        target = const(1) if len(node.input) > 1 else None
        out = _reshape(first, target.ints() if target is not None else attr(node, "shape"),
                       attr(node, "allowzero", 0))
    elif op == "Flatten":
        if first is not None:
            axis = attr(node, "axis", 1)
            axis = axis + len(first) if axis < 0 else axis
            out = (_prod(first[:axis]), _prod(first[axis:]))
    elif op == "Transpose":
        if first is not None:
            perm = attr(node, "perm") or list(reversed(range(len(first))))
            out = tuple(first[p] for p in perm) if sorted(perm) == list(range(len(first))) else None
    elif op == "Concat":
        known = [s for s, name in zip(shapes, node.input, strict=False) if name]
        if known and all(s is not None and len(s) == len(known[0]) for s in known):  # type: ignore[arg-type]
            axis = attr(node, "axis", 0)
            rank = len(known[0])  # type: ignore[arg-type]
            axis = axis + rank if axis < 0 else axis
            if 0 <= axis < rank:
                dims = [s[axis] for s in known]  # type: ignore[index]
                total: Dim = sum(dims) if all(isinstance(d, int) for d in dims) else None  # type: ignore[arg-type]
                out = tuple(total if i == axis else d for i, d in enumerate(known[0]))  # type: ignore[arg-type]
    elif op == "Expand":
        target = const(1) if len(node.input) > 1 else None
        out = broadcast([first, tuple(target.ints() or [])]) if target is not None and target.ints() else None
    elif op == "Shape":
        out = (len(first),) if first is not None else (None,)
    elif op == "Size":
        out = ()
    elif op == "ConstantOfShape":
        c = const(0) if node.input else None
        out = tuple(c.ints() or []) if c is not None and c.ints() is not None else None
    elif op in ("MatMul", "MatMulInteger", "FusedMatMul"):
        out = _matmul(first, shapes[1] if len(shapes) > 1 else None)
    elif op == "Gemm":
        a, b = first, shapes[1] if len(shapes) > 1 else None
        if a is not None and b is not None and len(a) == 2 and len(b) == 2:
            out = (a[1] if attr(node, "transA", 0) else a[0], b[0] if attr(node, "transB", 0) else b[1])
    elif op in POOL:
        out = _spatial(node, first, shapes[1] if op.endswith("Conv") and len(shapes) > 1 else None)
    elif op in GLOBAL_POOL:
        out = None if first is None or len(first) < 3 else first[:2] + tuple(1 for _ in first[2:])
    elif op in ("Tile", "Pad", "Resize", "Upsample", "TopK", "Split", "ConvTranspose", "DepthToSpace",
                "SpaceToDepth"):
        out = None if first is None else tuple(None for _ in first)
    return [out] + [None] * (n_out - 1) if op != "Split" else [out] * n_out


def per_sample_scalar(shape: Shape, batch_dims: frozenset[Dim]) -> bool:
    """One value per sample: rank 0, all ones, or [batch, 1, ...] / [batch]."""
    if shape is None:
        return False
    if all(d == 1 for d in shape):
        return True
    if len(shape) >= 1 and all(d == 1 for d in shape[1:]):
        return len(shape) >= 2 or shape[0] in batch_dims
    return False
