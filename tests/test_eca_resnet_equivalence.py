"""ECAResNet's blocks equal the straightforward ECA composition in every mode.

Reference: mmdet's own ResNet with the ECA plugin after conv3 (pool, 1-D
conv, sigmoid, separate multiply, then ``out += identity``), loaded with the
same weights -- the state-dict keys are identical.

Whole backbones are compared in float64: a 50-layer network in training mode
with batch statistics over tiny inputs is ill-conditioned (fp32 rounding alone
moves the reference's own layer4 ECA gradients by >100% against float64), so
only float64 separates a real difference from rounding there. Single blocks
are compared in float32 at 1e-5 and under autocast, on every device (the
``device`` fixture: the CPU, and CUDA where torch sees a GPU).
"""
import copy

import pytest
import torch
from mmdet.models.backbones import ResNet

import eca_mmdet  # noqa: F401
from eca_mmdet.backbones import ECAResNet
from eca_mmdet.backbones.eca_resnet import ECABasicBlock, ECABottleneck
from eca_mmdet.layers import gated_residual
from eca_mmdet.layers.gated_residual import bn_scale_shift

from helpers import randomize_bn

# CPU autocast takes float16 from torch 2.3 on (torch 2.1 raises)
CPU_FP16 = tuple(int(v) for v in torch.__version__.split('.')[:2]) >= (2, 3)


def skip_without_cpu_fp16(device, dtype):
    if device == 'cpu' and dtype == torch.float16 and not CPU_FP16:
        pytest.skip(f'CPU autocast takes no float16 in torch '
                    f'{torch.__version__} (from torch 2.3 on it does)')


class FormulaECA(torch.nn.Module):
    """``x * sigmoid(conv1d_k(mean_hw(x)))`` written out here, independent
    of eca_mmdet's layers; adaptive k as in the paper (5/5/5/7 for R-50)."""

    _abbr_ = 'eca'

    def __init__(self, in_channels):
        super().__init__()
        k = {256: 5, 512: 5, 1024: 5, 2048: 7}[in_channels]
        self.conv = torch.nn.Conv1d(1, 1, k, padding=k // 2, bias=False)

    def forward(self, x):
        y = x.mean((2, 3))[:, None, :]
        return x * torch.sigmoid(self.conv(y))[:, 0, :, None, None]


PLUGIN = [dict(cfg=dict(type='mmdet.ECA', k_size=None),
               position='after_conv3')]
FORMULA_PLUGIN = [dict(cfg=dict(type=FormulaECA), position='after_conv3')]


def pair(dtype=torch.float64, plugin=PLUGIN, **kw):
    kw.setdefault('depth', 50)
    ours = ECAResNet(k_size=None, **kw)
    ours.init_weights()
    randomize_bn(ours)
    with torch.no_grad():
        for n, p in ours.named_parameters():
            if n.endswith('eca.conv.weight'):
                p.copy_(torch.randn_like(p))
    ref = ResNet(plugins=plugin, **kw)
    ref.load_state_dict(ours.state_dict(), strict=True)
    return ours.to(dtype), ref.to(dtype)


def run(model, x, train):
    model.zero_grad(set_to_none=True)
    model.train(train)
    x = x.clone().requires_grad_(train)
    outs = model(x)
    if not train:
        return [o.detach() for o in outs], None
    torch.manual_seed(5)
    weights = [torch.randn(o.shape, dtype=torch.float64).to(o)
               for o in outs]
    sum((o * w).sum() for o, w in zip(outs, weights)).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()
             if p.grad is not None}
    grads['input'] = x.grad
    return [o.detach() for o in outs], grads


def assert_same(ours, ref, x, train, atol=1e-10, rtol=1e-10):
    o1, g1 = run(ours, x, train)
    o2, g2 = run(ref, x, train)
    for a, b in zip(o1, o2):
        torch.testing.assert_close(a, b, atol=atol, rtol=rtol)
    if train:
        assert g1.keys() == g2.keys()
        for k in g1:
            scale = g2[k].abs().max().clamp_min(1.0)
            torch.testing.assert_close(g1[k] / scale, g2[k] / scale,
                                       atol=atol, rtol=rtol, msg=k)
        # running statistics were updated identically
        for (n, b1), (_, b2) in zip(ours.named_buffers(),
                                    ref.named_buffers()):
            torch.testing.assert_close(b1, b2, atol=1e-6, rtol=1e-6, msg=n)


@pytest.fixture
def x():
    return torch.randn(2, 3, 64, 64, dtype=torch.float64)


