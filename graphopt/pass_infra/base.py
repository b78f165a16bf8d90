"""What a pass is: a named object with ``run(model) -> PassResult``; options are plain fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from graphopt.ir.model import Model


@dataclass
class PassResult:
    """The one result type of every pass: did it change the model, and its own counters."""

    changed: bool
    stats: dict[str, float] = field(default_factory=dict)
    rules: dict[str, dict] = field(default_factory=dict)  # per rewrite rule: attempts, matches, ...
    # problems the pass recovered from but that are bugs (an evaluator that raised): shown as warnings,
    # refused by --strict
    warnings: list[str] = field(default_factory=list)
    # a pass that lowers precision on purpose (float32 -> float16): its check holds the outputs to this
    # (rtol, atol) drift budget instead of equivalence, and every later check keeps that budget
    drift_budget: tuple[float, float] | None = None


@runtime_checkable
class Pass(Protocol):
    """A transformation that mutates a model in place.

    Implement it as a dataclass whose fields are its options (settable from a pipeline text as
    ``my-pass{limit=8}``) and register it with ``@register_pass``. Example::

        @register_pass
        @dataclass
        class RemoveIdentities:
            name: ClassVar[str] = "remove-identities"

            def run(self, model: Model) -> PassResult:
                ...
    """

    name: ClassVar[str]

    def run(self, model: Model) -> PassResult:
        """Transform ``model`` in place and say whether anything changed."""
        ...
