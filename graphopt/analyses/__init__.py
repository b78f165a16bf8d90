"""Analyses that passes share (shape inference); they read the IR and never change it."""
