"""Read a config file, YAML or Caffe's prototxt (by extension, else by content), into one tree
form (yamlload.LDict/LList with lines) that the typed messages check."""
from __future__ import annotations

import os

from .prototxt import is_prototxt, load_prototxt, upgrade_net
from .yamlload import _read_text, load_yaml


def load_config(path, net=True):
    """The tree of a net (`net`: Caffe's V1 layers and net inputs upgraded) or solver file."""
    path = os.fspath(path)
    text = _read_text(path)
    if not is_prototxt(path, text):
        return load_yaml(path, text)
    tree = load_prototxt(path, text)
    return upgrade_net(tree, path) if net else tree
