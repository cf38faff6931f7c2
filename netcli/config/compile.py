"""The compile stage: a net file (YAML tree) -> an immutable NetSpec for one phase.

Steps, every mistake collected and reported at once with file, line, layer and field:
parse each layer against its message -> filter by phase/level/stage -> check the graph (bottom
and top counts, producers, duplicates, in-place rules, cycles in linear time) -> insert Split
layers for blobs with several consumers. Nothing downstream reads the raw config again: the Net
builds from the NetSpec. `config_to_dict` writes a net file back (`netcli check --print-config`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..layers import REGISTRY
from .net_spec import LAYER_COMMON, NET_TOP
from .schema import Field, Message, Problems, did_you_mean
from .load import load_config
from .yamlload import LDict, Loc

PHASES = ("TRAIN", "TEST", "VALIDATION")
_MESSAGES: dict[str, Message] = {}


def layer_message(cls) -> Message:
    """The full LayerParameter message of one layer type: common fields + its own params."""
    msg = _MESSAGES.get(cls.type)
    if msg is None:
        extra = [Field(k, spec, None, spec.doc or f"{cls.type} parameters") for k, spec in cls.params.items()]
        msg = _MESSAGES[cls.type] = Message(f"{cls.type} layer", LAYER_COMMON + extra)
    return msg


def without_foreign_blocks(cls, item, where, label):
    """The layer `item` without the parameter blocks of other layer types (an image_data_param on
    an Input layer), which Caffe ignores: one warning line names them."""
    if not isinstance(item, dict):
        return item
    foreign = [k for k in item if isinstance(k, str) and k not in cls.params and k in _all_param_keys()]
    if not foreign:
        return item
    from ..log import warn
    loc = getattr(item, "key_locs", {}).get(foreign[0]) or getattr(item, "loc", None) or where
    warn(f"{loc}: {label}: ignoring {', '.join(foreign)} ({cls.type} layers do not read "
         f"{'it' if len(foreign) == 1 else 'them'}; Caffe ignores {'it' if len(foreign) == 1 else 'them'} too)",
         once_key=("foreign blocks", str(loc), label))
    kept = LDict((k, v) for k, v in item.items() if k not in foreign)
    kept.loc = getattr(item, "loc", None)
    kept.key_locs = {k: v for k, v in getattr(item, "key_locs", {}).items() if k not in foreign}
    return kept


def _all_param_keys():
    return {k for c in REGISTRY.values() for k in c.params}


@dataclass
class LayerConfig:
    """One layer as written (after phase filtering), plus where it was written; the compile
    stage's working form of a LayerSpec."""
    name: str
    type: str
    p: object
    bottom: list
    top: list
    loc: Loc | None
    loss_weight: list = field(default_factory=list)
    written_bottom: tuple = ()       # the bottoms as written, before Splits renamed them
    inserted: bool = False           # a Split netcli inserted


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


