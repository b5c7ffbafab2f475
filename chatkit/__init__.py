"""chatkit: an offline domain assistant kit."""

__version__ = "0.1.0"
