"""YAML -> typed specs, with validation errors that name file, line, layer and field."""
from .yamlload import load_yaml, Loc
from .schema import Field, Message, Params, Problems

__all__ = ["load_yaml", "Loc", "Field", "Message", "Params", "Problems"]
