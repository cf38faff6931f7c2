"""`netcli check` (a net or solver built and checked without training), `netcli config` and
`netcli layers` (the layer types and their fields)."""
from __future__ import annotations

from ..errors import ConfigError, NetcliError
from ..net import Net
from .score import _noop


def describe_net(net: Net, echo):
    """Layer table: top shapes, params, FLOPs per image, activation memory; then totals."""
    echo(f"Net '{net.name}' ({net.phase}): {len(net.layers)} layers")
    rows = []
    tot_p = tot_f = tot_m = 0
    seen = set()
    for layer, c, b, t in zip(net.layers, net.configs, net.bottom_vecs, net.top_vecs):
        params = sum(x.count for x in layer.blobs)
        flops = layer.flops(b, t)
        mem = sum(x.data.nbytes + x.diff.nbytes for x in t if id(x.data) not in seen)
        seen.update(id(x.data) for x in t)
        shapes = ", ".join("x".join(map(str, x.shape)) or "scalar" for x in t) or "-"
        rows.append((c.name, c.type, shapes, f"{params:,}", f"{flops / 1e6:.3f}", f"{mem / 2 ** 20:.2f}"))
        tot_p, tot_f, tot_m = tot_p + params, tot_f + flops, tot_m + mem
    head = ("layer", "type", "top shape", "params", "MFLOP/img", "act. MB")
    # columns as wide as their longest entry, so long names never run into the next column
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        echo("  ".join(v.ljust(w) if i < 3 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))).rstrip())
    for line in net.executor.plan():
        echo(f"Parallel plan: {line}")
    memory = getattr(net.executor, "memory", None)     # the CPU executor's (netcli/exec/memory_plan.py)
    for line in memory.lines() if memory is not None else ():
        echo(line)
    learn = net.param_data.size
    echo(f"Total: {learn:,} learnable params ({learn * 4 / 2 ** 20:.2f} MB), {tot_f / 1e6:.3f} MFLOP forward per "
         f"image, {tot_m / 2 ** 20:.2f} MB of activations (data + diff) at the configured batch")
    return {"params": learn, "flops_per_image": tot_f, "activation_bytes": tot_m,
            "memory_plan_bytes": memory.total if memory is not None else None}


def print_config(model=None, solver=None, echo=None):
    """Write a net or solver file back as netcli reads it: only the fields given, canonical enum
    spellings, every layer of every phase. Loading the output gives the same net (or solver)."""
    import yaml
    from ..config.compile import config_to_dict
    if solver:
        from ..config.compile import solver_to_dict
        tree = solver_to_dict(solver)
    else:
        tree = config_to_dict(model)
    text = yaml.safe_dump(tree, sort_keys=False, default_flow_style=None, width=110)
    (echo or _noop)(text.rstrip("\n"))
    return text


def check(model=None, solver=None, phase=None, echo=None, stages=(), level=0):
    """Build the solver's nets, or the net in `phase` (None: TRAIN and TEST, as training and
    testing will), and print their tables; any mistake raises."""
    echo = echo or _noop
    if solver:
        from ..solver import Solver
        s = Solver(solver, progress=False, log_path=False)
        echo(f"Solver {solver}: {s.p.type} with lr_policy {s.p.lr_policy}, {s.max_iter} iterations, "
             f"test every {s.test_interval or 'never'} x {s.test_iter} batches, snapshots to {s.prefix}_iter_N")
        for net in [s.net] + s.test_nets:
            describe_net(net, echo)
    else:
        from .absent_data import check_without_data
        unchecked = False
        for ph in ([phase] if phase else ["TRAIN", "TEST"]):
            try:
                net = Net(model, phase=ph, stages=stages, level=level, release_rows="auto",
                          inference=ph != "TRAIN")         # as the Solver builds its nets
            except ConfigError as e:          # data not here: say which shapes went unchecked
                check_without_data(e, model, ph, stages, level, echo)
                unchecked = True
                continue
            describe_net(net, echo)
        if unchecked:
            echo("OK, but for the shapes named above (their data is not here)")
            return
    echo("OK")


def _fmt_default(f):
    from ..config.schema import REQUIRED, Message
    if f.default is REQUIRED:
        return "required"
    if isinstance(f.kind, Message):
        return ""
    if f.repeated:
        return "default []" if not f.default else f"default {list(f.default)}"
    return "no default" if f.default is None else f"default {f.default!r}"


def _fmt_fields(msg, prefix, echo, depth=0):
    from ..config.schema import Message
    for f in msg.fields:
        d = _fmt_default(f)
        echo(f"    {prefix}{f.name} ({f.type_name}{', ' + d if d else ''}): {f.doc}")
        if isinstance(f.kind, Message) and depth < 1 and f.kind.name != "FillerParameter":
            _fmt_fields(f.kind, f"{prefix}{f.name}.", echo, depth + 1)


def list_layers(type_=None, echo=None):
    """Every registered layer type with its parameters, defaults and meanings, generated from the
    specs that validate configs. Returns the listed type names."""
    from ..config.net_spec import LAYER_COMMON
    from ..config.schema import Message
    from ..fillers import FILLER
    from ..layers import REGISTRY
    from ..config.schema import did_you_mean
    echo = echo or _noop
    if type_ is not None and type_ not in REGISTRY:
        raise NetcliError(f"unknown layer type '{type_}'{did_you_mean(type_, REGISTRY)}")
    names = [type_] if type_ else sorted(REGISTRY)
    if not type_:
        echo("Fields of every layer:")
        _fmt_fields(Message("Layer", LAYER_COMMON), "", echo)
        echo("Fillers (weight_filler, bias_filler, filler):")
        _fmt_fields(FILLER, "", echo)
        echo("")
    for name in names:
        cls = REGISTRY[name]
        lo, hi = cls.bottoms
        tops_lo, tops_hi = cls.tops
        io = (f"bottoms {lo}" + ("" if hi == lo else f"-{hi if hi is not None else 'n'}") +
              f", tops {tops_lo}" + ("" if tops_hi == tops_lo else f"-{tops_hi if tops_hi is not None else 'n'}"))
        flags = [io] + (["in-place ok"] if cls.in_place_ok else []) + (["loss"] if cls.loss else []) + \
            ([] if cls.has_backward else ["no backward"])
        echo(f"{name} ({'; '.join(flags)}): {cls.doc}")
        for key, spec in cls.params.items():
            echo(f"  {key}:")
            _fmt_fields(spec, "", echo)
    return names


WEIGHT_EXT = (".npz", ".caffemodel")
CONFIG_EXT = (".yaml", ".yml", ".prototxt", ".pbtxt")


def is_solver_file(path):
    """A solver file names a net and training fields; a net file has layers."""
    from ..config.load import load_config
    tree = load_config(path, net=False)
    return not ({"layer", "layers"} & set(tree)) and bool({"net", "net_param", "train_net", "train_net_param",
                                                             "base_lr", "max_iter", "lr_policy"} & set(tree))
