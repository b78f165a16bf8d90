"""Memory plans: the data format, an independent verifier, an arena executor and a plot."""

from graphopt.memory.plan import METADATA_KEY, MemoryPlan, Placement, PlanFormatError

__all__ = ["METADATA_KEY", "MemoryPlan", "Placement", "PlanFormatError"]
