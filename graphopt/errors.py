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


class ExternalDataError(ModelLoadError):
    """A tensor's external data is missing, too short, or lies outside the model's folder."""


class UsageError(GraphoptError):
    """The command line or API call is inconsistent (unknown pass, bad option, bad shape...)."""

    exit_code = 2


class PipelineSyntaxError(UsageError):
    """A pipeline text such as ``fold-constants,fixpoint(...)`` could not be parsed."""


class UnknownPassError(UsageError):
    """A pipeline names a pass that no built-in or plugin registers."""


class PluginError(UsageError):
    """A plugin module or entry point could not be loaded."""


class IRError(GraphoptError):
    """An IR mutation would break an invariant (dangling use, wrong graph, cycle...)."""

    exit_code = 3


class VerificationError(IRError):
    """The IR verifier found an inconsistency; the message lists every problem found."""


class PassFailedError(GraphoptError):
    """A pass raised or broke equivalence while ``--on-failure raise`` was requested."""

    exit_code = 4


class NumericMismatchError(PassFailedError):
    """Two models disagree on the outputs for the same inputs beyond tolerance."""


class RuntimeCheckError(GraphoptError):
    """onnxruntime could not load or run a model needed for a numeric check."""

    exit_code = 5


class OutputWriteError(GraphoptError):
    """The output file could not be written (nothing partial is left behind)."""

    exit_code = 6
