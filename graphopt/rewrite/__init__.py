"""The pattern-rewrite helper every fusion uses, public for users' own rules.

``Op``/``Var``/``Const``/``Opt`` build tree patterns rooted at the last op; a ``Rule`` is pattern + check
(returning a rejection reason) + rewrite; ``apply_rules`` matches consumers first so the largest pattern
wins, refuses matches whose intermediate values escape, and keeps per-rule statistics.
``inline_branch`` splices one branch of an If into the enclosing graph.
"""

from graphopt.rewrite.inline import constant_condition, inline_branch, inline_if
from graphopt.rewrite.pattern import Const, Match, Op, Opt, Var, match
from graphopt.rewrite.rule import RewriteContext, Rule, RuleStats, apply_rules, escapes, rules_result

__all__ = ["Const", "Match", "Op", "Opt", "RewriteContext", "Rule", "RuleStats", "Var", "apply_rules",
           "constant_condition", "escapes", "inline_branch", "inline_if", "match", "rules_result"]
