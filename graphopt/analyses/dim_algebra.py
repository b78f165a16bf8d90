"""Dimensions known only at run time, in a canonical form so that equal dims compare equal.

A dim is an int (known), a ``SymbolicDim`` (an integer times a product of run-time dims, each named by
the value and axis it was first read from), or None (nothing is known). Two different roots are never
assumed equal, not even when the model gives them the same ``dim_param`` name: onnxruntime does not
enforce such names, so a run may feed different sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from graphopt.ir.value import Value

Root = tuple[Value, int]  # (value, axis): the first place a run-time dim was seen


@dataclass(frozen=True)
class SymbolicDim:
    """``coefficient`` times the product of the run-time dims ``factors`` (kept sorted)."""

    coefficient: int
    factors: tuple[Root, ...]

    def __repr__(self) -> str:
        names = "*".join(f"{v.name or 'v'}[{axis}]" for v, axis in self.factors)
        return names if self.coefficient == 1 else f"{self.coefficient}*{names}"


DimExpr = Union[int, SymbolicDim]


def root(value: Value, axis: int) -> SymbolicDim:
    """The run-time dim ``axis`` of ``value``, as a dim of its own."""
    return SymbolicDim(1, ((value, axis),))


def _canonical(coefficient: int, factors: list[Root]) -> DimExpr:
    if coefficient == 0 or not factors:
        return coefficient
    return SymbolicDim(coefficient, tuple(sorted(factors, key=lambda f: (id(f[0]), f[1]))))


def _parts(dim: DimExpr) -> tuple[int, list[Root]]:
    return (dim, []) if isinstance(dim, int) else (dim.coefficient, list(dim.factors))


def multiply(*dims: DimExpr | None) -> DimExpr | None:
    """The product of ``dims`` (None when one is unknown)."""
    coefficient, factors = 1, []
    for dim in dims:
        if dim is None:
            return None
        c, f = _parts(dim)
        coefficient *= c
        factors += f
    return _canonical(coefficient, factors)


def divide(numerator: DimExpr | None, denominator: DimExpr | None) -> DimExpr | None:
    """``numerator / denominator`` when it is exact for every value of the run-time dims, else None."""
    if numerator is None or denominator is None:
        return None
    (nc, nf), (dc, df) = _parts(numerator), _parts(denominator)
    if dc == 0 or nc % dc:
        return None
    remaining = list(nf)
    for factor in df:
        if factor not in remaining:
            return None
        remaining.remove(factor)
    return _canonical(nc // dc, remaining)


def broadcast(dims: list[DimExpr | None]) -> DimExpr | None:
    """The dim that numpy broadcasting of ``dims`` gives in every run that succeeds, or None.

    A known 1 never decides; a known size above 1 does (the others are 1 or equal to it); equal
    symbolic dims decide; two different symbolic dims may each be 1 at run time, so nothing is known.
    """
    deciding = [d for d in dims if d != 1]
    if not deciding:
        return 1
    known = {d for d in deciding if isinstance(d, int)}
    if len(known) == 1:
        return known.pop()
    if known or any(d is None for d in deciding):
        return None
    first = deciding[0]
    return first if all(d == first for d in deciding) else None


def broadcast_shapes(shapes: list[tuple[DimExpr | None, ...]]) -> tuple[DimExpr | None, ...]:
    """Multidirectional (numpy) broadcasting of whole shapes, aligned on the last axis."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(rank):
        column = [s[len(s) - rank + axis] for s in shapes if len(s) - rank + axis >= 0]
        out.append(broadcast(column))
    return tuple(out)
