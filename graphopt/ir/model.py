"""The model: a main graph plus the ONNX metadata that must survive a round trip."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphopt.ir.graph import Graph


@dataclass
class Model:
    """An ONNX model in IR form.

    Model-local functions and training info are kept as their protos, untouched: graphopt treats calls
    to local functions as opaque nodes (documented in the README).
    """

    graph: Graph
    opset_imports: dict[str, int] = field(default_factory=lambda: {"": 21})
    ir_version: int = 10
    producer_name: str = ""
    producer_version: str = ""
    domain: str = ""
    model_version: int = 0
    doc_string: str = ""
    metadata_props: dict[str, str] = field(default_factory=dict)
    functions: list[Any] = field(default_factory=list)  # onnx.FunctionProto, opaque
    training_info: list[Any] = field(default_factory=list)  # onnx.TrainingInfoProto, opaque
    base_dir: str | None = None  # folder against which external data was resolved
    source_ops: dict[str, int] = field(default_factory=dict)  # node count per op type in the file
    analysis_stamps: dict[str, Any] = field(default_factory=dict)  # analyses' "nothing new" markers
    shape_inference: bool = True  # False: onnx shape inference is never run on this model (user's choice)

    @property
    def opset(self) -> int:
        """The default-domain (ai.onnx) opset version."""
        return self.opset_imports.get("", self.opset_imports.get("ai.onnx", 1))

    def node_count(self) -> int:
        """Nodes in the main graph and all subgraphs."""
        return sum(1 for _ in self.graph.all_nodes())

    def const_bytes(self) -> int:
        """Bytes of all constants (a proxy for the model's weight size)."""
        return sum(v.const.nbytes for g in self.graph.all_graphs() for v in g.consts
                   if v.const is not None)
