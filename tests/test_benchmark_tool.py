"""tools/analysis/benchmark.py and device_figures.py: a training step runs
forward and backward in the precision its row names, a zero peak prints as
such, the tools import their timing from the package, and on the CPU with
tiny sizes (nothing here is timed) their ratios are the paired geometric
means and intervals they report and their memory counter sees the
activation the straightforward ECA keeps."""
import importlib.util
import io
import json
import math
import os.path as osp
import sys

import pytest
import torch
from mmengine.logging import MMLogger

from eca_mmdet.utils.timing import no_tf32, paired_ratio, tf32

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool(name):
    """``tools/analysis/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(
        name, osp.join(ROOT, 'tools', 'analysis', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tf32_off():
    """Whether cuBLAS and cuDNN compute float32 as float32, read through the
    API of the running torch (from 2.9 the older flags raise once the newer
    ones are set)."""
    b = torch.backends
    if hasattr(b, 'fp32_precision'):
        return (b.cuda.matmul.fp32_precision,
                b.cudnn.conv.fp32_precision) == ('ieee', 'ieee')
    return not b.cuda.matmul.allow_tf32 and not b.cudnn.allow_tf32


@pytest.fixture
def tf32_on():
    """TF32 allowed in cuBLAS and cuDNN for the test, restored after."""
    with tf32(True):
        yield


def autocast_on():
    try:
        return torch.is_autocast_enabled('cpu')
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


class Probe(torch.autograd.Function):
    """Identity that records the TF32 state and autocast in its forward
    and its backward."""
    seen = {}

    @staticmethod
    def forward(ctx, x):
        Probe.seen['forward'] = (tf32_off(), autocast_on())
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        Probe.seen['backward'] = (tf32_off(), autocast_on())
        return grad


class Tiny(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return (Probe.apply(self.conv(x)), )


def test_no_tf32_turns_tf32_off_and_restores_it(tf32_on):
    assert not tf32_off()
    with no_tf32():
        assert tf32_off()
    assert not tf32_off()


@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
@pytest.mark.parametrize('tool', ['device_figures', 'benchmark'])
def test_training_step_backward_without_tf32(tool, precision, tf32_on):
    """The backward of a training step runs with TF32 off too (the flags
    seen inside it), autocast only around the forward; the flags are back
    after the step."""
    mod = load_tool(tool)
    model = Tiny()
    if tool == 'device_figures':
        step = mod.make_step(model, 'det-train', precision, 'cpu', (8, 8, 1))
    else:
        step = mod.make_step('backbone', model, 'training', 1, (8, 8), 'cpu',
                             amp=precision == 'bf16')
    Probe.seen.clear()
    step()
    assert Probe.seen == dict(forward=(True, precision == 'bf16'),
                              backward=(True, False))
    assert not tf32_off()


def test_tools_import_timing_from_the_package():
    """Loading a tool leaves ``sys.path`` alone and gives it the package's
    timing helpers."""
    from eca_mmdet.utils import timing
    before = list(sys.path)
    figures = load_tool('device_figures')
    assert sys.path == before
    assert figures.peak_bytes is timing.peak_bytes
    assert figures.paired_ratio is timing.paired_ratio


def test_zero_peak_prints_a_dash():
    figures = load_tool('device_figures')
    out = io.StringIO()
    figures.print_row(dict(
        depth=50, setting='det-infer', precision='fp32', mode='eager',
        size=(8, 8, 1), times_s=dict(plain=[0.1]), eca=(1.0, 0.9, 1.1),
        naive=(1.0, 0.9, 1.1), eca_naive=(1.0, 0.9, 1.1),
        peak_mib=dict(plain=0.0, eca=0.0, naive=0.0)), file=out)
    assert out.getvalue().split()[-2:] == ['-', '-']


@pytest.fixture
def in_process():
    """Undo what a tool's main() sets for the process."""
    threads = torch.get_num_threads()
    logger = MMLogger.get_current_instance()
    level = logger.level
    yield
    torch.set_num_threads(threads)
    logger.setLevel(level)


@pytest.mark.parametrize('tool', ['benchmark', 'device_figures'])
@pytest.mark.parametrize('device,message', [
    ('cuda', 'torch.cuda.is_available() is False'),
    ('gpu0', 'is not a device name'),
])
def test_unusable_device_is_a_clear_error(tool, device, message, in_process):
    if device == 'cuda' and torch.cuda.is_available():
        pytest.skip('a GPU is visible here')
    with pytest.raises(SystemExit) as e:
        load_tool(tool).main(['--device', device])
    assert message in str(e.value) and str(e.value).startswith(tool)


def assert_paired(times, base, reported):
    """``reported`` is the geometric mean of the per-round ratios and the
    Student-t interval of their logarithms."""
    logs = [math.log(t / b) for t, b in zip(times, base)]
    assert math.isclose(reported[0], math.exp(sum(logs) / len(logs)))
    assert reported == pytest.approx(paired_ratio(times, base))
    assert reported[1] < reported[0] < reported[2]


