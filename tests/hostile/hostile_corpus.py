"""Hostile inputs for graphopt: deterministic bytes (plus side files) from seeds and small base models.

Damage to the *bytes* (truncations, bit flips, noise, text, other protobuf messages, non-UTF-8 names) and
to the *graph* of a valid protobuf (cycles, dangling names, wrong attribute types, broken initializers,
absurd opsets and dims, broken bodies, sparse initializers, strings...), the latter written as ONNX text
where possible so each case reads like what it breaks. Hostile external data is in external_corpus.py,
seeded random graph edits in test_fuzz_mutants.py. Same call, same bytes, on every machine. Used by
tests/hostile/test_fuzz_*.py (in-process) and bench/hostile.py (one subprocess per case).
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import onnx
import onnx.parser
from onnx import AttributeProto as A
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "tiny_cnn.onnx"
MODEL_NAME = "m.onnx"


@dataclass(frozen=True)
class Case:
    """A model file's bytes and what goes beside it: ``files`` (paths relative to the model's folder, may
    leave it), ``links`` (symlink name -> target), ``fifos`` (named pipes: reading one blocks)."""

    name: str
    data: bytes
    files: tuple[tuple[str, bytes], ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    fifos: tuple[str, ...] = ()
    in_process: bool = True  # False: kills the interpreter that runs it (a signal); subprocess only

    @property
    def family(self) -> str:
        return self.name.split("-", 1)[0]


def place(case: Case, root: Path) -> Path:
    """Write the case under ``root/model`` (side files may land in ``root``); the model's path."""
    folder = root / "model"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_NAME).write_bytes(case.data)
    for rel, data in case.files:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    for name, target in case.links:
        os.symlink(target, folder / name)
    for name in case.fifos:
        os.mkfifo(folder / name)
    return folder / MODEL_NAME


