"""Weight fillers, with Caffe's FillerParameter names, defaults and formulas."""
from __future__ import annotations

import numpy as np

from .config.schema import Field, Message

FILLER = Message("FillerParameter", [
    Field("type", ("CONSTANT", "UNIFORM", "GAUSSIAN", "XAVIER", "MSRA", "POSITIVE_UNITBALL",
                   "BILINEAR", "GLOROT_UNIFORM"), "CONSTANT",
          "filler: constant, uniform, gaussian, xavier, msra, positive_unitball, bilinear, glorot_uniform", number=1,
          proto={"type": "string", "default": "constant"}),
    Field("value", "float", 0.0, "constant value", number=2),
    Field("min", "float", 0.0, "uniform lower bound", number=3),
    Field("max", "float", 1.0, "uniform upper bound", number=4),
    Field("mean", "float", 0.0, "gaussian mean", number=5),
    Field("std", "float", 1.0, "gaussian standard deviation", number=6),
    Field("sparse", "int", -1, "gaussian: expected number of non-zero inputs per output (-1: dense)",
          range=(-1, 2 ** 31 - 1), number=7),
    Field("variance_norm", ("FAN_IN", "FAN_OUT", "AVERAGE"), "FAN_IN",
          "xavier/msra: normalise by fan_in, fan_out or their average", number=8),
], doc="How a parameter blob is initialised.")


def fans(shape):
    count = int(np.prod(shape))
    fan_in = count // shape[0] if len(shape) >= 1 and shape[0] else count
    fan_out = count // shape[1] if len(shape) >= 2 and shape[1] else count
    return fan_in, fan_out


def _norm(p, shape):
    fan_in, fan_out = fans(shape)
    return {"FAN_IN": fan_in, "FAN_OUT": fan_out, "AVERAGE": (fan_in + fan_out) / 2.0}[p.variance_norm]


CHUNK = 1 << 20     # values drawn per call: the same stream as one call, without a float64 copy of it all


def _draw(arr, draw):
    """arr[...] = draw(n) in chunks (a Generator's uniform and normal streams do not depend on
    how a draw is split, so the values are those of one call)."""
    flat = arr.reshape(-1)
    for lo in range(0, flat.size, CHUNK):
        flat[lo:lo + CHUNK] = draw(min(CHUNK, flat.size - lo))


def fill(p, arr: np.ndarray, rng: np.random.Generator):
    """Fill `arr` in place according to FillerParameter `p` (or copy `p` when it is an array of
    initial values, as a Python layer declares them)."""
    if isinstance(p, np.ndarray):
        arr[...] = p
        return
    shape, t = arr.shape, p.type
    if t == "CONSTANT":
        arr[...] = p.value
    elif t == "UNIFORM":
        _draw(arr, lambda n: rng.uniform(p.min, p.max, n))
    elif t == "GAUSSIAN":
        _draw(arr, lambda n: rng.normal(p.mean, p.std, n))
        if p.sparse >= 0:
            keep = p.sparse / shape[0]
            arr *= rng.random(shape) < keep
    elif t == "XAVIER":
        a = np.sqrt(3.0 / _norm(p, shape))
        _draw(arr, lambda n: rng.uniform(-a, a, n))
    elif t == "GLOROT_UNIFORM":  # the Theano chapter's U(-sqrt(6/(fan_in+fan_out)), +...)
        fan_in, fan_out = fans(shape)
        a = np.sqrt(6.0 / (fan_in + fan_out))
        _draw(arr, lambda n: rng.uniform(-a, a, n))
    elif t == "MSRA":
        std = np.sqrt(2.0 / _norm(p, shape))
        _draw(arr, lambda n: rng.normal(0.0, std, n))
    elif t == "POSITIVE_UNITBALL":
        x = rng.uniform(0.0, 1.0, shape).reshape(shape[0], -1)
        arr[...] = (x / x.sum(axis=1, keepdims=True)).reshape(shape)
    elif t == "BILINEAR":
        k = shape[-1]
        f = np.ceil(k / 2.0)
        c = (k - 1) / (2.0 * f)
        x = np.arange(k)
        w1 = 1 - np.abs(x / f - c)
        arr[...] = np.broadcast_to(w1[:, None] * w1[None, :], shape)
    else:  # pragma: no cover - the schema only admits the names above
        raise ValueError(t)


def check_filler_shape(p, shape):
    """A complaint if the filler cannot fill a blob of this shape, else None."""
    if isinstance(p, np.ndarray):
        return None
    if p.type == "BILINEAR" and (len(shape) != 4 or shape[2] != shape[3]):
        return f"bilinear filler needs a 4-D blob with square kernels, got shape {tuple(shape)}"
    if p.type == "GAUSSIAN" and p.sparse >= 0 and len(shape) < 2:
        return "sparse gaussian filler needs a blob of at least 2 axes"
    return None
