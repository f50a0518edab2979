"""Palaver: a self-hostable server for the Tavus Conversational Video API (v2)."""

__version__ = "0.1.0"
__all__ = ["__version__"]