def block_pair(k=5, device='cpu', **kw):
    """Our ECABottleneck and mmdet's Bottleneck + ECA plugin, fp32."""
    from mmdet.models.backbones.resnet import Bottleneck
    kw = dict(inplanes=64, planes=16, **kw)
    ours = ECABottleneck(eca_k_size=k, **kw)
    randomize_bn(ours)
    with torch.no_grad():
        ours.eca.conv.weight.copy_(torch.randn(1, 1, k))
    ref = Bottleneck(plugins=[dict(cfg=dict(type='mmdet.ECA', k_size=k),
                                   position='after_conv3')], **kw)
    ref.load_state_dict(ours.state_dict(), strict=True)
    return ours.to(device), ref.to(device)


def exact_fp32():
    """float32 as float32: no TF32 in cuDNN's convolutions (on by default
    for them on Ampere and newer GPUs); no effect on the CPU."""
    return torch.backends.cudnn.flags(enabled=True, allow_tf32=False)


@pytest.mark.parametrize('channels_last', [False, True],
                         ids=['contiguous', 'channels_last'])
@pytest.mark.parametrize('train', [True, False])
def test_single_block_fp32_within_1e5(train, channels_last, device):
    """One block on each device: output, every parameter's gradient, the
    input's gradient and BN running statistics against the reference."""
    ours, ref = block_pair(device=device)
    x = torch.randn(4, 64, 12, 12, device=device)
    if channels_last:
        ours = ours.to(memory_format=torch.channels_last)
        ref = ref.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    with exact_fp32():
        assert_same(ours, ref, x, train, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('plugin', [PLUGIN, FORMULA_PLUGIN],
                         ids=['eca_plugin', 'formula'])
@pytest.mark.parametrize('train', [True, False])
def test_train_and_eval(x, train, plugin):
    """Whole ECA-ResNet-50 in float64, outputs, every parameter's gradient,
    the input's gradient and BN running statistics: against mmdet ResNet with
    our ECA plugin and with the formula written out in this file."""
    ours, ref = pair(norm_eval=False, plugin=plugin)
    assert_same(ours, ref, x, train)


def test_norm_eval(x):
    ours, ref = pair(norm_eval=True)
    assert_same(ours, ref, x, train=True)


def test_with_cp(x):
    ours, ref = pair(norm_eval=False, with_cp=True)
    assert_same(ours, ref, x, train=True)


def test_frozen_stages_and_caffe_style(x):
    ours, ref = pair(frozen_stages=2, style='caffe', norm_eval=False)
    assert_same(ours, ref, x, train=True)


def test_channels_last(x):
    ours, ref = pair(norm_eval=False)
    ours = ours.to(memory_format=torch.channels_last)
    ref = ref.to(memory_format=torch.channels_last)
    assert_same(ours, ref, x.to(memory_format=torch.channels_last),
                train=True)


def test_inference_fp32_block_within_1e5():
    ours, ref = block_pair()
    ours.eval()
    ref.eval()
    x = torch.randn(4, 64, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)


def test_torch_compile_block_fullgraph_matches():
    torch.manual_seed(0)
    block = ECABottleneck(inplanes=64, planes=16, eca_k_size=3)
    randomize_bn(block)
    ref = copy.deepcopy(block)
    x = torch.randn(2, 64, 8, 8)
    # fullgraph=True raises on any graph break inside the block
    compiled = torch.compile(block, fullgraph=True, backend='aot_eager')
    for train in (True, False):
        block.train(train)
        ref.train(train)
        xi = x.clone().requires_grad_(train)
        xr = x.clone().requires_grad_(train)
        a, b = compiled(xi), ref(xr)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        if train:
            a.square().sum().backward()
            b.square().sum().backward()
            torch.testing.assert_close(xi.grad, xr.grad, atol=1e-5,
                                       rtol=1e-5)
            torch.testing.assert_close(block.eca.conv.weight.grad,
                                       ref.eca.conv.weight.grad, atol=1e-5,
                                       rtol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), ref(x), atol=1e-5,
                                   rtol=1e-5)


def test_backward_does_not_keep_the_normalised_activation():
    """The blocks' tail saves bn3's input (already saved by BN) instead of
    bn3's output: count bytes of activations kept for backward."""
    ours, ref = pair(torch.float32, norm_eval=False)
    plain = ResNet(depth=50, norm_eval=False)
    for m in (ours, ref, plain):
        m.train()
    x = torch.randn(2, 3, 160, 160)
    b0, _ = saved_bytes(plain, x)
    b1, _ = saved_bytes(ours, x)
    b2, _ = saved_bytes(ref, x)
    assert b2 > b0 * 1.15         # the naive plugin keeps bn3's output too
    assert b1 < b0 * 1.01         # ours keeps what plain ResNet keeps


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16],
                         ids=['bf16', 'fp16'])
