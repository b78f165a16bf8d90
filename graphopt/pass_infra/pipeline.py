"""Pipeline texts such as ``fold-constants,fixpoint(eliminate-dead-code,fold-constants){max=8}``.

Grammar::

    pipeline := step (',' step)*
    step     := NAME options? | 'fixpoint' '(' pipeline ')' options?
    options  := '{' KEY '=' VALUE (';'|',' KEY '=' VALUE)* '}'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union

from graphopt.errors import PipelineSyntaxError


@dataclass
class PassStep:
    """Run the pass ``name`` with ``options`` (strings, converted by the registry)."""

    name: str
    options: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.name + _format_options(self.options)


@dataclass
class Fixpoint:
    """Repeat ``steps`` until none of them changes the model, at most ``max_iterations`` times."""

    steps: list[Step]
    max_iterations: int = 10

    def __str__(self) -> str:
        inner = ",".join(str(s) for s in self.steps)
        return f"fixpoint({inner}){{max={self.max_iterations}}}"


Step = Union[PassStep, Fixpoint]


def parse_pipeline(text: str) -> list[Step]:
    """Parse a pipeline text; raises PipelineSyntaxError pointing at the offending column."""
    parser = _Parser(text)
    steps = parser.pipeline()
    parser.expect_end()
    return steps


def format_pipeline(steps: list[Step]) -> str:
    """The canonical text of a parsed pipeline."""
    return ",".join(str(s) for s in steps)


def pass_names(steps: list[Step]) -> list[str]:
    """Every pass name used, in order of first appearance."""
    names: list[str] = []
    for step in steps:
        inner = pass_names(step.steps) if isinstance(step, Fixpoint) else [step.name]
        names.extend(n for n in inner if n not in names)
    return names


def pass_steps(steps: list[Step]) -> list[PassStep]:
    """Every pass step (with its options), fixed points flattened, in order."""
    flat: list[PassStep] = []
    for step in steps:
        flat.extend(pass_steps(step.steps) if isinstance(step, Fixpoint) else [step])
    return flat


def _format_options(options: dict[str, str]) -> str:
    return "{" + ";".join(f"{k}={v}" for k, v in options.items()) + "}" if options else ""


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> PipelineSyntaxError:
        return PipelineSyntaxError(f"pipeline {self.text!r}, column {self.pos + 1}: {message}")

    def peek(self) -> str:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self, char: str) -> bool:
        if self.peek() == char:
            self.pos += 1
            return True
        return False

    def word(self, what: str) -> str:
        self.peek()
        match = re.compile(r"[A-Za-z0-9_][\w\-.]*").match(self.text, self.pos)
        if not match:
            raise self.error(f"expected {what}")
        self.pos = match.end()
        return match.group(0)

    def pipeline(self) -> list[Step]:
        steps = [self.step()]
        while self.take(","):
            steps.append(self.step())
        return steps

    def step(self) -> Step:
        name = self.word("a pass name")
        if name == "fixpoint":
            if not self.take("("):
                raise self.error("expected '(' after fixpoint")
            inner = self.pipeline()
            if not self.take(")"):
                raise self.error("expected ')' closing fixpoint(")
            options = self.options()
            unknown = set(options) - {"max"}
            if unknown:
                raise self.error(f"fixpoint takes only the option 'max', not {sorted(unknown)}")
            try:
                limit = int(options.get("max", 10))
            except ValueError:
                raise self.error("fixpoint max must be an integer") from None
            if limit < 1:
                raise self.error("fixpoint max must be at least 1")
            return Fixpoint(inner, limit)
        return PassStep(name, self.options())

    def options(self) -> dict[str, str]:
        options: dict[str, str] = {}
        if not self.take("{"):
            return options
        while True:
            key = self.word("an option name")
            if not self.take("="):
                raise self.error(f"expected '=' after option {key!r}")
            self.peek()
            match = re.compile(r"[^;,}\s]+").match(self.text, self.pos)
            if not match:
                raise self.error(f"expected a value for option {key!r}")
            self.pos = match.end()
            options[key] = match.group(0)
            if self.take("}"):
                return options
            if not (self.take(";") or self.take(",")):
                raise self.error("expected ';' or '}' in options")

    def expect_end(self) -> None:
        if self.peek():
            raise self.error(f"unexpected {self.peek()!r}")
