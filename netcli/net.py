"""Net: layers in order, a table of named blobs, and the learnable params in one flat buffer.

Build steps (all checks happen here, before any compute; every mistake is reported at once,
each naming file, line, layer and field):
parse YAML -> filter by phase/level/stage -> check the graph (bottoms, tops, in-place, cycles)
-> insert Split layers for blobs with several consumers -> set up layers in order (shapes)
-> allocate and fill params -> decide which layers need backward.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .blob import Blob, ShapeError, describe_budget, memory_budget
from .config.net_spec import LAYER_COMMON, NET_TOP
from .config.schema import Field, Message, Problems, did_you_mean
from .config.yamlload import LDict, Loc, load_yaml
from .errors import ConfigError, NetcliError
from .fillers import check_filler_shape, fill
from .parallel import Executor
from .layers import REGISTRY, LayerError

PHASES = ("TRAIN", "TEST", "VALIDATION")
_MESSAGES: dict[str, Message] = {}


def layer_message(cls) -> Message:
    """The full LayerParameter message of one layer type: common fields + its own params."""
    msg = _MESSAGES.get(cls.type)
    if msg is None:
        extra = [Field(k, spec, None, spec.doc or f"{cls.type} parameters") for k, spec in cls.params.items()]
        msg = _MESSAGES[cls.type] = Message(f"{cls.type} layer", LAYER_COMMON + extra)
    return msg


@dataclass
class LayerConfig:
    """One layer as written (after phase filtering), plus where it was written."""
    name: str
    type: str
    p: object
    bottom: list
    top: list
    loc: Loc | None
    loss_weight: list = field(default_factory=list)


def _rule_met(rule, phase, level, stages):
    if rule.phase is not None and rule.phase != phase:
        return False
    if rule.min_level is not None and level < rule.min_level:
        return False
    if rule.max_level is not None and level > rule.max_level:
        return False
    if any(s not in stages for s in rule.stage):
        return False
    if any(s in stages for s in rule.not_stage):
        return False
    return True


def _field_loc(p, path, default):
    """The line of a dotted field path such as 'convolution_param.kernel_size'."""
    loc = default
    obj = p
    for part in path.split("."):
        part = part.split("[")[0]
        if not hasattr(obj, "loc"):
            break
        loc = obj.loc(part, loc)
        obj = getattr(obj, part, None)
    return loc


class Net:
    """A net from a YAML file, for one phase.

    >>> net = Net("configs/lenet_deploy.yaml", phase="TEST")
    >>> net.blobs["data"].data[...] = images
    >>> out = net.forward()
    """

    def __init__(self, model, phase="TEST", weights=None, seed=None, level=0, stages=(),
                 dtype=np.float32, batch_size=None):
        phase = phase.upper()
        if phase not in PHASES:
            raise ConfigError(f"phase must be TRAIN, TEST or VALIDATION, got {phase!r}")
        self.phase, self.level, self.stages = phase, level, tuple(stages)
        self.dtype = dtype
        self.rng = np.random.default_rng(seed)
        self.model = model                # what it was built from: a path or a dict
        self._batch_size = batch_size     # replaces every Data layer's batch_size (netcli.evaluate)
        if isinstance(model, dict):
            self.source, tree = "<dict>", model
        else:
            self.source = os.fspath(model)
            tree = load_yaml(self.source)
        problems = Problems()
        self._unparsed_tops = set()   # tops of layers too broken to parse: not reported again
        configs = self._parse(tree, problems)
        configs = self._check_graph(configs, problems)
        problems.raise_if_any()
        configs = self._insert_splits(configs)
        self._build(configs, problems)
        problems.raise_if_any()
        self._check_class_labels(problems)
        self._allocate_params(problems)
        problems.raise_if_any()
        self._plan_backward()
        self.executor = Executor(self)
        if weights:
            for w in str(weights).split(","):
                self.load(w)

    # -- parsing -----------------------------------------------------------------------------
    def _parse(self, tree, problems):
        rest = tree
        if isinstance(tree, dict):   # 'layers' (or prototxt's 'layer') is read below
            rest = LDict((k, v) for k, v in tree.items() if k not in ("layers", "layer"))
            rest.loc = getattr(tree, "loc", None)
            rest.key_locs = getattr(tree, "key_locs", {})
        top = NET_TOP.parse(rest, problems, None, "")
        self.name = top.name
        self.force_backward = top.force_backward
        raw = tree.get("layers") if isinstance(tree, dict) else None
        if raw is None and isinstance(tree, dict):
            raw = tree.get("layer")
        loc = getattr(tree, "loc", None)
        if not isinstance(raw, list) or not raw:
            problems.add(loc, "a net needs a non-empty list 'layers'", None, "layers")
            return []
        item_locs = getattr(raw, "item_locs", [loc] * len(raw))
        configs = []
        for i, item in enumerate(raw):
            iloc = item_locs[i]
            if not isinstance(item, dict):
                problems.add(iloc, f"layers[{i}] must be a mapping with name, type, bottom, top")
                continue
            name = item.get("name")
            label = f"layer '{name}'" if name else f"layers[{i}]"
            tname = item.get("type")
            cls = REGISTRY.get(tname) if isinstance(tname, str) else None
            if cls is None:
                tops = item.get("top")
                self._unparsed_tops.update(str(t) for t in (tops if isinstance(tops, list) else [tops])
                                           if isinstance(t, (str, int, float)))
                tloc = getattr(item, "key_locs", {}).get("type", iloc)
                if tname is None:
                    problems.add(iloc, "required field 'type' is missing", label, "type")
                else:
                    problems.add(tloc, f"unknown layer type '{tname}'{did_you_mean(tname, REGISTRY)}",
                                 label, "type")
                continue
            label = f"{label} ({cls.type})"
            p = layer_message(cls).parse(item, problems, label, "", iloc)
            if p.include and p.exclude:
                problems.add(p.loc("include"), "give either include or exclude rules, not both", label, "include")
            rule_phase, phase = self.phase, p.phase or self.phase
            if self.phase == "VALIDATION" and not any(r.phase == "VALIDATION" for r in p.include + p.exclude):
                # A VALIDATION net is the TEST net, except that its data comes from the TRAIN data
                # layers that hold out a validation_fraction of their source.
                held_out = cls.type == "Data" and item.get("data_param", {}).get("validation_fraction", 0)
                if cls.type == "Data" and not held_out:
                    continue
                rule_phase = "TRAIN" if held_out else "TEST"
                phase = p.phase or ("VALIDATION" if held_out else "TEST")
            if p.include and not any(_rule_met(r, rule_phase, self.level, self.stages) for r in p.include):
                continue
            if p.exclude and any(_rule_met(r, rule_phase, self.level, self.stages) for r in p.exclude):
                continue
            p.phase = phase
            if self._batch_size is not None and cls.type == "Data":
                p.data_param.batch_size = self._batch_size
            if problems:     # a broken layer (or field) is reported already: keep only what parsed
                if not isinstance(p.name, str):
                    p.name = f"layers[{i}]"
                bottoms = [b for b in p.bottom if isinstance(b, str)]
                tops = [t for t in p.top if isinstance(t, str)]
                self._unparsed_tops.update(tops)
            else:
                bottoms, tops = list(p.bottom), list(p.top)
            configs.append(LayerConfig(p.name, cls.type, p, bottoms, tops, iloc))
        return configs

    def _check_graph(self, configs, problems):
        """Bottom/top counts, producers, duplicates, in-place rules, cycles."""
        producer: dict[str, int] = {}
        names = {}
        later, producers = {}, {}
        for i, c in enumerate(configs):
            for t in c.top:
                later.setdefault(t, i)
                producers.setdefault(t, []).append(i)
        cycles_searched = 0
        for i, c in enumerate(configs):
            cls = REGISTRY[c.type]
            label = f"layer '{c.name}' ({c.type})"
            if c.name in names:
                problems.add(c.loc, f"layer name '{c.name}' is used twice (also at line "
                             f"{configs[names[c.name]].loc.line if configs[names[c.name]].loc else '?'})", label, "name")
            names.setdefault(c.name, i)
            for what, got, (lo, hi) in (("bottom", c.bottom, cls.bottoms), ("top", c.top, cls.tops)):
                if len(got) < lo or (hi is not None and len(got) > hi):
                    want = f"exactly {lo}" if lo == hi else (f"at least {lo}" if hi is None else f"{lo} to {hi}")
                    problems.add(c.p.loc(what, c.loc), f"{c.type} takes {want} {what}(s), got {len(got)}",
                                 label, what)
            for b in c.bottom:
                if b in producer or b in self._unparsed_tops:
                    continue
                j = later.get(b)
                if j is None:
                    problems.add(c.p.loc("bottom", c.loc), f"bottom '{b}' is not produced by any earlier "
                                 f"layer{did_you_mean(b, producer)}", label, "bottom")
                elif j == i:
                    problems.add(c.p.loc("bottom", c.loc), f"bottom '{b}' is this layer's own top: only "
                                 "in-place layers may use a blob produced earlier", label, "bottom")
                else:
                    cycles_searched += 1     # a few paths name the problem; more only cost time
                    cyc = self._cycle(configs, i, j, producers) if cycles_searched <= 8 else None
                    msg = (f"cycle: {' -> '.join(cyc)}" if cyc else
                           f"bottom '{b}' is produced only by a later layer '{configs[j].name}'; "
                           f"layers run in the order written")
                    problems.add(c.p.loc("bottom", c.loc), msg, label, "bottom")
            for t in c.top:
                if t in c.bottom:
                    if not cls.in_place_ok:
                        problems.add(c.p.loc("top", c.loc), f"{c.type} does not allow in-place computation "
                                     f"(top '{t}' is also its bottom)", label, "top")
                elif t in producer:
                    problems.add(c.p.loc("top", c.loc), f"top '{t}' is already produced by layer "
                                 f"'{configs[producer[t]].name}' (only in-place layers, with bottom == top, "
                                 "may reuse a name)", label, "top")
            if len(set(c.top)) != len(c.top):
                problems.add(c.p.loc("top", c.loc), "the same top name is given twice", label, "top")
            for t in c.top:
                producer[t] = i
            lw = c.p.loss_weight
            if lw and len(lw) != len(c.top):
                problems.add(c.p.loc("loss_weight", c.loc), f"give one loss_weight per top ({len(c.top)}), "
                             f"got {len(lw)}", label, "loss_weight")
            c.loss_weight = list(lw) if lw else ([1.0] + [0.0] * (len(c.top) - 1) if cls.loss else [0.0] * len(c.top))
            pd = c.p.propagate_down
            if pd and len(pd) != len(c.bottom):
                problems.add(c.p.loc("propagate_down", c.loc), f"give one propagate_down per bottom "
                             f"({len(c.bottom)}), got {len(pd)}", label, "propagate_down")
        return configs

    @staticmethod
    def _cycle(configs, i, j, producers):
        """Names along a dependency path from layer j back to layer i, if one exists: one
        breadth-first search over (layer, bottom -> producers), O(layers + blobs)."""
        came_from = {j: None}
        frontier = [j]
        while frontier and i not in came_from:
            nxt = []
            for k in frontier:
                for b in configs[k].bottom:
                    for m in producers.get(b, ()):
                        if m not in came_from:
                            came_from[m] = k
                            nxt.append(m)
            frontier = nxt
        if i not in came_from:
            return None
        path, k = [], i       # i feeds came_from[i], ..., which feeds j, which feeds i
        while k is not None:
            path.append(configs[k].name)
            k = came_from[k]
        return path + [configs[i].name]

    def _insert_splits(self, configs):
        """A blob version consumed by several layers (or consumed and also weighted as a loss)
        gets a Split layer whose tops feed each consumer; backward sums their gradients."""
        current = {}          # blob name -> (producer index, top index)
        uses = {}             # (producer, top) -> [(consumer, bottom index)]
        for i, c in enumerate(configs):
            for k, b in enumerate(c.bottom):
                uses.setdefault(current[b], []).append((i, k))
            for k, t in enumerate(c.top):
                current[t] = (i, k)
        out = []
        rename = {}           # (consumer, bottom index) -> new name
        for i, c in enumerate(configs):
            c.bottom = [rename.get((i, k), b) for k, b in enumerate(c.bottom)]
            out.append(c)
            for k, t in enumerate(c.top):
                users = uses.get((i, k), [])
                lw = c.loss_weight[k]
                n = len(users) + (1 if lw and users else 0)
                if n <= 1:
                    continue
                names = [f"{t}_{c.name}_{k}_split_{m}" for m in range(n)]
                for m, (ci, bk) in enumerate(users):
                    rename[(ci, bk)] = names[m]
                split_lw = [0.0] * n
                if lw and users:
                    split_lw[-1] = lw
                    c.loss_weight[k] = 0.0
                sp = REGISTRY["Split"]
                p = layer_message(sp).parse(LDict(name=f"{t}_{c.name}_{k}_split", type="Split"),
                                            Problems(), None, "")
                p.phase = c.p.phase
                out.append(LayerConfig(p.name, "Split", p, [t], names, c.loc, split_lw))
        return out

    # -- setup -------------------------------------------------------------------------------
    def _build(self, configs, problems):
        self.layers, self.layer_names, self.configs = [], [], []
        self.bottom_vecs, self.top_vecs = [], []
        self.blobs: dict[str, Blob] = {}
        self.loss_weights = []             # per layer: list per top
        broken: set[str] = set()
        used, budget = 0, memory_budget()
        for c in configs:
            cls = REGISTRY[c.type]
            label = f"layer '{c.name}' ({c.type})"
            if any(b in broken for b in c.bottom):
                broken.update(c.top)       # its inputs are already reported
                continue
            bottoms = [self.blobs[b] for b in c.bottom]
            tops = []
            for t in c.top:
                if t in c.bottom:
                    tops.append(self.blobs[t])
                else:
                    tops.append(Blob(t))
            layer = cls(c.name, c.p, c.p.phase, c.bottom, c.top, self.rng)
            layer.base_dir = os.path.dirname(self.source) if self.source != "<dict>" else ""
            try:
                try:
                    layer.setup(bottoms, tops)
                except (ShapeError, MemoryError) as e:
                    raise LayerError(str(e) if isinstance(e, ShapeError) else "not enough memory for its blobs")
                used += sum(2 * t.data.nbytes for t in tops if t.data is not None and t.name not in c.bottom)
                used += sum(2 * 4 * int(np.prod(b.data)) for b in layer.blobs)
                if used > budget:
                    problems.add(c.loc, f"the net needs more than {used / 2 ** 30:.3g} GB for its blobs and params "
                                 f"(data and diff) up to this layer; {describe_budget()}",
                                 label)
                    return
                if tops and any(t.data is None for t in tops):   # pragma: no cover - layer bug
                    raise LayerError("setup left a top unallocated")
                if len(c.p.param) > len(layer.blobs):
                    raise LayerError(f"{len(c.p.param)} param entries given, but {c.type} has "
                                     f"{len(layer.blobs)} param blob(s)", "param")
                for b, fp in zip(layer.blobs, layer.fillers):
                    msg = fp is not None and check_filler_shape(fp, b.data)
                    if msg:
                        raise LayerError(msg)
            except LayerError as e:
                loc = _field_loc(c.p, e.field, c.loc) if e.field else c.loc
                problems.add(loc, str(e), label, e.field)
                broken.update(c.top)
                continue
            for t in tops:
                self.blobs[t.name] = t
            self.layers.append(layer)
            self.layer_names.append(c.name)
            self.configs.append(c)
            self.bottom_vecs.append(bottoms)
            self.top_vecs.append(tops)
            self.loss_weights.append(c.loss_weight)
        self.layer_dict = dict(zip(self.layer_names, self.layers))

    def _check_class_labels(self, problems):
        """A layer that reads class indices from a Data layer's labels (through Splits) checks the
        whole dataset once, here, so a bad label is reported by sample before training starts."""
        from .data.sources import check_class_labels
        producer = {id(t): i for i, tv in enumerate(self.top_vecs) for t in tv}
        for i, layer in enumerate(self.layers):
            if layer.class_labels is None:
                continue
            k, classes, ignore = layer.class_labels
            blob = self.bottom_vecs[i][k]
            j = producer.get(id(blob))
            while j is not None and self.layers[j].type == "Split":
                blob = self.bottom_vecs[j][0]
                j = producer.get(id(blob))
            if j is None or self.layers[j].type != "Data" or self.top_vecs[j][1:2] != [blob]:
                continue
            try:
                check_class_labels(self.layers[j].dataset, classes, ignore, f"layer '{layer.name}' ({layer.type})")
            except NetcliError as e:
                problems.add(self.configs[j].loc, str(e), f"layer '{self.layer_names[j]}' (Data)",
                             "data_param.source")

    def _allocate_params(self, problems):
        """Owner params live in one flat data buffer and one flat diff buffer (so an update or an
        allreduce is one call); layers sharing a param by name get the owner's Blob."""
        owners: dict[str, tuple] = {}     # share name -> (layer index, param index)
        self.params: dict[str, list[Blob]] = {}
        self.learnable_params: list[Blob] = []
        self.param_owner_keys: list[str] = []     # "<layer>/<i>" of each owner, in net order
        lr, decay, fills, views = [], [], [], []
        for li, (layer, c) in enumerate(zip(self.layers, self.configs)):
            if not layer.blobs:
                continue
            specs = c.p.param
            label = f"layer '{c.name}' ({c.type})"
            for pi, blob in enumerate(layer.blobs):
                shape = blob.data
                spec = specs[pi] if pi < len(specs) else None
                share = spec.name if spec is not None and spec.name else None
                forced = getattr(layer, "fixed_lr_mult", None)
                lm = spec.lr_mult if spec is not None else 1.0
                if forced is not None:
                    if spec is not None and spec.has("lr_mult") and spec.lr_mult != forced:
                        problems.add(c.p.loc("param", c.loc), f"{c.type} params cannot be learned: "
                                     f"lr_mult must be {forced}", label, f"param[{pi}].lr_mult")
                    lm = forced
                dm = spec.decay_mult if spec is not None else 1.0
                if share and share in owners:
                    oli, opi = owners[share]
                    owner = self.layers[oli].blobs[opi]
                    oshape = owner.data       # still a shape: allocation comes below
                    ok = (oshape == shape if spec.share_mode == "STRICT"
                          else int(np.prod(oshape)) == int(np.prod(shape)))
                    if not ok:
                        problems.add(c.p.loc("param", c.loc), f"shared param '{share}' has shape {shape} "
                                     f"here but {oshape} in its owner '{self.layer_names[oli]}'",
                                     label, f"param[{pi}].name")
                        continue
                    ospec = self.configs[oli].p.param[opi]
                    for attr in ("lr_mult", "decay_mult"):
                        if spec.has(attr) and ospec.has(attr) and getattr(spec, attr) != getattr(ospec, attr):
                            problems.add(c.p.loc("param", c.loc), f"shared param '{share}' has mismatched "
                                         f"{attr}", label, f"param[{pi}].{attr}")
                    if oshape == shape:
                        layer.blobs[pi] = owner
                    else:
                        views.append((blob, owner, shape))   # PERMISSIVE: bound after allocation
                    continue
                if share:
                    owners[share] = (li, pi)
                blob.name = f"{c.name}/{pi}"
                self.learnable_params.append(blob)
                self.param_owner_keys.append(blob.name)
                lr.append(lm)
                decay.append(dm)
                fills.append(layer.fillers[pi])
        sizes = [int(np.prod(b.data)) for b in self.learnable_params]
        total = int(sum(sizes))
        self.param_data = np.zeros(total, self.dtype)
        self.param_diff = np.zeros(total, self.dtype)
        self.lr_mults = np.asarray(lr, np.float32)
        self.decay_mults = np.asarray(decay, np.float32)
        self.param_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        for b, a, z in zip(self.learnable_params, self.param_offsets[:-1], self.param_offsets[1:]):
            shape = b.data
            b.data = self.param_data[a:z].reshape(shape)
            b.diff = self.param_diff[a:z].reshape(shape)
        for blob, owner, shape in views:
            blob.share(owner, shape)
        for b, fp in zip(self.learnable_params, fills):
            if fp is not None:
                fill(fp, b.data, self.rng)
        for name, layer in zip(self.layer_names, self.layers):
            if layer.blobs:
                self.params[name] = layer.blobs

    def _plan_backward(self):
        """Caffe's rules: a layer needs backward if it has a param with lr_mult != 0 or a bottom
        that needs backward, and only if something below a loss depends on it."""
        need_blob: set[int] = set()
        n = len(self.layers)
        self.need_backward = [False] * n
        self.propagate_down = []
        lr_of = {id(b): m for b, m in zip(self.learnable_params, self.lr_mults)}
        for i, layer in enumerate(self.layers):
            bottoms = self.bottom_vecs[i]
            learn = any(lr_of.get(id(b), 0) != 0 for b in layer.blobs)
            need = layer.has_backward and (self.force_backward or learn or
                                           any(id(b) in need_blob for b in bottoms))
            self.need_backward[i] = need
            if need:
                need_blob.update(id(t) for t in self.top_vecs[i])
        under_loss: set[int] = set()
        for i in reversed(range(n)):
            tops = self.top_vecs[i]
            contributes = any(w for w in self.loss_weights[i]) or any(id(t) in under_loss for t in tops)
            if not contributes:
                self.need_backward[i] = False
            if self.need_backward[i]:
                under_loss.update(id(b) for b in self.bottom_vecs[i])
        for i, layer in enumerate(self.layers):
            pd_cfg = self.configs[i].p.propagate_down
            pd = []
            for k, b in enumerate(self.bottom_vecs[i]):
                ok = (self.need_backward[i] and k not in layer.no_grad_bottoms and
                      (self.force_backward or id(b) in need_blob) and id(b) in under_loss)
                if pd_cfg and not pd_cfg[k]:
                    ok = False
                pd.append(ok)
            self.propagate_down.append(pd)
        # Loss tops: their diff holds the loss weight for the backward pass.
        self.loss_tops = []
        for i in range(n):
            for t, w in zip(self.top_vecs[i], self.loss_weights[i]):
                if w:
                    t.diff[...] = w
                    self.loss_tops.append((t, w))
        consumed = {b for bv in self.bottom_vecs for b in map(id, bv)}
        seen = set()
        self.outputs = []
        for tv in self.top_vecs:
            for t in tv:
                if id(t) not in consumed and t.name not in seen and self.blobs.get(t.name) is t:
                    seen.add(t.name)
                    self.outputs.append(t.name)
        self.inputs = [t.name for l, tv in zip(self.layers, self.top_vecs) if l.type == "Input" for t in tv]
        self.loss = 0.0

    # -- compute -----------------------------------------------------------------------------
    def forward(self, **inputs):
        """Run every layer forward; returns {output blob name: data}. Keyword arguments set
        blobs (by name) before running."""
        for k, v in inputs.items():
            self.blobs[k].data[...] = v
        self.executor.forward()
        self.sum_loss()
        return {name: self.blobs[name].data for name in self.outputs}

    def backward(self):
        """Back-propagate from the loss tops; param diffs accumulate (clear_param_diffs first,
        once per update) and are complete in param_diff when this returns."""
        self.executor.backward()

    def forward_backward(self, cleared=False):
        """forward() then backward(); returns the loss. cleared=True promises the param diffs are
        zero (clear_param_diffs since the last backward): layers may then write their gradients
        instead of adding them."""
        self.executor.forward_backward(cleared=cleared)
        return self.loss

    def sum_loss(self):
        self.loss = float(sum(w * float(t.data.sum()) for t, w in self.loss_tops))

    def clear_param_diffs(self):
        self.param_diff[...] = 0

    # -- state beyond params: RNG and data positions, for exact resume -------------------------------
    def get_state(self):
        state = {"rng": self.rng.bit_generator.state}
        for name, layer in zip(self.layer_names, self.layers):
            st = layer.get_state()
            if st is not None:
                state[name] = st
        return state

    def set_state(self, state):
        self.rng.bit_generator.state = state["rng"]
        for name, layer in zip(self.layer_names, self.layers):
            if name in state:
                layer.set_state(state[name])

    def data_layers(self):
        return [l for l in self.layers if l.type == "Data"]

    def data_size(self):
        """Samples in this net's (first) Data layer, or None."""
        d = self.data_layers()
        return len(d[0]) if d else None

    def batch_size(self):
        d = self.data_layers()
        return d[0].B if d else None

    def rewind_data(self):
        for layer in self.data_layers():
            layer.rewind()

    # -- weights -----------------------------------------------------------------------------
    def share_weights(self, other: "Net"):
        """Use `other`'s param memory (by layer name), as Caffe's test nets share the train net's."""
        for name, blobs in self.params.items():
            src = other.params.get(name)
            if src is None:
                continue
            for mine, theirs in zip(blobs, src):
                if mine.shape != theirs.shape:
                    raise ConfigError(f"cannot share weights of layer '{name}': shape {mine.shape} "
                                      f"here, {theirs.shape} in the {other.phase} net")
                mine.data, mine.diff = theirs.data, theirs.diff
        self.executor.bind_grads()           # diffs now live in `other`: backward goes layer by layer

    def save(self, path):
        from .snapshot import save_weights
        save_weights(self, path)

    def load(self, path, strict=True):
        """Load weights by name ('<layer>/<i>'); strict: every param and every array must
        match. Returns (loaded names, names in the file that were not used)."""
        from .snapshot import load_weights
        return load_weights(self, path, strict=strict)

    def __repr__(self):
        return f"Net({self.name!r}, phase={self.phase}, layers={len(self.layers)})"
