"""Fixtures that train a small model bundle once per test session."""
