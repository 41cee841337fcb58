"""Lambda packaging and deployment helpers."""