def test_autocast_block(dtype, device):
    """Under float16 / bfloat16 autocast ours and the reference run the same
    low-precision kernels and keep the same dtypes; both stay as close to
    the fp32 result as the format allows (errors summed over three random
    blocks, as single low-precision gradients scatter)."""
    skip_without_cpu_fp16(device, dtype)

    def err(u, v):
        return ((u.float() - v).norm() / v.norm()).item()

    total = {'ours': 0.0, 'ref': 0.0}
    for seed in range(3):
        for train in (True, False):
            torch.manual_seed(seed)
            ours, ref = block_pair(device=device)
            fp32 = copy.deepcopy(ref)  # same BN running stats
            x = torch.randn(4, 64, 12, 12, device=device)
            with torch.autocast(device, dtype=dtype):
                a, ga = run(ours, x, train)
                b, gb = run(ref, x, train)
            with exact_fp32():
                f, gf = run(fp32, x, train)
            for u, v, w in zip(a, b, f):
                assert u.dtype == v.dtype == dtype
                # bf16 keeps 8 mantissa bits, fp16 11
                assert err(u, w) < (3e-2 if dtype == torch.bfloat16
                                    else 4e-3)
                assert err(u, w) <= 1.5 * err(v, w) + 1e-3
            if train:
                for k in gf:
                    assert ga[k].dtype == gb[k].dtype, k
                    total['ours'] += err(ga[k], gf[k])
                    total['ref'] += err(gb[k], gf[k])
    assert total['ours'] <= 1.5 * total['ref'], total


def saved_bytes(model, x):
    """Bytes of the tensors autograd keeps for backward in ``model(x)``,
    parameters aside (autocast's low-precision weight copies count, alike
    for every model)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    return sum(seen.values()), out


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16,
                                   torch.float16],
                         ids=['fp32', 'bf16', 'fp16'])
def test_lean_tail_taken_on_every_device(dtype, device):
    """In training the block's tail is :class:`GatedResidual` on every
    device and under autocast, as on the CPU in float32: it keeps what
    mmdet's plain Bottleneck keeps (and the gate's few bytes); the
    straightforward block keeps ``bn3``'s output as well."""
    skip_without_cpu_fp16(device, dtype)
    from mmdet.models.backbones.resnet import Bottleneck
    ours, ref = block_pair(device=device)
    plain = Bottleneck(inplanes=64, planes=16).to(device)
    plain.load_state_dict({k: v for k, v in ours.state_dict().items()
                           if not k.startswith('eca.')})
    x = torch.randn(4, 64, 12, 12, device=device, requires_grad=True)
    with (exact_fp32() if dtype == torch.float32 else
          torch.autocast(device, dtype=dtype)):
        b0, _ = saved_bytes(plain, x)
        b1, out = saved_bytes(ours, x)
        b2, _ = saved_bytes(ref, x)
    tail = out.grad_fn.next_functions[0][0]
    assert type(tail).__name__ == 'GatedResidualBackward', out.grad_fn
    z_bytes = x.numel() * (4 if dtype == torch.float32 else 2)
    gate_bytes = 64 * x.shape[0] * 4 * 4   # (N, C) vectors, a few of them
    assert b1 <= b0 + gate_bytes, (b0, b1)
    assert b2 >= b0 + z_bytes, (b0, b2)


@pytest.mark.parametrize('frozen', ['norm3', 'eca'])
def test_frozen_bn_or_attention_params(frozen):
    """Only some parameters train (frozen BN affine, or a frozen gate): the
    others' gradients still equal the reference's."""
    ours, ref = block_pair()
    ours, ref = ours.double(), ref.double()
    for m in (ours, ref):
        for p in getattr(m, frozen).parameters():
            p.requires_grad_(False)
    x = torch.randn(4, 64, 12, 12, dtype=torch.float64)
    for train in (True, False):  # batch and running statistics
        ours.train(train)
        ref.train(train)
        for m in (ours, ref):
            for mod in m.modules():
                mod.train(train)
        xo, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
        a, b = ours(xo), ref(xr)
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
        a.square().sum().backward()
        b.square().sum().backward()
        torch.testing.assert_close(xo.grad, xr.grad, atol=1e-10, rtol=1e-8)
        for (n, p), q in zip(ours.named_parameters(), ref.parameters()):
            assert (p.grad is None) == (q.grad is None) == \
                (not p.requires_grad), n
            if p.grad is not None:
                torch.testing.assert_close(p.grad, q.grad, atol=1e-10,
                                           rtol=1e-8, msg=n)
            p.grad = q.grad = None


