"""A built net's backward plan, by Caffe's rules: which layers need backward and which bottoms get
a gradient (propagate_down), the loss tops with their weights in their diffs, and the net's
outputs (tops nothing consumes) and inputs (the Input layers' tops). Net's last build step
before its executor (netcli/net.py)."""
from __future__ import annotations

from .errors import NetcliError


def plan_backward(net):
    """Caffe's rules: a layer needs backward if it has a param with lr_mult != 0 or a bottom
    that needs backward, and only if something below a loss depends on it."""
    need_blob: set[int] = set()
    n = len(net.layers)
    net.need_backward = [False] * n
    net.propagate_down = []
    for i, layer in enumerate(net.layers):
        bottoms = net.bottom_vecs[i]
        learn = any(layer.param_propagate_down or ())
        need = layer.has_backward and (net.force_backward or learn or
                                       any(id(b) in need_blob for b in bottoms))
        net.need_backward[i] = need
        if need:
            need_blob.update(id(t) for t in net.top_vecs[i])
    under_loss: set[int] = set()
    for i in reversed(range(n)):
        tops = net.top_vecs[i]
        contributes = any(w for w in net.loss_weights[i]) or any(id(t) in under_loss for t in tops)
        if not contributes:
            net.need_backward[i] = False
        if net.need_backward[i]:
            under_loss.update(id(b) for b in net.bottom_vecs[i])
    if net.force_backward:      # Caffe: then every layer runs backward, loss or not (a deploy net's saliency)
        net.need_backward = [bool(layer.has_backward) for layer in net.layers]
    if net.inference:           # Net(..., inference=True): forward only, whatever the loss layers say
        net.need_backward = [False] * n
    for layer, need in zip(net.layers, net.need_backward):
        layer.keeps_for_backward = bool(need)      # what a forward keeps for nothing is scratch instead
    for i, layer in enumerate(net.layers):
        pd_cfg = net.configs[i].p.propagate_down
        pd = []
        for k, b in enumerate(net.bottom_vecs[i]):
            ok = (net.need_backward[i] and k not in layer.no_grad_bottoms and
                  (net.force_backward or id(b) in need_blob) and id(b) in under_loss)
            if pd_cfg and not pd_cfg[k]:
                ok = False
            if net.force_backward:      # Caffe ORs in AllowForceBackward, over propagate_down too
                ok = net.need_backward[i] and k not in layer.no_grad_bottoms
            pd.append(ok)
        net.propagate_down.append(pd)
    # Loss tops: their diff holds the loss weight for the backward pass.
    net.loss_tops = []
    for i in range(n):
        for t, w in zip(net.top_vecs[i], net.loss_weights[i]):
            if w:
                t.diff[...] = w
                net.loss_tops.append((t, w))
    consumed = {b for bv in net.bottom_vecs for b in map(id, bv)}
    seen = set()
    net.outputs = []
    for tv in net.top_vecs:
        for t in tv:
            if id(t) not in consumed and t.name not in seen and net.blobs.get(t.name) is t:
                seen.add(t.name)
                net.outputs.append(t.name)
    net.inputs = [t.name for l, tv in zip(net.layers, net.top_vecs) if l.is_input for t in tv]
    net.loss = 0.0


def refuse_backward(net):
    """A net made for inference (Net(..., inference=True): plan_backward planned no backward pass)
    refuses one, with one line."""
    if net.inference:
        raise NetcliError(f"net '{net.name}' was made for inference (Net(..., inference=True)): it runs forward "
                          "only; make it without inference=True to run a backward pass")


def relu_masks(net):
    """A layer whose backward reads its top's data (one with a `keep_mask`: the ReLU) keeps a mask
    of what it needs instead where a later layer writes that top in place (a Dropout, a Scale)."""
    last_in_place = {}                   # blob -> the last layer that writes it in place
    for j, (bottoms, tops) in enumerate(zip(net.bottom_vecs, net.top_vecs)):
        for t in tops:
            if any(b is t for b in bottoms):
                last_in_place[id(t)] = j
    for i, layer in enumerate(net.layers):
        if hasattr(layer, "keep_mask"):
            layer.keep_mask = last_in_place.get(id(net.top_vecs[i][0]), -1) > i


def alias_split_tops(net):
    """A Split's top reads its bottom's data (one array, as in Caffe) unless a layer writes that top
    in place (a ReLU on one branch) or runs code (a Python layer): GoogLeNet's module inputs were
    held once per branch. The diffs stay apart (the Split sums them)."""
    written = set()
    for layer, bottoms, tops in zip(net.layers, net.bottom_vecs, net.top_vecs):
        written.update(id(b) for b in bottoms if layer.runs_code or any(b is t for t in tops))
    for layer, bottoms, tops in zip(net.layers, net.bottom_vecs, net.top_vecs):
        if layer.alias and len(bottoms) == 1:
            for t in tops:
                if id(t) not in written and t.data.shape == bottoms[0].data.shape:
                    t.data = bottoms[0].data
