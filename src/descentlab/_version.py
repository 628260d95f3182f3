"""The package version (its own module, so that the lower floors can read it without importing the package face)."""

__version__ = "0.1.0"