def test_basic_block_backbone_matches_formula():
    """ResNet-18's BasicBlocks have no plugin position in mmdet: compare
    with the formula applied to mmdet's BasicBlock by hand."""
    from mmdet.models.backbones.resnet import BasicBlock
    ours = ECABasicBlock(inplanes=32, planes=32, eca_k_size=3).double()
    randomize_bn(ours)
    ref = BasicBlock(inplanes=32, planes=32).double()
    ref.load_state_dict({k: v for k, v in ours.state_dict().items()
                         if not k.startswith('eca.')})
    w = ours.eca.conv.weight.detach()

    def ref_forward(x):
        z = ref.norm2(ref.conv2(ref.relu(ref.norm1(ref.conv1(x)))))
        gate = torch.sigmoid(torch.nn.functional.conv1d(
            z.mean((2, 3))[:, None], w, padding=1))[:, 0, :, None, None]
        return torch.relu(z * gate + x)

    x = torch.randn(2, 32, 9, 7, dtype=torch.float64)
    for train in (True, False):
        ours.train(train)
        ref.train(train)
        a = ours(x.clone().requires_grad_())
        b = ref_forward(x.clone().requires_grad_())
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize('batch_stats', [True, False])
@pytest.mark.parametrize('affine', [True, False])
def test_gated_residual_gradcheck(batch_stats, affine):
    """``gated_residual`` through :class:`GatedResidual` has the exact
    gradients of ``identity + bn(x) * attention(bn(x))`` (float64
    gradcheck: x, identity, BN affine and the ECA kernel)."""
    from eca_mmdet.layers import ECA
    bn = torch.nn.BatchNorm2d(6, affine=affine).double()
    randomize_bn(bn) if affine else None
    bn.train(batch_stats)
    eca = ECA(6, 3).double()
    x = torch.randn(3, 6, 4, 5, dtype=torch.float64, requires_grad=True)
    identity = torch.randn_like(x, requires_grad=True)
    params = [p for p in list(bn.parameters()) + list(eca.parameters())]

    def fn(x, identity, *_):
        assert bn_scale_shift(bn, x) is not None  # the lean path is taken
        return gated_residual(x, bn, eca, identity)

    torch.autograd.gradcheck(fn, (x, identity, *params))


def test_scale_shift_only_where_exact():
    """The lean backward needs bn(x) == x * scale + shift per channel:
    available for BatchNorm2d and for any batch norm on running
    statistics; not for GroupNorm, nor SyncBN with batch statistics (they
    span processes)."""
    x = torch.randn(2, 4, 3, 3)
    bn = torch.nn.BatchNorm2d(4)
    randomize_bn(bn)
    for train in (True, False):
        bn.train(train)
        scale, shift = bn_scale_shift(bn, x)
        z = bn(x)
        torch.testing.assert_close(x * scale[..., None, None] +
                                   shift[..., None, None], z)
    sync = torch.nn.SyncBatchNorm(4)
    assert bn_scale_shift(sync, x) is None
    assert bn_scale_shift(sync.eval(), x) is not None
    assert bn_scale_shift(torch.nn.GroupNorm(2, 4), x) is None


@pytest.mark.parametrize('train', [True, False])
def test_forward_hooks_on_eca_fire_and_see_the_gate(train):
    """One hook call per block forward, in train and eval; the gate it
    sees equals the formula on the block's bn3 output."""
    model = ECAResNet(depth=50, k_size=None, norm_eval=False)
    randomize_bn(model)
    model.train(train)
    calls, bn3_out = {}, {}
    blocks = [(f'{name}.{i}', b) for name in model.res_layers
              for i, b in enumerate(getattr(model, name))]
    for name, block in blocks:
        block.eca.register_forward_hook(
            lambda m, args, kwargs, out, n=name: calls.setdefault(
                n, []).append(out if kwargs.get('gate_only') else
                              m.gate(args[0])), with_kwargs=True)
        block.norm3.register_forward_hook(
            lambda m, args, out, n=name: bn3_out.__setitem__(
                n, out.detach().clone()))
    x = torch.randn(2, 3, 64, 64)
    with torch.set_grad_enabled(train):
        model(x)
    assert sorted(calls) == sorted(n for n, _ in blocks)
    assert all(len(v) == 1 for v in calls.values())
    for name, block in blocks:
        w = block.eca.conv.weight.detach()
        z = bn3_out[name]
        gate = torch.sigmoid(torch.nn.functional.conv1d(
            z.mean((2, 3))[:, None], w, padding=w.shape[-1] // 2))
        torch.testing.assert_close(calls[name][0].detach().flatten(1),
                                   gate[:, 0], atol=1e-6, rtol=1e-6)
