"""The IR: values with use lists, nodes with read-only inputs, graphs, models, lazy tensors."""

from graphopt.ir.attributes import Attr
from graphopt.ir.clone import clone_model
from graphopt.ir.graph import Graph
from graphopt.ir.model import Model
from graphopt.ir.mutate import bypass, replace_all_uses_with, replace_node
from graphopt.ir.node import Node
from graphopt.ir.tensor import Tensor
from graphopt.ir.value import Value
from graphopt.ir.verify import verify

__all__ = ["Attr", "Graph", "Model", "Node", "Tensor", "Value", "bypass", "clone_model",
           "replace_all_uses_with", "replace_node", "verify"]
