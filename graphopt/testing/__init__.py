"""Helpers for testing passes: hypothesis strategies (``strategies``) and asserts (``asserts``)."""
