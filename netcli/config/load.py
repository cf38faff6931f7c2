"""Read a config file, YAML or Caffe's prototxt (by extension, else by content), into one tree
form (yamlload.LDict/LList with lines) that the typed messages check."""
from __future__ import annotations

import os

from ..errors import ConfigError
from .prototxt import is_prototxt, load_prototxt
from .prototxt_upgrade import upgrade_net, upgrade_solver
from .yamlload import _read_text, load_yaml


SOLVER_NETS = ("net_param", "train_net_param", "test_net_param")


def load_config(path, net=True):
    """The tree of a net or solver file; in prototxt, Caffe's V1 layers and net inputs are
    upgraded (in a net file, and in the nets a solver file holds), and a solver's solver_type."""
    path = os.fspath(path)
    text = _read_text(path)
    if is_prototxt(path, text):
        tree = load_prototxt(path, text)
    elif path.lower().endswith((".yaml", ".yml")):
        return load_yaml(path, text)
    else:
        # named neither way (pycaffe scripts write temporary files, .txt, .pt): a flat solver
        # reads as YAML too, until a field repeats (stepvalue) or a block sits on one line;
        # then it is prototxt if it reads as such, else the YAML error stands
        try:
            return load_yaml(path, text)
        except ConfigError as yaml_error:
            try:
                tree = load_prototxt(path, text)
            except ConfigError:
                raise yaml_error from None
    if net:
        return upgrade_net(tree, path)
    for key in SOLVER_NETS:
        for t in (tree[key] if isinstance(tree.get(key), list) else [tree.get(key)]):
            if isinstance(t, dict):
                upgrade_net(t, path)
    return upgrade_solver(tree, path)
