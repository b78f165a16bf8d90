"""Charts as plain SVG text: the per-pass node reduction of an optimize run (``reduction``) and the
shared pieces (``svg``); the memory plan's picture lives with the plan, in ``graphopt.memory.plot``."""
