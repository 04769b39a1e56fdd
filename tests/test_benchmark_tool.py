"""tools/analysis/benchmark.py: its statistics and memory counter give the
right numbers on inputs whose answer is known, and the CLI runs end to end
(tiny sizes; nothing here is timed)."""
import json
import math
import os.path as osp
import subprocess
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(ROOT, 'tools', 'analysis'))
import benchmark  # noqa: E402


def test_paired_ratio_exact_and_interval():
    base = [1.0, 2.0, 0.5, 1.5, 3.0]
    ratio, lo, hi = benchmark.paired_ratio([1.1 * b for b in base], base)
    assert math.isclose(ratio, 1.1) and math.isclose(lo, 1.1) \
        and math.isclose(hi, 1.1)
    # drift that hits both variants alike cancels; per-round noise widens
    # the interval around the geometric mean of the per-round ratios
    noisy = [1.0, 1.2, 1.0, 1.2, 1.0, 1.2, 1.0, 1.2]
    base = [10.0 * (r + 1) for r in range(8)]
    ratio, lo, hi = benchmark.paired_ratio(
        [b * f for b, f in zip(base, noisy)], base)
    assert math.isclose(ratio, math.sqrt(1.2))
    assert 1.0 <= lo < ratio < hi <= 1.2
    with pytest.raises(ValueError):
        benchmark.paired_ratio([], [])


def test_cpu_peak_bytes_counts_live_tensors():
    """Two 4 MiB tensors alive at once, then freed: peak is 8 MiB."""
    def step():
        a = torch.ones(1 << 20)
        b = a + 1
        return float(b[0])

    peak = benchmark.cpu_peak_bytes(step)
    assert 8 * 2**20 <= peak < 8 * 2**20 + 64 * 1024


def test_cli_backbone_training_with_memory(tmp_path):
    out = tmp_path / 'r.json'
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools/analysis/benchmark.py'),
         '--mode', 'training', '--batch', '1', '--size', '64', '64',
         '--repeats', '2', '--warmup', '0', '--memory', '--threads', '1',
         '--variants', 'eca', 'naive', '--json', str(out)],
        capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = {r['variant']: r for r in result['rows']}
    assert set(rows) == {'plain', 'eca', 'naive'}
    # eca paired with naive directly, round by round
    direct = [math.log(e / n) for e, n in zip(rows['eca']['times_s'],
                                              rows['naive']['times_s'])]
    assert math.isclose(result['eca_over_naive']['ratio'],
                        math.exp(sum(direct) / len(direct)))
    assert 'eca / naive:' in proc.stdout
    assert rows['plain']['ratio'] == 1.0
    assert len(rows['eca']['times_s']) == 2
    # the straightforward ECA keeps bn3's output for backward: more memory
    assert rows['naive']['peak_mib'] > rows['plain']['peak_mib']
    assert '95% interval' in proc.stdout


def test_straightforward_baseline_is_eca():
    """The benchmark's ``naive`` baseline (the authors' ``eca_layer``)
    computes ECA: same output as our layer with the same weights."""
    from eca_mmdet.layers import ECA
    naive = benchmark.straightforward_eca()(in_channels=64).double()
    assert naive.conv.kernel_size == (3, )  # adaptive size for C = 64
    ours = ECA(64, k_size=3).double()
    ours.load_state_dict(naive.state_dict())
    x = torch.randn(2, 64, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(naive(x), ours(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('mode,size,paths', [
    ('training', ['64'], ('fused', 'autograd')),
    ('inference', ['64', '96'], ('pool_out', 'pool_in'))])
def test_tail_benchmark_cli(mode, size, paths):
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools/analysis/benchmark_tail.py'),
         '--mode', mode, '--size', *size, '--batch', '1', '--rounds', '2',
         '--threads', '1'],
        capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    # one row per ResNet-50 stage, each saying which of our paths runs it
    rows = [line for line in lines if line.rstrip().endswith(paths)]
    assert len(rows) == 4
    h, w = int(size[0]) // 32, int(size[-1]) // 32  # layer4's map
    assert rows[-1].split()[2:4] == [f'(1,2048,{h},{w})', str(2048 * h * w)]
    assert lines[-1].split()[0] == 'total'


def test_cli_sweep_table_json_and_plot(tmp_path):
    """``--sweep``: one row per size with each variant's ratio to plain
    and eca paired with naive directly; JSON and a PNG plot."""
    out, png = tmp_path / 's.json', tmp_path / 's.png'
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools/analysis/benchmark.py'),
         '--sweep', '32', '--size', '48', '64', '--repeats', '2',
         '--warmup', '0', '--threads', '1', '--variants', 'eca', 'naive',
         '--json', str(out), '--plot', str(png)],
        capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())['results']
    assert [r['size'] for r in results] == [[32, 32], [48, 64]]
    for r in results:
        assert r['ratios']['plain'] == 1.0
        lo, hi = r['eca_over_naive']['ci95']
        assert lo <= r['eca_over_naive']['ratio'] <= hi
    assert proc.stdout.count('eca/naive') == 2
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


@pytest.mark.parametrize('device,message', [
    ('cuda', 'torch.cuda.is_available() is False'),
    ('gpu0', 'is not a device name')])
def test_cli_unusable_device_is_a_clear_error(device, message):
    if device == 'cuda' and torch.cuda.is_available():
        pytest.skip('a GPU is present: --device cuda runs')
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools/analysis/benchmark.py'),
         '--device', device, '--repeats', '1'],
        capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0
    assert message in proc.stderr and 'Traceback' not in proc.stderr
