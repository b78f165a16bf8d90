"""Import ONNX files and protos into the IR and export them back, losslessly."""

from graphopt.onnx_io.exporter import ExternalDataPlan, export_model, export_node, export_with_names
from graphopt.onnx_io.importer import import_model, load_model, load_proto
from graphopt.onnx_io.save import save_model, serialize

__all__ = ["ExternalDataPlan", "export_model", "export_node", "export_with_names", "import_model",
           "load_model", "load_proto",
           "save_model", "serialize"]
