"""The typed error hierarchy of graphopt: one module, one base class.

Every error a user can cause derives from ``GraphoptError`` so that the CLI can turn it into one line
on stderr and a documented exit code, while programming errors (anything else) stay tracebacks.
"""

from __future__ import annotations


class GraphoptError(Exception):
    """Base class of every error graphopt raises on purpose."""

    exit_code = 1


class ModelLoadError(GraphoptError):
    """The input file is missing, unreadable, not ONNX, truncated or otherwise invalid."""

    exit_code = 2


class ModelNotFoundError(ModelLoadError, FileNotFoundError):
    """The model file does not exist (also a FileNotFoundError, so ordinary ``except OSError`` works)."""


class ExternalDataError(ModelLoadError):
    """A tensor's external data is missing, too short, or lies outside the model's folder."""


class WireError(ModelLoadError, ValueError):
    """The bytes are not a well-formed protobuf message (truncated, bad varint, groups...)."""


class UsageError(GraphoptError):
    """The command line or API call is inconsistent (unknown pass, bad option, bad shape...)."""

    exit_code = 2


class PipelineSyntaxError(UsageError):
    """A pipeline text such as ``fold-constants,fixpoint(...)`` could not be parsed."""


class UnknownPassError(UsageError):
    """A pipeline names a pass that no built-in or plugin registers."""


class PluginError(UsageError):
    """A plugin module or entry point could not be loaded, or two plugins claim one pass name."""


class OpsetConversionError(UsageError):
    """A node that cannot be expressed at the target opset (exit code 2: nothing is written)."""


class UnknownSizeError(UsageError):
    """A tensor's byte size is not static; ``--input-shape`` fixes the dynamic dims of the inputs."""


class PlanFormatError(UsageError):
    """A memory plan that is not valid JSON of the expected format."""


class UnknownTensorError(UsageError):
    """``--outputs``/``--inputs`` names a tensor the model does not have (the message lists close names)."""


class OpenCutError(UsageError):
    """An ``extract`` cut reads a tensor that is neither produced inside it, a weight, nor a listed input."""


class UnknownTypeError(UsageError):
    """A new graph input or output (extract, --outputs) whose type neither inference nor a run tells."""


class IRError(GraphoptError):
    """An IR mutation would break an invariant (dangling use, wrong graph, cycle...)."""

    exit_code = 3


class VerificationError(IRError):
    """The IR verifier found an inconsistency; the message lists every problem found."""


class GraphCycleError(IRError):
    """The graph has a cycle, so no topological order exists."""


class PassFailedError(GraphoptError):
    """A pass raised or broke equivalence while ``--on-failure raise`` was requested."""

    exit_code = 4


class NumericMismatchError(PassFailedError):
    """Two models disagree on the outputs for the same inputs beyond tolerance."""


class InvalidSubModelError(GraphoptError):
    """The extracted sub-model fails onnx.checker or does not compute the original's tensors (a bug)."""

    exit_code = 4


class UnsoundPlanError(GraphoptError):
    """The verifier or the arena executor found a memory plan that is not sound (a bug: please report it)."""

    exit_code = 1


class PlanExecutionError(GraphoptError, RuntimeError):
    """The arena run could not proceed (a tensor larger than its planned bytes, a node that fails)."""

    exit_code = 5


class NotWrappable(GraphoptError, ValueError):
    """graphopt.testing: the model has an op that would need its axes remapped to read NHWC tensors."""


class FoldDeclined(GraphoptError):
    """A constant-folding evaluator does not handle this case (the reason says which); another
    evaluator may. Not an error of the model."""


class Unfoldable(GraphoptError):
    """A node fails or has an implementation-defined result at run time: never fold it."""


class RuntimeCheckError(GraphoptError):
    """onnxruntime could not load or run a model needed for a numeric check."""

    exit_code = 5


class OutputWriteError(GraphoptError):
    """The output file could not be written (nothing partial is left behind)."""

    exit_code = 6
