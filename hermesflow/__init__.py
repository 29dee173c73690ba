"""hermesflow: imaging and statistics of a stroke cell-therapy trial, on Nipype."""

__version__ = "0.1.0"

__all__ = ["__version__"]
