"""Pipeline text: steps, fixed points, options separated by ';' or ',', errors that point at a column."""

from __future__ import annotations

import pytest

from graphopt.errors import PipelineSyntaxError, UsageError
from graphopt.pass_infra.pipeline import Fixpoint, PassStep, format_pipeline, parse_pipeline, pass_names


def test_parse_passes_fixpoint_and_options_into_exact_steps() -> None:
    """Options may be separated by ';' or ','; a fixpoint carries its max."""
    steps = parse_pipeline("a,fixpoint(b,c){max=3},d{opt=1;x=2,y=3}")
    assert steps == [
        PassStep("a"),
        Fixpoint([PassStep("b"), PassStep("c")], 3),
        PassStep("d", {"opt": "1", "x": "2", "y": "3"}),
    ]


def test_fixpoint_defaults_to_ten_iterations() -> None:
    """fixpoint(a) is fixpoint(a){max=10}."""
    assert parse_pipeline("fixpoint(a)") == [Fixpoint([PassStep("a")], 10)]


def test_nested_fixpoints_parse() -> None:
    """A fixpoint may hold a fixpoint."""
    assert parse_pipeline("fixpoint(a,fixpoint(b){max=2})") == [
        Fixpoint([PassStep("a"), Fixpoint([PassStep("b")], 2)], 10)]


def test_whitespace_between_tokens_is_ignored() -> None:
    """' a , b { k = v } ' parses like 'a,b{k=v}'."""
    assert parse_pipeline(" a , b { k = v } ") == [PassStep("a"), PassStep("b", {"k": "v"})]


def test_option_values_keep_dots_dashes_and_signs() -> None:
    """Values run up to ';', ',', '}' or a space."""
    assert parse_pipeline("p{ratio=-0.5e-3;path=/tmp/x.onnx}") == [
        PassStep("p", {"ratio": "-0.5e-3", "path": "/tmp/x.onnx"})]


def test_format_gives_the_canonical_text_and_round_trips() -> None:
    """Options print with ';' and every fixpoint with its max."""
    text = format_pipeline(parse_pipeline("a, fixpoint(b,c), d{opt=1,x=2}"))
    assert text == "a,fixpoint(b,c){max=10},d{opt=1;x=2}"
    assert format_pipeline(parse_pipeline(text)) == text


def test_pass_names_lists_each_name_once_in_first_use_order() -> None:
    """Names inside fixpoints count; repeats do not."""
    assert pass_names(parse_pipeline("b,fixpoint(a,b),c,a")) == ["b", "a", "c"]


@pytest.mark.parametrize("text,message", [
    ("", "column 1: expected a pass name"),
    ("a,,b", "column 3: expected a pass name"),
    ("a,", "column 3: expected a pass name"),
    ("-a", "column 1: expected a pass name"),
    ("a b", "column 3: unexpected 'b'"),
    ("a)", "column 2: unexpected ')'"),
    ("a;b", "column 2: unexpected ';'"),
    ("fixpoint a", "column 10: expected '(' after fixpoint"),
    ("fixpoint(a", "column 11: expected ')' closing fixpoint("),
    ("fixpoint(a){n=2}", "column 17: fixpoint takes only the option 'max', not ['n']"),
    ("fixpoint(a){max=x}", "column 19: fixpoint max must be an integer"),
    ("fixpoint(a){max=0}", "column 19: fixpoint max must be at least 1"),
    ("a{k}", "column 4: expected '=' after option 'k'"),
    ("a{k=}", "column 5: expected a value for option 'k'"),
    ("a{k=1 x=2}", "column 7: expected ';' or '}' in options"),
    ("a{k=1", "column 6: expected ';' or '}' in options"),
    ("a{=1}", "column 3: expected an option name"),
])
def test_syntax_error_names_the_pipeline_and_the_column(text: str, message: str) -> None:
    """The message quotes the text and the 1-based column where parsing stopped."""
    with pytest.raises(PipelineSyntaxError) as info:
        parse_pipeline(text)
    assert str(info.value) == f"pipeline {text!r}, {message}"


def test_syntax_error_is_a_usage_error() -> None:
    """The CLI maps it to exit code 2 like every usage error."""
    assert issubclass(PipelineSyntaxError, UsageError)
    assert PipelineSyntaxError.exit_code == 2
