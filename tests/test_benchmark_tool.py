"""tools/analysis/benchmark.py as a user runs it: its ratios are the
geometric means of the paired rounds it reports, inside their intervals, and
its memory counter sees the activation the straightforward ECA keeps (tiny
sizes; nothing here is timed)."""
import json
import math
import os.path as osp
import subprocess
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_cli_backbone_training_with_memory(tmp_path):
    out = tmp_path / 'r.json'
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools/analysis/benchmark.py'),
         '--mode', 'training', '--batch', '2', '--size', '64', '48x64',
         '--repeats', '2', '--warmup', '0', '--memory', '--threads', '1',
         '--variants', 'eca', 'naive', '--json', str(out)],
        capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert [r['size'] for r in result['results']] == [[64, 64], [48, 64]]
    rows = result['results'][0]['rows']
    assert set(rows) == {'plain', 'eca', 'naive', 'eca / naive'}
    # eca paired with naive directly, round by round
    direct = [math.log(e / n) for e, n in zip(rows['eca']['times_s'],
                                              rows['naive']['times_s'])]
    assert math.isclose(rows['eca / naive']['ratio'][0],
                        math.exp(sum(direct) / len(direct)))
    assert rows['plain']['ratio'][0] == 1.0
    for v in ('eca', 'naive', 'eca / naive'):
        ratio, lo, hi = rows[v]['ratio']
        assert lo <= ratio <= hi
    assert len(rows['eca']['times_s']) == 2
    # the straightforward ECA keeps bn3's output for backward, ours not:
    # float32 bn3 outputs of ResNet-50, batch 2 at 64x64 (3.44 MiB)
    bn3_mib = sum(n * c * (64 // s) ** 2 * 2 * 4 for n, c, s in zip(
        (3, 4, 6, 3), (256, 512, 1024, 2048), (4, 8, 16, 32))) / 2**20
    extra = {v: rows[v]['peak_mib'] - rows['plain']['peak_mib']
             for v in ('eca', 'naive')}
    assert extra['naive'] > 0.9 * bn3_mib, (extra, bn3_mib)
    assert extra['eca'] < 0.25 * bn3_mib, (extra, bn3_mib)
    assert '95% interval' in proc.stdout and 'eca / naive' in proc.stdout


@pytest.mark.parametrize('device,message', [
    ('cuda', 'torch.cuda.is_available() is False'),
    ('gpu0', 'is not a device name'),
])
def test_cli_unusable_device_is_a_clear_error(device, message):
    if device == 'cuda' and torch.cuda.is_available():
        pytest.skip('a GPU is visible here')
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools/analysis/benchmark.py'),
         '--device', device, '--size', '32'],
        capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_device_figures_cli_on_the_cpu(tmp_path):
    """tools/analysis/device_figures.py end to end with --device cpu (tiny
    inputs, torch.compile through the aot_eager backend to keep it short):
    one table row per setting, ratios that are the paired geometric means
    they claim, the naive form's extra memory, and the profile section
    (forced with --flag -1)."""
    out = tmp_path / 'f.json'
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools/analysis/device_figures.py'),
         '--device', 'cpu', '--depths', '50', '--settings', 'det-train',
         'cls-infer', '--precisions', 'fp32', 'bf16', '--compile-precisions',
         'fp32', '--compile-settings', 'det-train', 'cls-infer',
         '--compile-backend', 'aot_eager', '--det-size', '64x96x1',
         '--cls-size', '32x32x2', '--rounds', '2', '--warmup', '1',
         '--threads', '1', '--flag', '-1', '--json', str(out)],
        capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cells = json.loads(out.read_text())['cells']
    assert [(c['setting'], c['precision'], c['mode']) for c in cells] == [
        ('det-train', 'fp32', 'eager'), ('det-train', 'bf16', 'eager'),
        ('cls-infer', 'fp32', 'eager'), ('cls-infer', 'bf16', 'eager'),
        ('det-train', 'fp32', 'compile'), ('cls-infer', 'fp32', 'compile')]
    for c in cells:
        t = c['times_s']
        assert all(len(t[v]) == 2 for v in ('plain', 'eca', 'naive'))
        logs = [math.log(e / n) for e, n in zip(t['eca'], t['naive'])]
        assert math.isclose(c['eca_naive'][0], math.exp(sum(logs) / 2))
        for key in ('eca', 'naive', 'eca_naive'):
            assert c[key][1] <= c[key][0] <= c[key][2]
    lines = proc.stdout.splitlines()
    assert sum(line.startswith('R-50') for line in lines) == 6
    # training, eager: the straightforward ECA keeps bn3's output as well,
    # float32 in stages 2-4 (stage 1 is frozen) at 64x96, batch 1
    bn3_mib = sum(n * c * (64 // s) * (96 // s) * 4 for n, c, s in zip(
        (4, 6, 3), (512, 1024, 2048), (8, 16, 32))) / 2**20
    peak = cells[0]['peak_mib']
    assert peak['naive'] - peak['plain'] > 0.9 * bn3_mib, (peak, bn3_mib)
    assert peak['eca'] - peak['plain'] < 0.1 * bn3_mib, (peak, bn3_mib)
    for v in ('plain', 'eca', 'naive'):
        assert f'{v}: layer3[1]' in proc.stdout
    assert 'ECA costs more than' in proc.stdout
