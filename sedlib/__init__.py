"""sedlib: low-complexity sound event detection (EfficientSED) as a library."""

__version__ = "0.1.0"
