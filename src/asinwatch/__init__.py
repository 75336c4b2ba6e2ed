"""asinwatch: Amazon product and competitor monitoring backend."""

__version__ = "0.1.0"
