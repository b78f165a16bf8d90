"""NameGenerator: one source of unique, deterministic names for export."""

from __future__ import annotations

from graphopt.ir.names import NameGenerator

_CALLS: list[tuple[str, str | None, str]] = [
    ("claim", "x", "input"), ("claim", "x", "input"), ("claim", None, "relu"), ("claim", "", "relu"),
    ("fresh", "relu", ""), ("claim", "x_0", "v"), ("claim", "relu_1", "relu"), ("fresh", "x_7", ""),
    ("claim", "w", "const"), ("claim", "w", "const"),
]


def _run(calls: list[tuple[str, str | None, str]]) -> list[str]:
    gen = NameGenerator()
    out = []
    for kind, proposed, stem in calls:
        out.append(gen.claim(proposed, stem) if kind == "claim" else gen.fresh(proposed or stem))
    return out


def test_same_calls_give_the_same_names() -> None:
    """Two generators fed the same sequence of requests produce identical names."""
    assert _run(_CALLS) == _run(_CALLS)


def test_names_follow_the_documented_scheme() -> None:
    """Free proposals are kept; taken ones get <stem>_<n> with a per-stem counter."""
    assert _run(_CALLS) == ["x", "x_0", "relu_0", "relu_1", "relu_2", "x_1", "relu_3", "x_2",
                            "w", "w_0"]


def test_every_name_handed_out_is_unique() -> None:
    """Hundreds of colliding proposals (with numeric suffixes) never produce a duplicate."""
    gen = NameGenerator()
    names = [gen.claim(f"v_{i % 7}" if i % 3 else "v", "v") for i in range(300)]
    names += [gen.fresh("v") for _ in range(50)]
    assert len(set(names)) == len(names) == 350


def test_claim_keeps_a_free_proposal_and_reserve_reports_whether_it_was_free() -> None:
    """reserve claims a free name once; claim falls back to the stem for empty proposals."""
    gen = NameGenerator()
    assert gen.reserve("a") is True
    assert gen.reserve("a") is False
    assert gen.claim("b", "stem") == "b"
    assert gen.claim("", "stem") == "stem_0"
    assert gen.claim(None, "stem") == "stem_1"


def test_fresh_skips_names_reserved_earlier() -> None:
    """A fresh name never equals a name someone reserved before."""
    gen = NameGenerator()
    gen.reserve("t_0")
    gen.reserve("t_1")
    assert gen.fresh("t") == "t_2"
    assert gen.claim("t_0", "t") == "t_3"


def test_fresh_strips_a_numeric_suffix_and_uses_v_for_an_empty_stem() -> None:
    """fresh("conv_12") counts on the stem "conv"; an empty stem becomes "v"."""
    gen = NameGenerator()
    assert gen.fresh("conv_12") == "conv_0"
    assert gen.fresh("conv") == "conv_1"
    assert gen.fresh("") == "v_0"
    assert gen.fresh("_5") == "v_1"