def field_loc(p, path, default):
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


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a compiled net: its parsed params (`p`, with `p.phase` its phase), blob names,
    loss weight per top, and where it was written."""
    name: str
    type: str
    p: object
    bottom: tuple
    top: tuple
    loc: Loc | None
    loss_weight: tuple
    written_bottom: tuple = ()      # the bottoms as written (a consumer of a Split reads its tops)
    inserted: bool = False          # a Split netcli inserted for a blob with several consumers


@dataclass(frozen=True)
class NetSpec:
    """A net for one phase, checked: layers in run order (Splits inserted)."""
    name: str
    force_backward: bool
    phase: str
    source: str               # the file it came from ("<dict>" for a tree given in Python)
    layers: tuple

    @property
    def base_dir(self):
        return os.path.dirname(self.source) if self.source != "<dict>" else ""


def compile_net(model, phase="TEST", level=0, stages=(), batch_size=None) -> NetSpec:
    """Compile a net file (path) or tree (dict) for one phase; ConfigError lists every mistake.
    `batch_size` replaces every Data layer's batch size (netcli.evaluate's partial batches)."""
    phase = phase.upper() if isinstance(phase, str) else phase
    if phase not in PHASES:
        raise ConfigError(f"phase must be TRAIN, TEST or VALIDATION, got {phase!r}")
    if isinstance(model, dict):
        source, tree = "<dict>", model
    else:
        source = os.fspath(model)
        tree = load_config(source)
    c = _Compiler(phase, level, tuple(stages), batch_size)
    problems = Problems()
    configs = c.parse(tree, problems)
    configs = c.check_graph(configs, problems)
    problems.raise_if_any()
    configs = c.insert_splits(configs)
    layers = tuple(LayerSpec(x.name, x.type, x.p, tuple(x.bottom), tuple(x.top), x.loc, tuple(x.loss_weight),
                             tuple(x.written_bottom), x.inserted)
                   for x in configs)
    return NetSpec(c.name, c.force_backward, phase, source, layers)


def spec_summary(spec):
    """A NetSpec as plain data (what two specs must share to build the same net)."""
    return [(x.name, x.type, x.p.to_dict(), x.p.phase, x.bottom, x.top, x.loss_weight) for x in spec.layers]


def config_to_dict(path, enum=None, layers_key="layers"):
    """The net file at `path` as written back: every layer (all phases), only the fields given,
    enum values in their canonical spelling (or as `enum` styles them: Params.to_dict). Loading
    it gives the same net."""
    tree = load_config(path) if not isinstance(path, dict) else path
    problems = Problems()
    rest = LDict((k, v) for k, v in tree.items() if k not in ("layers", "layer"))
    out = NET_TOP.parse(rest, problems, None, "").to_dict(enum)
    layers = []
    raw = tree.get("layers") or tree.get("layer") or []
    for item in raw if isinstance(raw, list) else [raw]:
        cls = REGISTRY.get(item.get("type")) if isinstance(item, dict) else None
        if cls is None:
            where = getattr(item, "loc", None) or path
            what = f"layer '{item.get('name')}': unknown layer type '{item.get('type')}'" if isinstance(item, dict) \
                else "a layer is not a mapping"
            raise ConfigError(f"{where}: {what}{did_you_mean(item.get('type'), REGISTRY) if isinstance(item, dict) else ''}")
        item = without_foreign_blocks(cls, item, path, f"layer '{item.get('name')}' ({cls.type})")
        layers.append(layer_message(cls).parse(item, problems, None, "").to_dict(enum))
    problems.raise_if_any()
    out[layers_key] = layers
    return out


def solver_to_dict(path, enum=None, layers_key="layers"):
    """A solver file as written back (config_to_dict's rules), nets inside it included."""
    from ..solver.spec import SOLVER
    from .load import SOLVER_NETS
    problems = Problems()
    p = SOLVER.parse(load_config(path, net=False), problems, None, "")
    problems.raise_if_any()
    out = p.to_dict(enum)
    for key in SOLVER_NETS:
        if key in out:
            trees = out[key] if isinstance(out[key], list) else [out[key]]
            done = [config_to_dict(t, enum, layers_key) for t in trees]
            out[key] = done if isinstance(out[key], list) else done[0]
    return out


class _Compiler:
    def __init__(self, phase, level, stages, batch_size):
        self.phase, self.level, self.stages, self._batch_size = phase, level, stages, batch_size
        self._unparsed_tops = set()   # tops of layers too broken to parse: not reported again
        self._left_out = {}           # top -> the first layer that makes it but is not in this phase

    # -- parsing -----------------------------------------------------------------------------
    def parse(self, tree, problems):
        rest = tree
        if isinstance(tree, dict):   # 'layers' (or prototxt's 'layer') is read below
            rest = LDict((k, v) for k, v in tree.items() if k not in ("layers", "layer"))
            rest.loc = getattr(tree, "loc", None)
            rest.key_locs = getattr(tree, "key_locs", {})
        top = NET_TOP.parse(rest, problems, None, "")
        self.stages = tuple(top.state.stage or ()) + self.stages
        self.name = top.name
        self.force_backward = top.force_backward
        raw = tree.get("layers") if isinstance(tree, dict) else None
        if raw is None and isinstance(tree, dict):
            raw = tree.get("layer")
        loc = getattr(tree, "loc", None)
        if isinstance(raw, dict):      # a prototxt net of one layer
            raw = [raw]
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
            item = without_foreign_blocks(cls, item, iloc, label)
            p = layer_message(cls).parse(item, problems, label, "", iloc)
            if p.include and p.exclude:
                problems.add(p.loc("include"), "give either include or exclude rules, not both", label, "include")
            rule_phase, phase = self.phase, p.phase or self.phase
            if self.phase == "VALIDATION" and not any(r.phase == "VALIDATION" for r in p.include + p.exclude):
                # A VALIDATION net is the TEST net, except that its data comes from the TRAIN data
                # layers that hold out a validation_fraction of their source.
                held_out = cls.reads_dataset and (item.get(cls.param_key) or {}).get("validation_fraction", 0)
                if cls.reads_dataset and not held_out:
                    continue
                rule_phase = "TRAIN" if held_out else "TEST"
                phase = p.phase or ("VALIDATION" if held_out else "TEST")
            if (p.include and not any(_rule_met(r, rule_phase, self.level, self.stages) for r in p.include)) or \
                    (p.exclude and any(_rule_met(r, rule_phase, self.level, self.stages) for r in p.exclude)):
                for t in p.top or ():          # for the hint when a layer of this phase needs them
                    self._left_out.setdefault(str(t), name)
                continue
            p.phase = phase
            if cls.loss and not p.top and isinstance(p.name, str):
                p.top = [p.name]           # Caffe gives a loss layer without tops one (its name here)
            key = cls.param_key if cls.reads_dataset else cls.batch_key
            if self._batch_size is not None and key:
                getattr(p, key).batch_size = self._batch_size
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

    def check_graph(self, configs, problems):
        """Bottom/top counts, producers, duplicates, in-place rules, cycles."""
        producer: dict[str, int] = {}
        names, next_suffix = {}, {}
        later, producers = {}, {}
        for i, c in enumerate(configs):
            for t in c.top:
                later.setdefault(t, i)
                producers.setdefault(t, []).append(i)
        cycles_searched = names_searched = 0    # a few searches name the problem; more only cost time
        for i, c in enumerate(configs):
            cls = REGISTRY[c.type]
            label = f"layer '{c.name}' ({c.type})"
            if c.name in names:        # allowed, as in Caffe: the later layer becomes '<name>#2', ...
                k = next_suffix.get(c.name, 2)    # each name's next free suffix: linear in the layers
                while f"{c.name}#{k}" in names:
                    k += 1
                next_suffix[c.name] = k + 1
                c.name = c.p.name = f"{c.name}#{k}"
                label = f"layer '{c.name}' ({c.type})"
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
                    other = self._left_out.get(b)
                    names_searched += not other
                    hint = (f": layer '{other}' produces it, but its include/exclude rules leave it out of the "
                            f"{self.phase} net" if other else did_you_mean(b, producer) if names_searched <= 8 else "")
                    problems.add(c.p.loc("bottom", c.loc), f"bottom '{b}' is not produced by any earlier "
                                 f"layer{hint}", label, "bottom")
                elif j == i:
                    problems.add(c.p.loc("bottom", c.loc), f"bottom '{b}' is this layer's own top: only "
                                 "in-place layers may use a blob produced earlier", label, "bottom")
                else:
                    cycles_searched += 1
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

    def insert_splits(self, configs):
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
            c.written_bottom = tuple(c.bottom)
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
                out.append(LayerConfig(p.name, "Split", p, [t], names, c.loc, split_lw, (t,), True))
        return out