def snapshot(root: Path, skip: str = "out") -> dict[str, str]:
    """Path -> sha256 (or link target, or 'fifo') of everything under ``root`` but ``root/skip``."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(folder, d) != root / skip]
        for path in [Path(folder, n) for n in files + dirs]:
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = "link:" + os.readlink(path)
            elif path.is_fifo():
                found[key] = "fifo"
            elif path.is_file():
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


# ---------------------------------------------------------------------------------------------- bases

def text_model(sig: str, body: str, inits: str = "", opset: str = '"" : 17', ir: int = 8) -> onnx.ModelProto:
    """A model from ONNX text: ``sig`` is ``(inputs) => (outputs)``, ``inits`` the initializer list."""
    init = f"<{inits}>" if inits else ""
    header = f"<ir_version: {ir}, opset_import: [{opset}]>"
    return onnx.parser.parse_model(f"{header}\ng {sig}\n{init}\n{{\n{body}\n}}")


def _floats(name: str, rng: np.random.Generator, *shape: int) -> str:
    values = ", ".join(f"{v:.3f}" for v in rng.standard_normal(int(np.prod(shape))))
    return f"float[{', '.join(map(str, shape))}] {name} = {{{values}}}"


MLP = ("h = MatMul(x, w1)\n hb = Add(h, b1)\n r = Relu(hb)\n ri = Identity(r)\n"
       " y = Gemm <transB = 1> (ri, w2, b2)")
IF = ("a = Identity(x)\n y = If (c) <then_branch = th () => (float[4] z) { t = Add(a, k)\n z = Relu(t) }, "
      "else_branch = el () => (float[4] z) { z = Mul(a, k) }>")


@cache
def base_bytes(name: str) -> bytes:
    """The base models: the tiny CNN fixture, an MLP, an If with two bodies, a custom-domain op."""
    rng = np.random.default_rng(0)
    if name == "tiny_cnn":
        return FIXTURE.read_bytes()
    if name == "mlp":
        weights = [("w1", (8, 16)), ("b1", (16,)), ("w2", (3, 16)), ("b2", (3,))]
        inits = ", ".join(_floats(n, rng, *shape) for n, shape in weights)
        return text_model("(float[N, 8] x) => (float[N, 3] y)", MLP, inits).SerializeToString()
    if name == "if":
        return text_model("(bool c, float[4] x) => (float[4] y)", IF, "float[4] k = {1.0, -2.0, 3.0, -4.0}",
                          ).SerializeToString()
    return text_model(S, "a = Relu(x)\n b = com.example.Scale <alpha = 2.0> (a)\n y = Add(b, x)",
                      opset='"" : 17, "com.example" : 1').SerializeToString()


BASES = ("tiny_cnn", "mlp", "if", "custom")


def base_model(name: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    model.ParseFromString(base_bytes(name))
    return model


# ------------------------------------------------------------------------------------ byte damage

def truncated(base: str, offset: int) -> Case:
    data = base_bytes(base)
    return Case(f"truncate-{base}-at{offset % len(data)}", data[: offset % len(data)])


def truncation_offsets(base: str, count: int) -> list[int]:
    """``count`` cut points spread over the file, its first and last byte included."""
    n = len(base_bytes(base))
    return sorted({1, n - 1} | set(np.linspace(2, n - 2, max(count - 2, 0)).astype(int).tolist()))


def bit_flipped(base: str, seed: int) -> Case:
    """1 to 8 bits flipped at seeded positions."""
    rng = random.Random(seed)
    data = bytearray(base_bytes(base))
    for _ in range(rng.randint(1, 8)):
        pos = rng.randrange(len(data) * 8)
        data[pos // 8] ^= 1 << (pos % 8)
    return Case(f"bitflip-{base}-s{seed}", bytes(data))


def random_bytes(seed: int) -> Case:
    """Noise of a seeded length, behind the first 16 bytes of a real model for odd seeds."""
    rng = random.Random(seed)
    prefix = base_bytes(BASES[seed % len(BASES)])[:16] if seed % 2 else b""
    return Case(f"random-s{seed}", prefix + rng.randbytes(rng.choice([1, 2, 7, 64, 1000, 5000])))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (appending one to a message merges it in)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _without(model: onnx.ModelProto, field: str) -> bytes:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.ClearField(field)
    return copy.SerializeToString()


def _non_utf8(where: str) -> bytes:
    """A Relu model whose ``where`` (a name or doc string) is not UTF-8, which protobuf lets through."""
    model = text_model("(float[2] QQx) => (float[2] y)", "y = Relu <QQalpha = 1.0> (QQx)")
    node = model.graph.node[0]
    node.name, node.doc_string, model.graph.name, model.producer_name = "QQn", "QQd", "QQg", "QQp"
    model.metadata_props.add(key="QQk", value="v")
    return model.SerializeToString().replace(b"QQ" + where.encode(), b"\xe1(" + where.encode())


def wire_cases() -> Iterator[Case]:
    """Empty and text files, other protobuf messages, concatenated models, odd but legal wire data."""
    cnn, mlp, model = base_bytes("tiny_cnn"), base_bytes("mlp"), base_model("mlp")
    yield Case("empty-zero-length", b"")
    yield Case("text-hello", b"hello, world\n")
    yield Case("text-onnx-textual", onnx.printer.to_text(model).encode())
    yield Case("text-json", b'{"ir_version": 8, "graph": {"node": []}}\n')
    yield Case("text-utf16-bom", "\ufeffir_version: 8\n".encode("utf-16"))
    yield Case("text-nul-bytes", bytes(4096))
    yield Case("text-ff-bytes", b"\xff" * 4096)
    yield Case("proto-tensor", numpy_helper.from_array(np.arange(12, dtype=np.float32)).SerializeToString())
    yield Case("proto-graph", model.graph.SerializeToString())
    yield Case("proto-node", model.graph.node[0].SerializeToString())
    yield Case("proto-opset-id", h.make_opsetid("", 17).SerializeToString())
    yield Case("proto-model-no-graph", _without(model, "graph"))
    yield Case("proto-model-no-opset", _without(model, "opset_import"))
    yield Case("proto-model-twice", mlp + mlp)  # protobuf merges the two: every name defined twice
    yield Case("proto-two-models", cnn + mlp)
    yield Case("proto-unknown-field", mlp + _field(999, b"graphopt"))
    yield Case("proto-overlong-varint", mlp + b"\x08" + b"\xff" * 10 + b"\x01")
    yield Case("proto-huge-length", mlp + b"\x3a" + _varint(2**31 - 1) + bytes(8))
    for where in ("x", "alpha", "n", "d", "g", "p", "k"):
        yield Case(f"string-non-utf8-{where}", _non_utf8(where))


# ----------------------------------------------------------------------------------- graph damage

S = "(float[2, 3] x) => (float[2, 3] y)"
S3, S4 = "(float[3] x) => (float[3] y)", "(float[4] x) => (float[4] y)"
SC, SCAT = "(bool c, float[2, 3] x) => (float[2, 3] y)", "(float[2, 3] x) => (float[4, 3] y)"
SCONV, K = "(float[1, 1, 4, 4] x) => (float[1, 1, 4, 4] y)", "float[1, 1, 1, 1] k = {2.0}"
W3, STR2 = "float[3] w = {1.0, 2.0, 3.0}", 'string[2] s = {"a", "b"}'
THEN, ELSE = "then_branch = tb () => (float[2, 3] z) { z = Neg(x) }", "else_branch = eb () => (float[2, 3] z)"
RELU, MS = "y = Relu(x)", '"" : 17, "com.microsoft" : 1'

# name, signature, body[, initializers[, opset[, ir_version]]]: each breaks (or stretches) one rule
TEXT_CASES: tuple[tuple, ...] = (
    ("graph-cycle", S, "a = Relu(b)\n b = Relu(a)\n y = Add(a, x)"),
    ("graph-self-loop", S, "a = Add(x, a)\n y = Relu(a)"),
    ("graph-cycle-through-if", SC,
     f"y = If (c) <{THEN.replace('Neg(x)', 'Neg(q)')}, {ELSE} {{ z = Neg(x) }}>\n q = Relu(y)"),
    ("graph-dangling-input", S, "y = Add(x, ghost)"),
    ("graph-dangling-output", "(float[2, 3] x) => (float[2, 3] y, float[2, 3] ghost)", RELU),
    ("graph-duplicate-outputs", "(float[2, 3] x) => (float[2, 3] y, float[2, 3] y)", RELU),
    ("graph-duplicate-node-outputs", S, "y = Relu(x)\n y = Neg(x)"),
    ("graph-node-redefines-input", S, "a = Relu(x)\n x = Neg(a)\n y = Identity(a)"),
    ("graph-node-redefines-initializer", S3, "w = Relu(x)\n y = Add(w, x)", W3),
    ("graph-duplicate-inputs", "(float[2, 3] x, float[2, 3] x) => (float[2, 3] y)", RELU),
    ("graph-empty", "() => ()", ""),
    ("graph-no-outputs", "(float[2, 3] x) => ()", RELU),
    ("graph-output-is-input", "(float[2, 3] x) => (float[2, 3] x)", ""),
    ("graph-output-is-input-twice", "(float[2, 3] x) => (float[2, 3] x, float[2, 3] x)", ""),
    ("graph-output-is-initializer", "(float[3] x) => (float[3] w)", "", W3),
    ("graph-only-constant", "() => (float[2] y)", "y = Constant <value = float[2] {1.0, 2.0}> ()"),
    ("graph-deep-chain-3000", S,
     "v0 = Identity(x)\n" + "\n".join(f"v{i + 1} = Relu(v{i})" for i in range(3000)) + "\n y = Neg(v3000)"),
    ("attr-strides-floats", SCONV, "y = Conv <strides = [1.0, 1.0]> (x, k)", K),
    ("attr-strides-float", SCONV, "y = Conv <strides = 1.0> (x, k)", K),
    ("attr-strides-zero", SCONV, "y = Conv <strides = [0, 0]> (x, k)", K),
    ("attr-pads-negative-huge", SCONV, "y = Conv <pads = [-1000000000000, 0, 0, 0]> (x, k)", K),
    ("attr-concat-axis-string", SCAT, 'y = Concat <axis = "0"> (x, x)'),
    ("attr-gather-axis-string", S, 'y = Gather <axis = "zero"> (x, i)', "int64[2] i = {0, 1}"),
    ("attr-concat-missing-axis", SCAT, "y = Concat (x, x)"),
    ("attr-cast-missing-to", S, "y = Cast (x)"),
    ("attr-cast-to-999", S, "y = Cast <to = 999> (x)"),
    ("attr-transpose-perm-repeated", S, "y = Transpose <perm = [0, 0]> (x)"),
    ("attr-transpose-perm-out-of-range", S, "y = Transpose <perm = [5, -9]> (x)"),
    ("attr-softmax-axis-out-of-range", S, "y = Softmax <axis = 10> (x)"),
    ("attr-unknown-name", S, "y = Relu <foo = 1> (x)"),
    ("attr-duplicate-name", SCAT, "y = Concat <axis = 0, axis = 1> (x, x)"),
    ("attr-constant-no-value", "() => (float[2] y)", "y = Constant ()"),
    ("attr-constant-two-values", "() => (float[2] y)", "y = Constant <value_float = 1.0, value_int = 2> ()"),
    ("attr-constant-string-for-float", "() => (float y)", 'y = Constant <value_float = "one"> ()'),
    ("init-float-data-count", S3, "y = Add(x, w)", "float[3] w = {1.0, 2.0}"),
    ("init-zero-size-concat", S, "y = Concat <axis = 0> (x, e)", "float[0, 3] e = {}"),
    ("init-int4", S4, "c = Cast <to = 1> (q)\n y = Add(x, c)", "int4[4] q = {1, -2, 3, -4}", '"" : 21', 10),
    ("shape-huge-dim-input", "(float[1000000000000, 3] x) => (float[1000000000000, 3] y)", RELU),
    ("shape-huge-dim-2p62", "(float[4611686018427387904, 4] x) => (float[N, 4] y)", RELU),
    ("shape-zero-dim-input", "(float[0, 3] x) => (float[0, 3] y)", RELU),
    ("shape-zero-times-huge", "(float[0, 1000000000000] x) => (float[0, 1000000000000] y)", RELU),
    ("shape-zero-batch-conv", "(float[0, 1, 4, 4] x) => (float[0, 1, 4, 4] y)", "y = Conv (x, k)", K),
    ("shape-output-rank-mismatch", "(float[2, 3] x) => (float[7] y)", RELU),
    ("shape-output-elem-mismatch", "(float[2, 3] x) => (int64[2, 3] y)", RELU),
    ("shape-input-string", "(string[2] x) => (string[2] y)", "y = Identity(x)"),
    ("opset-0", S, RELU, "", '"" : 0'),
    ("opset-1", S, RELU, "", '"" : 1'),
    ("opset-9999", S, RELU, "", '"" : 9999'),
    ("opset-duplicate-default", S, RELU, "", '"" : 17, "" : 11'),
    ("opset-ai-onnx-alias", S, RELU, "", '"ai.onnx" : 17'),
    ("opset-ir-0", S, RELU, "", '"" : 17', 0),
    ("opset-ir-3", S3, "y = Add(x, w)", W3, '"" : 17', 3),
    ("opset-ir-99", S, RELU, "", '"" : 17', 99),
    ("opset-ir-negative", S, RELU, "", '"" : 17', -1),
    ("op-unknown-default-domain", S, "y = FooBar(x)"),
    ("op-unknown-domain-no-import", S, "y = com.unknown.Foo(x)"),
    ("op-unknown-domain-imported", S, "y = com.unknown.Foo(x)", "", '"" : 17, "com.unknown" : 1'),
    ("op-ms-contrib", S, "y = com.microsoft.Gelu(x)", "", MS),
    ("op-ms-contrib-no-import", S, "y = com.microsoft.Gelu(x)"),
    ("op-wrong-arity-relu", S, "y = Relu(x, x)"),
    ("op-wrong-arity-add", S, "y = Add(x)"),
    ("op-too-many-outputs", S, "y, z = Relu(x)"),
    ("op-removed-upsample", "(float[1, 1, 2, 2] x) => (float[1, 1, 4, 4] y)", "y = Upsample(x, s)",
     "float[4] s = {1.0, 1.0, 2.0, 2.0}"),
    ("fold-constantofshape-huge", "(float[1] x) => (float[1] y)",
     "z = ConstantOfShape(s)\n r = ReduceSum <keepdims = 0> (z)\n y = Add(x, r)",
     "int64[2] s = {1000000, 1000000}"),
    ("fold-expand-huge", "(float[1] x) => (float y)", "z = Expand(x, s)\n y = ReduceMax <keepdims = 0> (z)",
     "int64[3] s = {100000, 100000, 100000}"),
    ("fold-range-huge", "(int64[1] x) => (int64 y)", "r = Range(a, b, d)\n y = ReduceMax <keepdims = 0> (r)",
     "int64 a = {0}, int64 b = {1000000000000}, int64 d = {1}"),
    ("fold-range-zero-delta", "(float[1] x) => (float[1] y)", "r = Range(a, b, d)\n y = Add(x, r)",
     "float a = {0.0}, float b = {1.0}, float d = {0.0}"),
    ("fold-gather-out-of-range", S, "g = Gather(w, i)\n y = Add(x, g)", W3 + ", int64[1] i = {7}"),
    ("fold-reshape-incompatible", S, "r = Reshape(w, s)\n y = Add(x, r)", W3 + ", int64[2] s = {5, 7}"),
    ("fold-slice-zero-step", S, "r = Slice(w, a, b, a, z)\n y = Add(x, r)",
     W3 + ", int64[1] a = {0}, int64[1] b = {3}, int64[1] z = {0}"),
    ("fold-cast-overflow", "(int8[3] x) => (int8[3] y)", "c = Cast <to = 3> (w)\n y = Add(x, c)",
     "float[3] w = {1e30, -1e30, 300.0}"),
    ("fold-string-concat", "(string[2] x) => (string[4] y)", "y = Concat <axis = 0> (x, s)", STR2),
    ("sub-dangling-body", SC, f"y = If (c) <{THEN}, {ELSE} {{ z = Neg(ghost) }}>"),
    ("sub-cycle-body", SC, f"y = If (c) <{THEN}, {ELSE} {{ a = Neg(b)\n b = Neg(a)\n z = Add(a, x) }}>"),
    ("sub-output-count-mismatch", SC,
     f"y = If (c) <{THEN}, else_branch = eb () => (float[2, 3] z, float[2, 3] w) "
     "{ z = Neg(x)\n w = Neg(x) }>"),
    ("sub-missing-else", SC, f"y = If (c) <{THEN}>"),
    ("sub-empty-body", SC, f"y = If (c) <{THEN}, else_branch = eb () => () {{ }}>"),
    ("sub-shadows-outer-name", SC, f"y = If (c) <{THEN}, {ELSE} {{ x = Neg(c)\n z = Identity(x) }}>"),
    ("sub-loop-bad-signature", "(int64 n, bool c, float[2, 3] x) => (float[2, 3] y)",
     "y = Loop (n, c, x) <body = lb (float[2, 3] q) => (float[2, 3] r) { r = Neg(q) }>"),
    ("sub-scan-no-body", S, "y = Scan <num_scan_inputs = 1> (x)"),
    ("sub-if-cond-float", "(float c, float[2, 3] x) => (float[2, 3] y)",
     f"y = If (c) <{THEN}, {ELSE} {{ z = Neg(x) }}>"),
    ("string-initializer-identity", "() => (string[2] y)", "y = Identity(s)", STR2),
    ("string-in-add", "(string[2] x) => (string[2] y)", "y = Add(x, x)"),
)


def edit(sig: str, body: str, fn: Callable[[onnx.ModelProto], object], inits: str = "") -> onnx.ModelProto:
    model = text_model(sig, body, inits)
    fn(model)
    return model


def add_attr(node: onnx.NodeProto, **fields: object) -> None:
    """Append an attribute with exactly these fields (no type check: that is the point)."""
    node.attribute.add().MergeFrom(A(**fields))


def _cnn(fn: Callable[[onnx.ModelProto], object]) -> onnx.ModelProto:
    model = base_model("tiny_cnn")
    fn(model)
    return model


def _init(name: str, fn: Callable[[T], object]) -> onnx.ModelProto:
    return _cnn(lambda m: fn(next(t for t in m.graph.initializer if t.name == name)))


def sparse_tensor(m: onnx.ModelProto, indices: tuple[int, ...] = (0, 3), dims: tuple[int, ...] = (4,),
                   ) -> onnx.SparseTensorProto:
    """Add (and return) the sparse initializer ``s``: two ones at ``indices`` of a ``dims`` tensor."""
    vals = numpy_helper.from_array(np.ones(2, np.float32), "s")
    idx = numpy_helper.from_array(np.array(indices, np.int64), "s_idx")
    m.graph.sparse_initializer.append(h.make_sparse_tensor(vals, idx, dims))
    return m.graph.sparse_initializer[-1]


def _nested_ifs(depth: int) -> onnx.ModelProto:
    """``depth`` If nodes, each in the then-branch of the one before."""
    body = "z = Identity(x)"
    for i in range(depth):
        body = f"z = If (c) <then_branch = b{i} () => (float[2, 3] z) {{ {body} }}, {ELSE} {{ z = Neg(x) }}>"
    return text_model(SC, body.replace("z = If", "y = If", 1))


def _nested_type(depth: int) -> bytes:
    """Input ``x`` of type sequence(sequence(...(float))) ``depth`` deep, spliced as bytes: protobuf
    refuses to build or parse a message nested more than 100 levels."""
    tp = h.make_tensor_type_proto(T.FLOAT, [2]).SerializeToString()
    for _ in range(depth):
        tp = _field(4, _field(1, tp))  # TypeProto.sequence_type.elem_type
    model = text_model("() => (float[2] y)", "y = Constant <value = float[2] {1.0, 2.0}> ()")
    return model.SerializeToString() + _field(7, _field(11, _field(1, b"x") + _field(2, tp)))


def function_model(body: str, sig: str = S) -> onnx.ModelProto:
    """A model calling the model-local function ``local.F`` whose body is ``body``."""
    fn = onnx.parser.parse_function(f'<domain: "local", opset_import: ["" : 17, "local" : 1]>\nF (a) => (b)\n'
                                    f"{{\n{body}\n}}")
    model = text_model(sig, "y = local.F(x)", opset='"" : 17, "local" : 1')
    model.functions.append(fn)
    return model


def _dim(m: onnx.ModelProto, value: int, where: str = "input") -> None:
    (m.graph.input if where == "input" else m.graph.output)[0].type.tensor_type.shape.dim[0].dim_value = value


def _edited_models() -> Iterator[tuple[str, onnx.ModelProto]]:
    """Defects ONNX text cannot spell: built by editing a parsed model or the tiny CNN."""
    node0 = lambda fn: lambda m: fn(m.graph.node[0])  # noqa: E731
    x_type = lambda fn: lambda m: fn(m.graph.input[0].type)  # noqa: E731
    neg = text_model(S, "y = Neg(x)").graph
    seq, opt = h.make_sequence_type_proto, h.make_optional_type_proto
    yield "graph-empty-op-type", edit(S, RELU, node0(lambda n: setattr(n, "op_type", "")))
    yield "graph-empty-output-name", edit(S, RELU, node0(lambda n: n.output.__setitem__(0, "")))
    yield "graph-optional-inputs-empty", edit(S, "y = Clip(x)", node0(lambda n: n.input.extend(["", ""])))
    yield "attr-type-undefined", edit(S, "y = Softmax (x)", node0(lambda n: add_attr(n, name="axis", i=1)))
    yield "attr-type-int-payload-floats", edit(S, "y = Softmax (x)", node0(
        lambda n: add_attr(n, name="axis", type=A.INT, floats=[1.5])))
    yield "attr-graph-on-relu", edit(S, RELU, node0(lambda n: add_attr(n, name="body", type=A.GRAPH, g=neg)))
    yield "attr-ref-in-main-graph", edit(S, "y = Softmax (x)", node0(
        lambda n: add_attr(n, name="axis", type=A.INT, ref_attr_name="outer_axis")))
    yield "init-missing", _cnn(lambda m: m.graph.initializer.remove(m.graph.initializer[7]))  # fc.w
    yield "init-missing-declared-as-input", _cnn(lambda m: (m.graph.input.append(h.make_tensor_value_info(
        "fc.w", T.FLOAT, [8, 10])), m.graph.initializer.remove(m.graph.initializer[7])))
    yield "init-raw-short", _init("conv1.w", lambda w: setattr(w, "raw_data", w.raw_data[:100]))
    yield "init-raw-long", _init("conv1.w", lambda w: setattr(w, "raw_data", w.raw_data + bytes(8)))
    yield "init-raw-odd-length", _init("fc.b", lambda w: setattr(w, "raw_data", w.raw_data[:39]))
    yield "init-raw-empty", _init("fc.b", lambda w: setattr(w, "raw_data", b""))
    yield "init-dtype-undefined", _init("fc.b", lambda w: setattr(w, "data_type", 0))
    yield "init-dtype-99", _init("fc.b", lambda w: setattr(w, "data_type", 99))
    yield "init-dtype-string-raw", _init("fc.b", lambda w: setattr(w, "data_type", T.STRING))
    yield "init-dtype-int64-in-float-add", _init("fc.b", lambda w: (setattr(w, "data_type", T.INT64),
                                                                    w.dims.__setitem__(0, 5)))
    yield "init-dims-huge", _init("fc.b", lambda w: w.dims.__setitem__(0, 10**12))
    yield "init-dims-negative", _init("fc.b", lambda w: w.dims.__setitem__(0, -10))
    yield "init-dims-overflow", _init("fc.b", lambda w: w.dims.extend([2**62, 2**62]))
    yield "init-dims-huge-and-raw-odd", _cnn(lambda m: (  # conv2.w declares 1e12 rows, bn.var has 5 bytes
        m.graph.initializer[6].dims.__setitem__(0, 10**12),
        setattr(m.graph.initializer[5], "raw_data", b"12345")))
    yield "init-dims-zero", _init("unused.w", lambda w: w.dims.__setitem__(0, 0))
    yield "init-no-name", _init("unused.w", lambda w: setattr(w, "name", ""))
    yield "init-duplicate-name", _cnn(lambda m: m.graph.initializer.append(m.graph.initializer[1]))
    yield "init-segment", _init("fc.b", lambda w: w.segment.MergeFrom(T.Segment(begin=2, end=5)))
    yield "init-nan-inf", _init("fc.b", lambda w: setattr(w, "raw_data", np.array(
        [np.nan, np.inf, -np.inf] + [1.0] * 7, np.float32).tobytes()))
    yield "shape-negative-dim-input", edit(S, RELU, lambda m: _dim(m, -5))
    yield "shape-negative-one-dim-input", edit(S, RELU, lambda m: _dim(m, -1))
    yield "shape-huge-dim-output", edit(S, RELU, lambda m: _dim(m, 10**12, "output"))
    for name, elem in [("undefined", 0), ("999", 999)]:
        yield f"shape-input-elem-{name}", edit(S, RELU, x_type(
            lambda t, e=elem: setattr(t.tensor_type, "elem_type", e)))
    yield "shape-input-no-type", edit(S, RELU, lambda m: m.graph.input[0].ClearField("type"))
    yield "shape-input-unranked", edit(S, RELU, x_type(lambda t: t.tensor_type.ClearField("shape")))
    yield "shape-input-sequence", edit("(float[3] x) => (int64 y)", "y = SequenceLength(x)", x_type(
        lambda t: t.CopyFrom(seq(h.make_tensor_type_proto(T.FLOAT, [3])))))
    yield "shape-input-optional", edit("(float[3] x) => (bool y)", "y = OptionalHasElement(x)", x_type(
        lambda t: t.CopyFrom(opt(h.make_tensor_type_proto(T.FLOAT, [3])))))
    yield "shape-value-info-bogus", edit(S, "a = Relu(x)\n y = Neg(a)", lambda m: m.graph.value_info.extend(
        [h.make_tensor_value_info("a", T.INT8, [9, 9, 9]), h.make_tensor_value_info("nobody", 999, [-3])]))
    yield "opset-negative", edit(S, RELU, lambda m: setattr(m.opset_import[0], "version", -5))
    yield "op-local-function", function_model("b = Relu(a)")
    yield "op-local-function-dangling", function_model("b = Add(a, ghost)")
    yield "op-local-function-recursive", function_model("b = local.F(a)")
    for name, indices, dims in [("valid", (0, 3), (4,)), ("index-out-of-range", (0, 99), (4,)),
                                ("index-negative", (-3, 1), (4,)), ("values-count-mismatch", (0, 1, 2), (4,)),
                                ("dims-wrong", (0, 1), (2, 2))]:
        yield f"sparse-{name}", edit(S4, "y = Add(x, s)", lambda m, i=indices, d=dims: sparse_tensor(m, i, d))
    s0 = lambda fn: lambda m: fn(m.graph.initializer[0])  # noqa: E731
    yield "string-raw-data", edit("() => (string[2] y)", "y = Identity(s)", s0(
        lambda t: (t.ClearField("string_data"), setattr(t, "raw_data", b"ab"))), STR2)
    yield "string-non-utf8", edit("() => (string[2] y)", "y = Identity(s)", s0(
        lambda t: t.string_data.__setitem__(0, b"\xff\xfe")), STR2)


def graph_cases() -> Iterator[Case]:
    """Valid protobuf, broken (or odd but legal) graph: one case per named defect."""
    for name, *args in TEXT_CASES:
        yield Case(name, text_model(*args).SerializeToString())
    for name, model in _edited_models():
        yield Case(name, model.SerializeToString())
    yield Case("graph-nested-if-30", _nested_ifs(30).SerializeToString())
    yield Case("graph-nested-type-40", _nested_type(40))
    yield Case("graph-nested-type-200", _nested_type(200))
    int_min = text_model("(int32[2] x) => (int32[2] y)", "d = Div(w, m)\n y = Add(x, d)",
                         "int32[2] w = {-2147483648, 6}, int32[2] m = {-1, 3}")
    yield Case("fold-int-min-div-minus-one", int_min.SerializeToString(), in_process=False)


def corpus(truncations: int = 8, flips: int = 8, randoms: int = 6, seed: int = 0) -> list[Case]:
    """Every fixed case plus seeded truncations and bit flips per base model, and ``randoms`` noise files."""
    cases = list(wire_cases()) + list(graph_cases())
    for base in BASES:
        cases += [truncated(base, off) for off in truncation_offsets(base, truncations)]
        cases += [bit_flipped(base, seed + i) for i in range(flips)]
    cases += [random_bytes(seed + i) for i in range(randoms)]
    assert len({c.name for c in cases}) == len(cases), "case names must be unique"
    return cases
