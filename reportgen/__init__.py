"""reportgen: neural style transfer studies as static HTML reports."""

__version__ = "0.1.0"
