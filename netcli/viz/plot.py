"""Pictures through matplotlib (pip install 'netcli[plot]'): learning curves from run logs,
a confusion matrix, and the PNG form of a net drawing (netcli/viz/draw.py lays it out)."""
from __future__ import annotations

import os
import time

import numpy as np

from ..errors import NetcliError
from ..io.files import write_atomic


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")            # files only, no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise NetcliError("plotting needs matplotlib: pip install 'netcli[plot]'") from None
    return plt


def _save(fig, path):
    """Write the figure atomically (netcli/io/files.py)."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in ("png", "svg", "pdf"):
        raise NetcliError(f"{path}: write .png, .svg or .pdf")
    try:
        write_atomic(path, lambda f: fig.savefig(f, format=ext, dpi=120, bbox_inches="tight"), "picture")
    finally:
        fig.clf()


def smooth(values, window):
    """Moving average over the last `window` points (the first ones over what there is)."""
    v = np.asarray(values, np.float64)
    if window <= 1 or len(v) == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    n = np.minimum(np.arange(1, len(v) + 1), window)
    return (c[1:] - c[np.arange(1, len(v) + 1) - n]) / n


def _drawable(*values):
    """Numbers matplotlib can place on an axis (a log may hold anything JSON can)."""
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) <= 1e30 for v in values)


def _text(name):
    """A name from a log as plain text in a picture: no control characters, no $math$."""
    from ..text import printable
    return printable(name, 60).replace("$", r"\$")


def curves(runs, path, x="iter", window=1):
    """Train loss and every test output against `x` ("iter", "epoch" or "seconds"), one line per
    run; runs: [(label, records)] from run logs (netcli/solver/runlog.py). Returns the panel names."""
    plt = _pyplot()
    panels = ["train loss"]
    for _, recs in runs:
        for r in recs:
            if r.get("event") == "test":
                for name, v in (r.get("outputs") or {}).items():
                    if not isinstance(v, list) and f"test {name}" not in panels:
                        panels.append(f"test {name}")
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for (label, recs), color in zip(runs, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 10):
        train = [r for r in recs if r.get("event") == "train" and _drawable(r.get(x), r.get("loss"))]
        test = [r for r in recs if r.get("event") == "test" and r.get("net", 0) == 0 and _drawable(r.get(x))]
        if train:
            axes[0][0].plot([r[x] for r in train], smooth([r["loss"] for r in train], window), color=color,
                            label=_text(label))
        for ax, panel in zip(axes[0][1:], panels[1:]):
            name = panel[len("test "):]
            pts = [(r[x], r["outputs"][name]) for r in test if _drawable(r["outputs"].get(name))]
            if pts:
                ax.plot(*zip(*pts), marker="o", markersize=3, color=color, label=_text(label))
    xlabel = {"iter": "iteration", "epoch": "epoch", "seconds": "seconds"}[x]
    for ax, panel in zip(axes[0], panels):
        ax.set_title(_text(panel) + (f" (smoothed over {window})" if panel == "train loss" and window > 1 else ""))
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        if len(runs) > 1 and ax.get_lines():
            ax.legend(fontsize=8)
    if any((r.get("loss") or 0) > 0 for _, recs in runs for r in recs if r.get("event") == "train"):
        axes[0][0].set_yscale("log")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return panels


def log_curves(logs, which="all", warned=None):
    """[(label, records)] of the runs `which` ("all", "last" or a number) picks from each run log,
    for curves(); labelled by the log's name, and the run's number where the log holds several."""
    from ..solver.runs import read_run_log, select, split_runs
    out, ended = [], True
    for path in logs:
        runs = split_runs(read_run_log(path, warned))
        name = os.path.basename(path).replace(".log.jsonl", "")
        out += [(name if len(runs) == 1 else f"{name} run {run.number}", run.records)
                for run in select(runs, which, path)]
        ended = ended and (not runs or runs[-1].segments[-1].end is not None)
    return out, ended


def watch(render, logs, every, refreshes=None, sleep=time.sleep):
    """`netcli plot --watch`: render() again whenever a log changed, every `every` seconds, until
    a run that was going on has ended (render() says whether every log's last run has), after
    `refreshes` looks when given, or on Ctrl-C. Returns how many times it looked."""
    def stamp():
        return [(s.st_mtime_ns, s.st_size) for s in map(os.stat, logs)]
    try:
        seen, looks = stamp(), 0
        ended = render()
        live = not ended
        while not (live and ended) and (refreshes is None or looks < refreshes):
            sleep(every)
            looks += 1
            now = stamp()
            if now != seen:
                seen, ended = now, render()
                live = live or not ended
    except KeyboardInterrupt:
        pass
    except OSError as e:
        raise NetcliError(f"{e.filename}: cannot read the run log: {e.strerror or e}") from None
    return looks


def confusion_matrix(cm, path, names=None):
    """The confusion matrix (rows: true class, columns: predicted), counts in the cells and
    colour by the share of each true class."""
    plt = _pyplot()
    cm = np.asarray(cm)
    k = len(cm)
    names = list(names)[:k] if names else [str(i) for i in range(k)]
    names += [str(i) for i in range(len(names), k)]
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.45 * k + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 2 else 0, ha="right" if
                  max(map(len, names)) > 2 else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")
    accuracy = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"confusion matrix: accuracy {accuracy:.4f} ({int(cm.sum())} samples)")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
