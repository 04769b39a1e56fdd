"""Paired, interleaved timing on one device, shared by
``tools/analysis/benchmark.py`` and ``tools/analysis/device_figures.py``.

Every CUDA call names the device measured (``cuda:1`` is timed, synchronised
and its allocator read as ``cuda:1``), and :func:`setup_device` makes it the
current device for whatever else runs there. Ratios are paired by round:
:func:`paired_ratio` gives the geometric mean of the per-round ratios with a
Student-t interval on their logarithms.
"""
import math
import random
import statistics
import time
from contextlib import contextmanager, nullcontext

import torch


def setup_device(device, prog):
    """Check that ``device`` can run here and make it the current device.

    Args:
        device (str): ``cpu``, ``cuda`` or ``cuda:N``.
        prog (str): the tool's name, for the error message.

    Returns:
        str: the device with its index (``cuda`` becomes ``cuda:0`` where
        that is the current device), or ``cpu``.
    """
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise SystemExit(f'{prog}: --device {device!r} is not a device name '
                         f'({e}); use cpu or cuda[:N]')
    if dev.type == 'cpu':
        return 'cpu'
    if dev.type != 'cuda' or not torch.cuda.is_available():
        raise SystemExit(
            f'{prog}: --device {device} cannot run here (only cpu and cuda '
            f'are supported, and torch.cuda.is_available() is '
            f'{torch.cuda.is_available()} with torch {torch.__version__})')
    count = torch.cuda.device_count()
    index = torch.cuda.current_device() if dev.index is None else dev.index
    if index >= count:
        raise SystemExit(f'{prog}: --device {device}: this process sees '
                         f'{count} GPU(s), cuda:0 to cuda:{count - 1} '
                         f'(CUDA_VISIBLE_DEVICES renumbers them)')
    torch.cuda.set_device(index)
    return f'cuda:{index}'


@contextmanager
def tf32(allowed):
    """TF32 allowed (``True``) or not in cuBLAS and cuDNN until exit, set
    through the API of the running torch (``fp32_precision`` from torch 2.9,
    which refuses the older ``allow_tf32`` flags once it is used;
    ``allow_tf32`` before); the previous flags are restored on exit.

    Args:
        allowed (bool): Whether float32 matmuls and convolutions may run in
            TF32.
    """
    b = torch.backends
    if hasattr(b, 'fp32_precision'):
        value = 'tf32' if allowed else 'ieee'
        flags = [(b.cuda.matmul, 'fp32_precision', value),
                 (b.cudnn.conv, 'fp32_precision', value)]
    else:
        flags = [(b.cuda.matmul, 'allow_tf32', allowed),
                 (b.cudnn, 'allow_tf32', allowed)]
    saved = [getattr(obj, name) for obj, name, _ in flags]
    try:
        for obj, name, value in flags:
            setattr(obj, name, value)
        yield
    finally:
        for (obj, name, _), value in zip(flags, saved):
            setattr(obj, name, value)


def no_tf32():
    """Float32 matmuls and convolutions computed in float32 until exit
    (:func:`tf32` off). Wrap the whole step, backward included."""
    return tf32(False)


def autocast(device, precision):
    """Autocast to ``precision`` on ``device``, for the forward pass and the
    loss (the backward runs in the dtypes the forward chose).

    Args:
        device (str): ``cpu`` or ``cuda[:N]``.
        precision (str): ``fp32`` (a null context), ``fp16`` or ``bf16``.
    """
    if precision == 'fp32':
        return nullcontext()
    return torch.autocast(str(device).split(':')[0],
                          dtype=dict(fp16=torch.float16,
                                     bf16=torch.bfloat16)[precision])


def step_seconds(step, device):
    """Seconds of one ``step()``: CUDA events on the current stream of
    ``device`` (``perf_counter`` on the CPU).

    Args:
        step (callable): runs one step, no arguments.
        device (str): the device ``step`` runs on.

    Returns:
        float: seconds.
    """
    if not str(device).startswith('cuda'):
        start = time.perf_counter()
        step()
        return time.perf_counter() - start
    stream = torch.cuda.current_stream(device)
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize(device)
    start.record(stream)
    step()
    end.record(stream)
    end.synchronize()
    return start.elapsed_time(end) / 1000


def peak_bytes(step, device):
    """Peak live tensor bytes on ``device`` during ``step()`` over those live
    before it: the caching allocator's statistics of ``device`` on CUDA, the
    allocator events recorded by ``torch.profiler`` on the CPU.

    Args:
        step (callable): runs one step, no arguments.
        device (str): the device ``step`` runs on.

    Returns:
        int: bytes.
    """
    if str(device).startswith('cuda'):
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        step()
    events = sorted((e for e in prof.profiler.kineto_results.events()
                     if e.name() == '[memory]'
                     and e.device_type() == torch.autograd.DeviceType.CPU),
                    key=lambda e: e.start_ns() if hasattr(e, 'start_ns')
                    else e.start_us())  # torch < 2.2
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    return peak


def interleaved_times(steps, warmup, rounds, device, seed=0):
    """Seconds of one step of each of ``steps`` in each round, the steps of
    a round in an order shuffled per round.

    Args:
        steps (dict[str, callable]): name -> zero-argument step.
        warmup (int): untimed rounds first.
        rounds (int): timed rounds.
        device (str): the device the steps run on.
        seed (int): seed of the shuffles.

    Returns:
        dict[str, list[float]]: name -> seconds per timed round.
    """
    rng = random.Random(seed)
    times = {n: [] for n in steps}
    for r in range(warmup + rounds):
        for name in rng.sample(list(steps), len(steps)):
            t = step_seconds(steps[name], device)
            if r >= warmup:
                times[name].append(t)
    return times


def paired_ratio(times, base, confidence=0.95):
    """Geometric mean of the per-round ratios ``times[r] / base[r]`` and a
    Student-t interval for it.

    The interval is ``exp(m -+ t * s / sqrt(n))`` with ``m`` and ``s`` the
    mean and standard deviation of the ``n`` log-ratios and ``t`` the
    ``(1 + confidence) / 2`` quantile of Student's t with ``n - 1`` degrees
    of freedom. It holds the median ratio with probability ``confidence``
    where the log-ratios of the rounds are independent and normal.

    Args:
        times (list[float]): seconds of the variant, one per round.
        base (list[float]): seconds of the reference in the same rounds.
        confidence (float): coverage of the interval.

    Returns:
        tuple[float, float, float]: ``(ratio, lo, hi)``; ``lo`` and ``hi``
        are NaN with a single round.
    """
    logs = [math.log(t / b) for t, b in zip(times, base)]
    if not logs:
        raise ValueError('paired_ratio needs at least one round')
    mean = statistics.fmean(logs)
    if len(logs) < 2:
        return math.exp(mean), math.nan, math.nan
    from scipy.stats import t
    half = t.ppf((1 + confidence) / 2, len(logs) - 1) * \
        statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)
