"""Classification metrics from global counts (never averaged per batch): confusion matrix,
per-class precision, recall, F1 and support, and their macro averages over all classes."""
from __future__ import annotations

import numpy as np


def confusion(pred, label, C, cm=None):
    """Add (label, prediction) counts to cm[true, predicted]; labels outside [0, C) are skipped."""
    cm = np.zeros((C, C), np.int64) if cm is None else cm
    label = np.asarray(label).reshape(-1).astype(np.int64)
    pred = np.asarray(pred).reshape(-1).astype(np.int64)
    ok = (label >= 0) & (label < C)
    np.add.at(cm, (label[ok], pred[ok]), 1)
    return cm


def classification_metrics(cm):
    cm = np.asarray(cm, np.int64)
    tp = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    total = cm.sum()
    return {
        "confusion_matrix": cm.tolist(),
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
        "support": support.tolist(),
        "macro_precision": float(precision.mean()), "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
    }


def format_metrics(m, echo):
    cm = np.asarray(m["confusion_matrix"])
    C = len(cm)
    w = max(5, len(str(cm.max())) + 1)
    echo("Confusion matrix (rows: true class, columns: predicted class):")
    echo("      " + "".join(f"{c:>{w}}" for c in range(C)))
    for c in range(C):
        echo(f"{c:>5} " + "".join(f"{v:>{w}}" for v in cm[c]))
    for c in range(C):
        echo(f"class {c}: precision = {m['precision'][c]:.4f}, recall = {m['recall'][c]:.4f}, "
             f"f1 = {m['f1'][c]:.4f}, support = {m['support'][c]}")
    echo(f"macro average: precision = {m['macro_precision']:.4f}, recall = {m['macro_recall']:.4f}, "
         f"f1 = {m['macro_f1']:.4f}")
    echo(f"accuracy (every sample counted once) = {m['accuracy']:.4f}")
