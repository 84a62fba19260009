"""A symbolic pickle machine: it tracks what a real unpickler would import and call.

Values are symbols, never objects: a constant, an imported global, the result of a call, or an
opaque thing. The machine mirrors CPython's unpickler (mark stack, memo, FRAME, stacked pickles)
but executes nothing. Malformations stop the machine where a loader would stop, keeping every
import and call seen before the break (a payload runs before the error: nullifAI).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from scanner.analyzers.pickle.opcodes import KEEP_BYTES, Op, PickleSyntaxError, read_ops


@dataclass(slots=True, unsafe_hash=True)  # hot path: see Op; treated as immutable
class Const:
    value: object
    length: int | None = None   # declared length for strings/bytes kept only in part


@dataclass(frozen=True)
class Global:
    module: str
    name: str
    offset: int

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class Call:
    func: object
    args: object
    offset: int
    opcode: str


@dataclass(frozen=True)
class Seq:
    kind: str                 # "tuple", "list", "dict", "set"
    items: tuple[object, ...]


@dataclass(frozen=True)
class Opaque:
    what: str


UNKNOWN = Opaque("unknown")


@dataclass
class Event:
    """Something the policy must judge: an import, a call, or an anomaly."""

    kind: str                 # import | call | dynamic-import | ext | build-on-callable |
                              # memo-miss | frame | nested-pickle | joblib-array
    offset: int
    detail: str = ""
    target: Global | None = None
    args: object = None
    data: bytes | None = None


class StackUnderflow(PickleSyntaxError):
    pass


class LimitHit(Exception):
    def __init__(self, what: str, offset: int) -> None:
        super().__init__(what)
        self.offset = offset


@dataclass
class Machine:
    """One pickle (from PROTO/first opcode to STOP)."""

    memo_limit: int
    stack_limit: int
    events: list[Event] = field(default_factory=list)
    stack: list[object] = field(default_factory=list)
    marks: list[list[object]] = field(default_factory=list)
    memo: dict[int, object] = field(default_factory=dict)
    frame_end: int | None = None
    result: object = None

    # -- stack helpers -------------------------------------------------------------------
    def push(self, value: object, offset: int) -> None:
        if len(self.stack) >= self.stack_limit:
            raise LimitHit(f"stack deeper than {self.stack_limit}", offset)
        self.stack.append(value)

    def pop(self, offset: int) -> object:
        if not self.stack:
            raise StackUnderflow("stack underflow", offset)
        return self.stack.pop()

    def pop_mark(self, offset: int) -> list[object]:
        if not self.marks:
            raise StackUnderflow("MARK expected", offset)
        items = self.stack
        self.stack = self.marks.pop()
        return items

    def record(self, event: Event) -> None:
        self.events.append(event)

    def call(self, func: object, args: object, op: Op) -> Call:
        if isinstance(func, Global):
            self.record(Event("call", op.offset, op.name, func, args))
        elif isinstance(func, Opaque) and func.what.startswith("ext"):
            self.record(Event("ext-call", op.offset, func.what, None, args))
        return Call(func, args, op.offset, op.name)

    def imported(self, module: object, name: object, op: Op) -> object:
        if isinstance(module, Const) and isinstance(name, Const) \
                and isinstance(module.value, str) and isinstance(name.value, str):
            target = Global(module.value, name.value, op.offset)
            self.record(Event("import", op.offset, op.name, target))
            return target
        self.record(Event("dynamic-import", op.offset,
                          f"{op.name} with non-constant operands ({_short(module)}, {_short(name)})"))
        return UNKNOWN

    # -- execution -------------------------------------------------------------------------
    def step(self, op: Op) -> None:
        handler = _HANDLERS.get(op.name)
        if handler is None:
            raise PickleSyntaxError(f"opcode {op.name} not supported by the analyzer", op.offset)
        handler(self, op)


def _short(value: object) -> str:
    if isinstance(value, Const):
        return repr(value.value)[:60]
    if isinstance(value, Global):
        return value.dotted
    return type(value).__name__.lower()


def _const(m: Machine, op: Op) -> None:
    arg = op.arg
    if isinstance(arg, tuple) and len(arg) == 2 and isinstance(arg[1], int) \
            and isinstance(arg[0], (str, bytes)):
        m.push(Const(arg[0], arg[1]), op.offset)
    else:
        m.push(Const(arg), op.offset)


def _literal(value: object):  # type: ignore[no-untyped-def]
    def handler(m: Machine, op: Op) -> None:
        m.push(Const(value), op.offset)
    return handler


def _container(kind: str):  # type: ignore[no-untyped-def]
    def handler(m: Machine, op: Op) -> None:
        m.push(Seq(kind, ()), op.offset)
    return handler


def _mark(m: Machine, op: Op) -> None:
    m.marks.append(m.stack)
    m.stack = []


def _from_mark(kind: str):  # type: ignore[no-untyped-def]
    def handler(m: Machine, op: Op) -> None:
        m.push(Seq(kind, tuple(m.pop_mark(op.offset))), op.offset)
    return handler


def _tuple_n(n: int):  # type: ignore[no-untyped-def]
    def handler(m: Machine, op: Op) -> None:
        items = [m.pop(op.offset) for _ in range(n)][::-1]
        m.push(Seq("tuple", tuple(items)), op.offset)
    return handler


def _extend_top(m: Machine, items: list[object], op: Op) -> None:
    top = m.pop(op.offset)
    if isinstance(top, Seq):
        m.push(Seq(top.kind, top.items + tuple(items)), op.offset)
    else:
        m.push(top, op.offset)  # appending to a call result: a real list or a custom object


def _append(m: Machine, op: Op) -> None:
    value = m.pop(op.offset)
    _extend_top(m, [value], op)


def _appends(m: Machine, op: Op) -> None:
    items = m.pop_mark(op.offset)
    _extend_top(m, items, op)


def _setitem(m: Machine, op: Op) -> None:
    value = m.pop(op.offset)
    key = m.pop(op.offset)
    _extend_top(m, [key, value], op)


def _pop(m: Machine, op: Op) -> None:
    if m.stack:
        m.stack.pop()
    else:
        m.pop_mark(op.offset)


def _pop_mark(m: Machine, op: Op) -> None:
    m.pop_mark(op.offset)


def _dup(m: Machine, op: Op) -> None:
    value = m.pop(op.offset)
    m.push(value, op.offset)
    m.push(value, op.offset)


def _put(m: Machine, op: Op) -> None:
    if not m.stack:
        raise StackUnderflow("memo store with an empty stack", op.offset)
    index = len(m.memo) if op.name == "MEMOIZE" else int(op.arg)  # type: ignore[call-overload]
    if index not in m.memo and len(m.memo) >= m.memo_limit:
        raise LimitHit(f"memo larger than {m.memo_limit} entries", op.offset)
    m.memo[index] = m.stack[-1]


def _get(m: Machine, op: Op) -> None:
    index = int(op.arg)  # type: ignore[call-overload]
    if index in m.memo:
        m.push(m.memo[index], op.offset)
    else:
        # A loader raises here; everything before already ran. Keep going symbolically so a
        # payload placed after a decoy lookup is still seen.
        m.record(Event("memo-miss", op.offset, f"{op.name} {index} reads an empty memo slot"))
        m.push(UNKNOWN, op.offset)


def _global(m: Machine, op: Op) -> None:
    module, name = _pair_arg(op)
    m.push(m.imported(Const(module), Const(name), op), op.offset)


def _pair_arg(op: Op) -> tuple[str, str]:
    pair = op.arg
    assert isinstance(pair, tuple) and len(pair) == 2  # the reader produces (module, name)
    return str(pair[0]), str(pair[1])


def _stack_global(m: Machine, op: Op) -> None:
    name = m.pop(op.offset)
    module = m.pop(op.offset)
    m.push(m.imported(module, name, op), op.offset)


def _inst(m: Machine, op: Op) -> None:
    module, name = _pair_arg(op)
    cls = m.imported(Const(module), Const(name), op)
    args = m.pop_mark(op.offset)
    m.push(m.call(cls, Seq("tuple", tuple(args)), op), op.offset)


def _obj(m: Machine, op: Op) -> None:
    items = m.pop_mark(op.offset)
    if not items:
        raise StackUnderflow("OBJ without a class", op.offset)
    m.push(m.call(items[0], Seq("tuple", tuple(items[1:])), op), op.offset)


def _reduce(m: Machine, op: Op) -> None:
    args = m.pop(op.offset)
    func = m.pop(op.offset)
    m.push(m.call(func, args, op), op.offset)


def _newobj(m: Machine, op: Op) -> None:
    args = m.pop(op.offset)
    cls = m.pop(op.offset)
    m.push(m.call(cls, args, op), op.offset)


def _newobj_ex(m: Machine, op: Op) -> None:
    kwargs = m.pop(op.offset)
    args = m.pop(op.offset)
    cls = m.pop(op.offset)
    m.push(m.call(cls, Seq("tuple", (args, kwargs)), op), op.offset)


def _build(m: Machine, op: Op) -> None:
    state = m.pop(op.offset)
    obj = m.pop(op.offset)
    if isinstance(obj, Global):
        # Setting attributes on an imported function or class (numpy.size.__dict__ <- builtins)
        m.record(Event("build-on-callable", op.offset, f"BUILD sets state on {obj.dotted}", obj))
    elif isinstance(obj, Call) and isinstance(obj.func, Global):
        m.record(Event("build", op.offset, "", obj.func, state))
    m.push(obj, op.offset)


def _ext(m: Machine, op: Op) -> None:
    code = op.arg
    m.record(Event("ext", op.offset, f"{op.name} {code}: object from the copyreg extension registry"))
    m.push(Opaque(f"ext{code}"), op.offset)


def _persid(m: Machine, op: Op) -> None:
    if op.name == "BINPERSID":
        m.pop(op.offset)
    m.push(Opaque("persistent"), op.offset)


def _frame(m: Machine, op: Op) -> None:
    m.frame_end = op.end + int(op.arg)  # type: ignore[call-overload]


def _noop(m: Machine, op: Op) -> None:
    return None


def _buffer(m: Machine, op: Op) -> None:
    if op.name == "NEXT_BUFFER":
        m.push(Opaque("buffer"), op.offset)


def _stop(m: Machine, op: Op) -> None:
    m.result = m.pop(op.offset)


_HANDLERS = {
    **{name: _const for name in (
        "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
        "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE",
        "BINUNICODE8", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8")},
    "NONE": _literal(None), "NEWTRUE": _literal(True), "NEWFALSE": _literal(False),
    "EMPTY_LIST": _container("list"), "EMPTY_DICT": _container("dict"),
    "EMPTY_SET": _container("set"), "EMPTY_TUPLE": _container("tuple"),
    "MARK": _mark, "TUPLE": _from_mark("tuple"), "LIST": _from_mark("list"),
    "DICT": _from_mark("dict"), "FROZENSET": _from_mark("set"),
    "TUPLE1": _tuple_n(1), "TUPLE2": _tuple_n(2), "TUPLE3": _tuple_n(3),
    "APPEND": _append, "APPENDS": _appends, "SETITEM": _setitem, "SETITEMS": _appends,
    "ADDITEMS": _appends, "POP": _pop, "POP_MARK": _pop_mark, "DUP": _dup,
    "PUT": _put, "BINPUT": _put, "LONG_BINPUT": _put, "MEMOIZE": _put,
    "GET": _get, "BINGET": _get, "LONG_BINGET": _get,
    "GLOBAL": _global, "STACK_GLOBAL": _stack_global, "INST": _inst, "OBJ": _obj,
    "REDUCE": _reduce, "NEWOBJ": _newobj, "NEWOBJ_EX": _newobj_ex, "BUILD": _build,
    "EXT1": _ext, "EXT2": _ext, "EXT4": _ext, "PERSID": _persid, "BINPERSID": _persid,
    "PROTO": _noop, "FRAME": _frame, "STOP": _stop,
    "NEXT_BUFFER": _buffer, "READONLY_BUFFER": _buffer,
}


# -- joblib inline arrays ---------------------------------------------------------------------
JOBLIB_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"


def _seq_dict(value: object) -> dict[object, object]:
    if not isinstance(value, Seq) or value.kind != "dict":
        return {}
    items = value.items
    return {k.value if isinstance(k, Const) else k: v for k, v in zip(items[::2], items[1::2], strict=False)}


def _dtype_itemsize(dtype: object) -> tuple[int, bool] | None:
    """(itemsize, has_objects) of a symbolic ``numpy.dtype('<f8', ...)`` call."""
    if not isinstance(dtype, Call) or not isinstance(dtype.args, Seq) or not dtype.args.items:
        return None
    spec = dtype.args.items[0]
    if not isinstance(spec, Const) or not isinstance(spec.value, str):
        return None
    code = spec.value.lstrip("<>|=")
    kind, digits = code[:1], code[1:]
    if kind == "O":
        return 8, True
    if not digits.isdigit():
        return None
    size = int(digits)
    return (size * 4 if kind == "U" else size), False


def joblib_array_layout(state: object) -> tuple[int, bool, bool] | None:
    """(nbytes, has_objects, padded) of the inline data following a NumpyArrayWrapper BUILD."""
    fields = _seq_dict(state)
    shape = fields.get("shape")
    info = _dtype_itemsize(fields.get("dtype"))
    if info is None or not isinstance(shape, Seq):
        return None
    dims = [d.value for d in shape.items if isinstance(d, Const) and isinstance(d.value, int)]
    if len(dims) != len(shape.items) or any(d < 0 for d in dims):  # type: ignore[operator]
        return None
    itemsize, has_objects = info
    alignment = fields.get("numpy_array_alignment_bytes")
    padded = isinstance(alignment, Const) and alignment.value is not None
    return math.prod(dims) * itemsize, has_objects, padded  # type: ignore[arg-type]


def run(stream: BinaryIO, memo_limit: int, stack_limit: int) -> Iterator[tuple[Op, Machine]]:
    """Drive one pickle from the stream's position; yields each op with the machine after it."""
    machine = Machine(memo_limit, stack_limit)
    for op in read_ops(stream):
        machine.step(op)
        yield op, machine


__all__ = ["KEEP_BYTES", "Const", "Global", "Call", "Seq", "Opaque", "Event", "Machine",
           "LimitHit", "StackUnderflow", "joblib_array_layout", "JOBLIB_WRAPPER", "run"]
