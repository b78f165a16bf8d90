"""A stateful test: random semantics-preserving IR mutations keep every IR invariant and the numbers.

Each step applies one mutation through the public API (insert an Identity or a Neg pair on an edge,
bypass an Identity, forget internal names, clone, export+import, run a built-in pass); after every step
the IR must be consistent and onnxruntime must give the original outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from property_budget import examples

import graphopt
from graphopt import Node, bypass, clone_model, export_model, import_model
from graphopt.numerics.compare import compare_outputs
from graphopt.numerics.run import run_model, run_proto
from graphopt.testing.asserts import assert_ir_consistent, save_failure
from graphopt.testing.strategies import feeds, models


class IRMutations(RuleBasedStateMachine):
    """Mutates one model; invariants hold after every rule."""

    model: graphopt.Model
    inputs: dict[str, np.ndarray]
    reference: dict[str, Any]

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        proto = data.draw(models(max_nodes=10, if_subgraphs=data.draw(st.booleans())))
        self.inputs = data.draw(feeds(proto))
        self.reference = run_proto(proto, self.inputs)
        self.model = import_model(proto)
        self.steps: list[str] = []

    def _uses(self) -> list[tuple[Node, int]]:
        return [(n, i) for g in self.model.graph.all_graphs() for n in g
                for i, v in enumerate(n.inputs) if v is not None]

    @precondition(lambda self: bool(self._uses()))
    @rule(data=st.data(), op=st.sampled_from(["Identity", "NegNeg"]))
    def insert_on_edge(self, data: st.DataObject, op: str) -> None:
        """x -> f becomes x -> Identity -> f, or x -> Neg -> Neg -> f (exact in IEEE arithmetic)."""
        node, index = data.draw(st.sampled_from(self._uses()))
        value = node.inputs[index]
        if op == "NegNeg" and value.dtype not in (1, 10, 11):  # float, float16, double only
            op = "Identity"
        chain = [Node("Identity", [value])] if op == "Identity" else [Node("Neg", [value])]
        if op == "NegNeg":
            chain.append(Node("Neg", [chain[0].outputs[0]]))
        for new in chain:
            new.outputs[0].dtype = value.dtype
        node.graph.insert_before(node, chain)
        node.replace_input(index, chain[-1].outputs[0])
        self.steps.append(f"insert {op} before {node!r}:{index}")

    @rule(data=st.data())
    def bypass_an_identity(self, data: st.DataObject) -> None:
        """Readers of an Identity's output read its input instead (outputs handed over or kept)."""
        idents = [n for g in self.model.graph.all_graphs() for n in g if n.op_type == "Identity"]
        if idents:
            node = data.draw(st.sampled_from(idents))
            bypass(node)
            self.steps.append(f"bypass {node!r}")

    @rule()
    def forget_internal_names(self) -> None:
        """Names are boundary data: dropping every non-interface name changes nothing."""
        interface = {*self.model.graph.inputs, *self.model.graph.outputs}
        for graph in self.model.graph.all_graphs():
            for node in graph:
                for out in node.outputs:
                    if out not in interface and out.name:
                        out.name = None
        self.steps.append("forget names")

    @rule()
    def clone(self) -> None:
        """A clone is as good as the original."""
        self.model = clone_model(self.model)
        self.steps.append("clone")

    @rule()
    def export_and_import(self) -> None:
        """A round trip through ONNX is as good as the original."""
        self.model = import_model(export_model(self.model))
        self.steps.append("export+import")

    @rule(name=st.sampled_from(["eliminate-dead-code", "fold-constants", "topological-sort"]))
    def run_builtin_pass(self, name: str) -> None:
        """Built-in passes on an already mutated IR."""
        graphopt.optimize(self.model, pipeline=name, check="off", on_failure="raise")
        self.steps.append(name)

    @invariant()
    def ir_is_consistent_and_numbers_unchanged(self) -> None:
        """Verifier, use lists, onnx.checker, and the original outputs."""
        if not hasattr(self, "model"):
            return
        try:
            assert_ir_consistent(self.model)
            mismatches = compare_outputs(self.reference, run_model(self.model, self.inputs))
            assert not mismatches, "; ".join(str(m) for m in mismatches)
        except Exception as exc:
            path = save_failure(self.model, "ir-mutations")
            raise AssertionError(f"after steps {self.steps}: {exc}\n  model saved to {path}") from exc


IRMutations.TestCase.settings = settings(max_examples=examples(400), stateful_step_count=8)
TestIRMutations = IRMutations.TestCase
