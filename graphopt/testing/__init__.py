"""Helpers for testing passes (hypothesis strategies and asserts arrive with issue 3)."""
