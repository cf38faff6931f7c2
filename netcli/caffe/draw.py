"""caffe.draw: pycaffe's draw_net_to_file / draw_net over netcli's own drawing (netcli/viz/draw.py:
SVG, DOT or PNG by the file's extension, no Graphviz or pydot needed).

The net may be what pycaffe scripts pass (a NetParameter: caffe_pb2's after text_format.Merge,
or NetSpec's to_proto()) or a caffe.Net / netcli.Net. A NetParameter is built as a netcli.Net of
the phase asked for (pycaffe's phase=None: TRAIN), so the files its data layers read must exist.
"""
from __future__ import annotations

import os
import tempfile

from ..errors import NetcliError
from ..net import Net as _NetcliNet
from ..viz.draw import draw as _draw
from .pynet import PHASES, Net


def _native(caffe_net, phase):
    if isinstance(caffe_net, Net):
        return caffe_net.native
    if isinstance(caffe_net, _NetcliNet):
        return caffe_net
    text = str(caffe_net)
    if not text.strip():
        raise NetcliError("caffe.draw: the NetParameter has no layers")
    which = "TRAIN" if phase is None else PHASES.get(phase, phase)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "net.prototxt")
        with open(path, "w") as f:
            f.write(text)
        return _NetcliNet(path, phase=which)


def draw_net_to_file(caffe_net, filename, rankdir="LR", phase=None, display_lrm=False):
    """Draw the net into `filename` (.svg, .dot or .png); rankdir "LR" (pycaffe's default) or "TB"."""
    _draw(_native(caffe_net, phase), os.fspath(filename), "TB" if rankdir in ("TB", "BT") else "LR")


def draw_net(caffe_net, rankdir="LR", ext="png", phase=None, display_lrm=False):
    """The drawing's bytes in format `ext` (png, svg or dot)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, f"net.{ext}")
        draw_net_to_file(caffe_net, path, rankdir, phase)
        with open(path, "rb") as f:
            return f.read()


def get_pydot_graph(caffe_net, rankdir="LR", label_edges=True, phase=None, display_lrm=False):
    raise NetcliError("caffe.draw.get_pydot_graph: netcli draws without pydot; use draw_net_to_file "
                      "(.svg, .dot or .png) or draw_net")
