"""The paper's Table-2 attention variants: parameter counts equal the
table's formulas exactly, and outputs equal an independent computation of
each formula (written here with plain loops / dense matrices)."""
import pytest
import torch
from mmdet.registry import MODELS

import eca_mmdet  # noqa: F401
from eca_mmdet.layers import ECA, ECANS, SE, SEGC, SEVar1, SEVar2, SEVar3

C = 64


def nparams(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize('module, formula', [
    (lambda: SE(C, reduction=16, bias=False), 2 * C * C // 16),
    (lambda: SEVar1(C), 0),
    (lambda: SEVar2(C), C),
    (lambda: SEVar3(C), C * C),
    (lambda: SEGC(C, groups=16), C * C // 16),              # SE-GC1
    (lambda: SEGC(C, channels_per_group=16), C * C // (C // 16)),  # GC2
    (lambda: SEGC(C, channels_per_group=8), C * C // (C // 8)),    # GC3
    (lambda: ECANS(C, k_size=3), 3 * C),
    (lambda: ECA(C, k_size=3), 3),
    (lambda: ECA(C, k_size=5, num_convs=2), 10),
])
def test_parameter_counts_match_table_formulas(module, formula):
    assert nparams(module()) == formula


def randomize(m):
    torch.manual_seed(1)
    for p in m.parameters():
        p.data.normal_(0, 0.5)
    return m


def reference_gate(name, m, y):
    """The paper's formulas on pooled y (N, C), written independently."""
    n, c = y.shape
    if name == 'SEVar1':
        return torch.sigmoid(y)
    if name == 'SEVar2':
        return torch.sigmoid(y * m.weight)
    if name == 'SEVar3':
        return torch.sigmoid(y @ m.fc.weight.t())
    if name == 'SEGC':
        w = torch.zeros(c, c, dtype=y.dtype)    # dense block-diagonal W_G
        g = c // m.groups
        for i in range(m.groups):
            w[i * g:(i + 1) * g, i * g:(i + 1) * g] = \
                m.conv.weight[i * g:(i + 1) * g, :, 0]
        return torch.sigmoid(y @ w.t())
    if name == 'ECANS':
        k = m.k_size
        out = torch.zeros_like(y)
        for i in range(c):
            for j in range(k):
                src = i - (k - 1) // 2 + j
                if 0 <= src < c:
                    out[:, i] += m.weight[i, j] * y[:, src]
        return torch.sigmoid(out)
    if name == 'ECA':   # num_convs stacked shared-weight 1-D convolutions
        z = y
        for conv in [m.conv, *getattr(m, 'extra_convs', [])]:
            w, k = conv.weight.view(-1), m.k_size
            nxt = torch.zeros_like(z)
            for i in range(c):
                for j in range(k):
                    src = i - (k - 1) // 2 + j
                    if 0 <= src < c:
                        nxt[:, i] += w[j] * z[:, src]
            z = nxt
        return torch.sigmoid(z)
    if name == 'SE':
        h = torch.relu(y @ m.fc1.weight[:, :, 0, 0].t() + m.fc1.bias)
        return torch.sigmoid(h @ m.fc2.weight[:, :, 0, 0].t() + m.fc2.bias)
    raise KeyError(name)


@pytest.mark.parametrize('cfg', [
    dict(type='SEVar1'), dict(type='SEVar2'), dict(type='SEVar3'),
    dict(type='SEGC', groups=16), dict(type='SEGC', channels_per_group=8),
    dict(type='ECANS', k_size=5), dict(type='ECA', k_size=3, num_convs=2),
    dict(type='ECA', k_size=5, num_convs=3), dict(type='SE', reduction=4),
])
def test_output_equals_formula(cfg):
    m = randomize(MODELS.build(dict(cfg, in_channels=C))).double()
    x = torch.randn(2, C, 5, 7, dtype=torch.float64, requires_grad=True)
    out = m(x)
    want = x * reference_gate(cfg['type'], m, x.mean((2, 3)))[:, :, None,
                                                               None]
    assert torch.allclose(out, want, atol=1e-12, rtol=0)
    out.sum().backward()
    for p in m.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_num_convs_one_keeps_released_checkpoint_keys():
    assert list(ECA(C, 3).state_dict()) == ['conv.weight']
    assert list(ECA(C, 3, num_convs=2).state_dict()) == [
        'conv.weight', 'extra_convs.0.weight']


@pytest.mark.parametrize('bad', [
    lambda: SEGC(C), lambda: SEGC(C, groups=3),
    lambda: SEGC(C, groups=4, channels_per_group=16),
    lambda: ECANS(C, k_size=4), lambda: ECA(C, num_convs=0),
    lambda: SEVar2(0),
])
def test_bad_arguments_are_clear_errors(bad):
    with pytest.raises(ValueError):
        bad()


@pytest.mark.parametrize('cfg', [
    dict(type='SEVar1'), dict(type='SEVar2'), dict(type='SEVar3'),
    dict(type='SEGC', groups=16), dict(type='ECANS', k_size=3),
    dict(type='ECA', k_size=3, num_convs=2)])
def test_variants_as_plugins_in_mmdet_resnet(cfg):
    backbone = MODELS.build(dict(
        type='mmdet.ResNet', depth=50, init_cfg=None,
        plugins=[dict(cfg=cfg, position='after_conv3')]))
    plain = MODELS.build(dict(type='mmdet.ResNet', depth=50, init_cfg=None))
    per_block = {  # C = 256, 512, 1024, 2048 for 3, 4, 6, 3 blocks
        'SEVar1': lambda c: 0, 'SEVar2': lambda c: c,
        'SEVar3': lambda c: c * c, 'SEGC': lambda c: c * c // 16,
        'ECANS': lambda c: 3 * c, 'ECA': lambda c: 6}[cfg['type']]
    extra = sum(n * per_block(c) for n, c in
                zip((3, 4, 6, 3), (256, 512, 1024, 2048)))
    assert nparams(backbone) - nparams(plain) == extra
    backbone.eval()
    with torch.no_grad():
        outs = backbone(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [256, 512, 1024, 2048]


@pytest.mark.parametrize('cfg', [dict(type='SE', reduction=16),
                                 dict(type='SEVar3'),
                                 dict(type='ECANS', k_size=3),
                                 dict(type='ECA', num_convs=2)])
@pytest.mark.parametrize('depth', [18, 50])
def test_ecaresnet_attention_cfg_matches_straightforward_block(cfg, depth):
    """attention_cfg puts a variant in our blocks; training and
    eval outputs, and in training the gradients of the input and of every
    parameter, equal the block computed the straightforward way."""
    from eca_mmdet.backbones import ECAResNet
    torch.manual_seed(0)
    net = ECAResNet(depth=depth, base_channels=16, attention_cfg=cfg,
                    init_cfg=None).double()
    blk = net.layer2[0]
    assert type(blk.eca).__name__ == cfg['type']

    def straightforward(x):
        identity = blk.downsample(x)
        out = blk.relu(blk.norm1(blk.conv1(x)))
        if depth == 18:
            z = blk.norm2(blk.conv2(out))
        else:
            out = blk.relu(blk.norm2(blk.conv2(out)))
            z = blk.norm3(blk.conv3(out))
        return torch.relu(identity + blk.eca(z))

    def run(fn, x, w):
        x = x.clone().requires_grad_(blk.training)
        out = fn(x)
        if not blk.training:
            return out, {}
        blk.zero_grad(set_to_none=True)
        (out * w).sum().backward()
        grads = {n: p.grad.clone() for n, p in blk.named_parameters()}
        return out, dict(grads, input=x.grad)

    for mode in (True, False):
        blk.train(mode)
        x = torch.randn(2, blk.conv1.in_channels, 9, 9, dtype=torch.float64)
        w = torch.randn(blk(x).shape, dtype=torch.float64)
        got, got_grads = run(blk, x, w)
        want, want_grads = run(straightforward, x, w)
        assert torch.allclose(got, want, atol=1e-10), mode
        assert got_grads.keys() == want_grads.keys()
        for k in got_grads:
            assert torch.allclose(got_grads[k], want_grads[k], atol=1e-10,
                                  rtol=1e-8), k


def test_ablation_configs_and_table():
    """configs/ablations/ holds both detectors of every Table-2 variant;
    the complexity tool's Table-2 mode builds them, counts exactly the
    formula's parameters for each (it fails otherwise) and prints every
    row."""
    import glob
    import os.path as osp
    import subprocess
    import sys

    from helpers import ROOT
    names = ['eca-k3', 'eca-k3-2convs', 'eca-ns', 'se-gc1', 'se-gc2',
             'se-gc3', 'se-var1', 'se-var2', 'se-var3']
    files = sorted(osp.basename(p) for p in glob.glob(
        osp.join(ROOT, 'configs', 'ablations', '*.py')))
    assert files == sorted(f'{d}_{n}_r50.py' for d in
                           ('faster_rcnn', 'retinanet') for n in names)
    r = subprocess.run([sys.executable, osp.join(
        ROOT, 'tools', 'analysis', 'complexity.py'), '--ablation',
        '--no-flops'], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout
    for label, counted in [('SE-Var3', '20,119,552'), ('ECA (k=3)', '48'),
                           ('ECA-NS (k=3)', '45,312'),
                           ('SE-GC1 (G=16)', '1,257,472')]:
        row = next(ln for ln in out.splitlines()
                   if ln.startswith(f'| {label} |'))
        assert row.split(' | ')[3] == counted, row
