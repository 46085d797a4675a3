"""The package version (recorded in every image's parameters)."""

__version__ = "0.2.0"
