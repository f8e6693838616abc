"""The package version, in a module of its own so ``provider_info`` can read it without importing
the package's ``__init__`` back (which imports ``provider_info`` lazily)."""

from __future__ import annotations

__version__ = "0.1.0"