def test_benchmark_cli_training_with_memory(tmp_path, capsys, in_process):
    """benchmark.py's main as the command line runs it (in this process,
    one thread, two rounds of a 64 px training step)."""
    bench = load_tool('benchmark')
    assert bench.parse_args(['--size', '64', '48x64']).size == [(64, 64),
                                                                (48, 64)]
    out = tmp_path / 'r.json'
    assert bench.main(['--mode', 'training', '--batch', '1', '--size', '64',
                       '--repeats', '2', '--warmup', '0', '--memory',
                       '--threads', '1', '--variants', 'eca', 'naive',
                       '--json', str(out)]) == 0
    stdout = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert [r['size'] for r in result['results']] == [[64, 64]]
    rows = result['results'][0]['rows']
    assert set(rows) == {'plain', 'eca', 'naive', 'eca / naive'}
    assert len(rows['eca']['times_s']) == 2
    assert rows['plain']['ratio'][0] == 1.0
    for v in ('eca', 'naive'):
        assert_paired(rows[v]['times_s'], rows['plain']['times_s'],
                      rows[v]['ratio'])
    # eca paired with naive directly, round by round
    assert_paired(rows['eca']['times_s'], rows['naive']['times_s'],
                  rows['eca / naive']['ratio'])
    # the straightforward ECA keeps bn3's output for backward, ours not:
    # float32 bn3 outputs of ResNet-50, batch 1 at 64x64 (1.72 MiB)
    bn3_mib = sum(n * c * (64 // s) ** 2 * 4 for n, c, s in zip(
        (3, 4, 6, 3), (256, 512, 1024, 2048), (4, 8, 16, 32))) / 2**20
    extra = {v: rows[v]['peak_mib'] - rows['plain']['peak_mib']
             for v in ('eca', 'naive')}
    assert extra['naive'] > 0.9 * bn3_mib, (extra, bn3_mib)
    assert extra['eca'] < 0.25 * bn3_mib, (extra, bn3_mib)
    assert 'Student-t interval' in stdout and 'eca / naive' in stdout


def test_device_figures_cli_on_the_cpu(tmp_path, capsys, monkeypatch,
                                       in_process):
    """device_figures.py's main as the command line runs it with --device
    cpu (in this process, tiny inputs; ``torch.compile`` recorded, not run:
    inductor or aot_eager would take half a minute): one table row per
    cell, ratios that are the paired geometric means and intervals they
    claim, the naive form's extra memory, and the profile section (forced
    with --flag -1)."""
    compiled = []

    def fake_compile(model, backend):
        compiled.append((type(model).__name__, backend))
        return model
    monkeypatch.setattr(torch, 'compile', fake_compile)
    out = tmp_path / 'f.json'
    assert load_tool('device_figures').main(
        ['--device', 'cpu', '--depths', '50', '--settings', 'det-train',
         '--precisions', 'fp32', '--compile-precisions', 'bf16',
         '--compile-settings', 'cls-infer', '--compile-backend', 'aot_eager',
         '--det-size', '64x96x1', '--cls-size', '32x32x1', '--rounds', '2',
         '--warmup', '0', '--threads', '1', '--flag', '-1', '--json',
         str(out)]) == 0
    stdout = capsys.readouterr().out
    cells = json.loads(out.read_text())['cells']
    assert [(c['setting'], c['precision'], c['mode']) for c in cells] == [
        ('det-train', 'fp32', 'eager'), ('cls-infer', 'bf16', 'compile')]
    assert compiled == [('Classifier', 'aot_eager')] * 3
    for c in cells:
        t = c['times_s']
        assert all(len(t[v]) == 2 for v in ('plain', 'eca', 'naive'))
        assert_paired(t['eca'], t['plain'], c['eca'])
        assert_paired(t['naive'], t['plain'], c['naive'])
        assert_paired(t['eca'], t['naive'], c['eca_naive'])
    assert sum(line.startswith('R-50') for line in stdout.splitlines()) == 2
    # training, eager: the straightforward ECA keeps bn3's output as well,
    # float32 in stages 2-4 (stage 1 is frozen) at 64x96, batch 1
    bn3_mib = sum(n * c * (64 // s) * (96 // s) * 4 for n, c, s in zip(
        (4, 6, 3), (512, 1024, 2048), (8, 16, 32))) / 2**20
    peak = cells[0]['peak_mib']
    assert peak['naive'] - peak['plain'] > 0.9 * bn3_mib, (peak, bn3_mib)
    assert peak['eca'] - peak['plain'] < 0.1 * bn3_mib, (peak, bn3_mib)
    for v in ('plain', 'eca', 'naive'):
        assert f'{v}: layer3[1]' in stdout
    assert 'ECA costs more than' in stdout
