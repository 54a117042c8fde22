"""Configuration sources: each turns one place (file, environment, database) into a Layer."""

from .base import Layer, Source, merge_layers

__all__ = ["Layer", "Source", "merge_layers"]
