"""Numeric equivalence: seeded feeds, onnxruntime runs, dtype-aware comparison, the check."""
