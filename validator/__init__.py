"""slice-validator: a release gate for quantized text scorers, slice by slice."""

__version__ = "0.1.0"
