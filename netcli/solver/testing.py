"""The Solver's tests: one test net over its batches (the progress bar shows the test's
progress, a signal interrupts it), and the periodic test of every test net."""
from __future__ import annotations

from .. import log
from .hooks import log_outputs


def test(s, k=0):
    """Run test net k of Solver s (0: the periodic one, TEST or VALIDATION) over its batches; log
    and return {output: mean}, None when a signal interrupted it."""
    from ..evaluate import evaluate
    net = s.test_nets[k]
    log.info(f"Iteration {s.iter}, Testing net (#{k})")
    bar = getattr(s, "_bar", None)
    n = s.test_iters[k] if not s.test_whole[k] else None

    def tested(i, run, rows):          # the training bar shows the test's progress, not a freeze
        if bar is not None:
            bar.set_description_str(f"testing {i + 1}" + (f"/{n}" if n else ""), refresh=True)
    result = evaluate(net, n, on_batch=tested, stop=lambda: s.request in ("snapshot", "stop"))
    if bar is not None:
        bar.set_description_str("", refresh=True)
    if result is None:
        log.info("Test interrupted.")
        return None
    means = result["outputs"]
    log_outputs(net, "Test", means)
    s.record("test", net=k, outputs=means)
    result = {name: float(v) if v.ndim == 0 else v for name, v in means.items()}
    if k == 0:
        s.last_test, s.last_test_iter = result, s.iter
    return result


def periodic(s):
    """Test net 0, then (without a VALIDATION net) every other test net; the results of test net 0,
    None if a test was interrupted."""
    results = s.test()
    if results is not None and not s.validation:
        for k in range(1, len(s.test_nets)):       # Caffe tests every test net, #0 first
            if s.test(k) is None:
                return None
    return results

