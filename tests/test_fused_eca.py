"""The optimised ECA block path equals the straightforward one in every mode.

Reference: mmdet's own ResNet with the ECA plugin after conv3 (pool, 1-D
conv, sigmoid, separate multiply, then ``out += identity``), loaded with the
same weights -- the state-dict keys are identical.

Whole backbones are compared in float64: a 50-layer network in training mode
with batch statistics over tiny inputs is ill-conditioned (fp32 rounding alone
moves the reference's own layer4 ECA gradients by >100% against float64), so
only float64 separates a real difference from rounding there. Single blocks
are compared in float32 at 1e-5.
"""
import copy

import pytest
import torch
from mmdet.models.backbones import ResNet

import eca_mmdet  # noqa: F401
from eca_mmdet.backbones import ECAResNet
from eca_mmdet.backbones import eca_resnet
from eca_mmdet.backbones.eca_resnet import ECABottleneck
from eca_mmdet.layers import gated_residual
from conftest import randomize_bn

@pytest.fixture(autouse=True)
def fuse_every_size(monkeypatch):
    """Tests use tiny maps; take the fused training node at every size
    (``test_small_maps_take_plain_autograd`` checks the size rule)."""
    monkeypatch.setattr(gated_residual, 'FUSE_MIN_NUMEL', 0)


PLUGIN = [dict(cfg=dict(type='mmdet.ECA', k_size=None),
               position='after_conv3')]


def pair(dtype=torch.float64, **kw):
    kw.setdefault('depth', 50)
    ours = ECAResNet(k_size=None, **kw)
    ours.init_weights()
    randomize_bn(ours)
    with torch.no_grad():
        for n, p in ours.named_parameters():
            if n.endswith('eca.conv.weight'):
                p.copy_(torch.randn_like(p))
    ref = ResNet(plugins=PLUGIN, **kw)
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
    weights = [torch.randn(o.shape, dtype=torch.float64).to(o.dtype)
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


def block_pair(k=5, **kw):
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
    return ours, ref


@pytest.mark.parametrize('train', [True, False])
def test_single_block_fp32_within_1e5(train):
    ours, ref = block_pair()
    x = torch.randn(4, 64, 12, 12)
    assert_same(ours, ref, x, train, atol=1e-5, rtol=1e-5)


def test_default_backbone_uses_optimised_path(monkeypatch, x):
    calls = []
    orig = gated_residual._BNGatedResidual.apply
    monkeypatch.setattr(gated_residual._BNGatedResidual, 'apply',
                        lambda *a: calls.append(1) or orig(*a))
    m = ECAResNet(depth=50)
    assert isinstance(m.layer1[0], ECABottleneck)
    run(m, x.float(), train=True)
    assert len(calls) == 16  # every Bottleneck of ResNet-50


@pytest.mark.parametrize('train', [True, False])
def test_train_and_eval(x, train):
    ours, ref = pair(norm_eval=False)
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


@pytest.mark.parametrize('pool_input', [False, True])
@pytest.mark.parametrize('channels_last', [False, True])
def test_inference_under_no_grad_and_inference_mode(x, channels_last,
                                                    pool_input, monkeypatch):
    """The no-grad path (in-place add; gate from the pooled conv3 output,
    or from its pooled input where the map is large)."""
    monkeypatch.setattr(eca_resnet, 'EVAL_POOL_INPUT_MIN_NUMEL',
                        0 if pool_input else 2**62)
    ours, ref = pair()
    ours.eval()
    ref.eval()
    if channels_last:
        ours = ours.to(memory_format=torch.channels_last)
        ref = ref.to(memory_format=torch.channels_last)
        x = x.to(memory_format=torch.channels_last)
    with torch.no_grad():
        a = ours(x)
    with torch.inference_mode():
        b = ours(x)
        c = ref(x)
    for u, v, w in zip(a, b, c):
        torch.testing.assert_close(u, w, atol=1e-10, rtol=1e-10)
        torch.testing.assert_close(v, w, atol=1e-10, rtol=1e-10)


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
    # the no-grad path (the gate's conv over the batch laid end to end)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), ref(x), atol=1e-5,
                                   rtol=1e-5)


def test_backward_does_not_keep_the_normalised_activation():
    """The fused path saves bn3's input (already saved by BN) instead of
    bn3's output: count bytes of activations kept for backward."""
    def saved_bytes(model, x):
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


def test_bf16_autocast_block():
    """Under bf16 autocast ours and the reference run the same bf16 kernels
    and keep the same dtypes; both stay as close to the fp32 result as bf16
    allows (errors summed over three random blocks, as single bf16
    gradients scatter)."""
    def err(u, v):
        return ((u.float() - v).norm() / v.norm()).item()

    total = {'ours': 0.0, 'ref': 0.0}
    for seed in range(3):
        for train in (True, False):
            torch.manual_seed(seed)
            ours, ref = block_pair()
            fp32 = copy.deepcopy(ref)  # same BN running stats
            x = torch.randn(4, 64, 12, 12)
            with torch.autocast('cpu', dtype=torch.bfloat16):
                a, ga = run(ours, x, train)
                b, gb = run(ref, x, train)
            f, gf = run(fp32, x, train)
            for u, v, w in zip(a, b, f):
                assert u.dtype == v.dtype == torch.bfloat16
                assert err(u, w) < 3e-2  # bf16 has 8 mantissa bits
                assert err(u, w) <= 1.5 * err(v, w) + 1e-3
            if train:
                for k in gf:
                    assert ga[k].dtype == gb[k].dtype, k
                    total['ours'] += err(ga[k], gf[k])
                    total['ref'] += err(gb[k], gf[k])
    assert total['ours'] <= 1.5 * total['ref'], total


@pytest.mark.parametrize('batch_stats', [True, False])
@pytest.mark.parametrize('affine', [True, False])
@pytest.mark.parametrize('pooled_given', [True, False])
def test_fused_bn_gate_residual_gradcheck(batch_stats, affine, pooled_given):
    """The hand-written backward of the one-node BN + gate + residual
    against finite differences (float64), with batch and running
    statistics, with and without BN's affine, pooled mean given or not."""
    from eca_mmdet.layers.eca import ECA
    torch.manual_seed(0)
    c = 6
    eca = ECA(c, 3).double()
    with torch.no_grad():
        eca.conv.weight.copy_(torch.randn(1, 1, 3) * 2)
    x = (torch.randn(3, c, 4, 5, dtype=torch.float64) * 2 + 1)
    identity = torch.randn_like(x)
    inputs = [x.requires_grad_(), identity.requires_grad_()]
    if affine:
        inputs += [(torch.rand(c, dtype=torch.float64) + 0.5).requires_grad_(),
                   (torch.randn(c, dtype=torch.float64)).requires_grad_()]
    rm = torch.randn(c, dtype=torch.float64) * 0.1
    rv = torch.rand(c, dtype=torch.float64) + 0.5

    def f(x, identity, weight=None, bias=None):
        pooled = x.detach().mean((2, 3)) if pooled_given else None
        return gated_residual._BNGatedResidual.apply(
            x, weight, bias, identity, pooled, eca, batch_stats, rm.clone(),
            rv.clone(), 0.1, 1e-5, *eca.parameters())

    assert torch.autograd.gradcheck(f, inputs, atol=1e-7, rtol=1e-5)


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


def test_conv3_input_pooling_only_where_it_saves_reads():
    """The gate's pooling reads conv3's input (4x fewer channels) on large
    maps, equal to pooling conv3's output; on small maps, where the C x 4C
    matrix-vector product costs more than the read it saves, it is off."""
    block = ECABottleneck(inplanes=256, planes=64, eca_k_size=3).double()
    big = torch.randn(2, 64, 32, 32, dtype=torch.float64)
    small = torch.randn(2, 64, 2, 2, dtype=torch.float64)
    torch.testing.assert_close(block._pooled_conv3(big),
                               block.conv3(big).mean((2, 3)),
                               atol=1e-12, rtol=1e-12)
    assert block._pooled_conv3(small) is None  # 192 * 4 <= 64 * 256


def test_conv3_input_pooling_without_autograd_only_on_large_maps(
        monkeypatch):
    """Without autograd, conv3's output is pooled while still in cache
    unless it has ``EVAL_POOL_INPUT_MIN_NUMEL`` elements or more."""
    block = ECABottleneck(inplanes=256, planes=64, eca_k_size=3).double()
    x = torch.randn(2, 64, 16, 16, dtype=torch.float64)
    ref = block.conv3(x).mean((2, 3))
    monkeypatch.setattr(eca_resnet, 'EVAL_POOL_INPUT_MIN_NUMEL',
                        2 * 256 * 16 * 16 + 1)
    with torch.no_grad():
        assert block._pooled_conv3(x) is None
    assert block._pooled_conv3(x) is not None  # autograd: size rule only
    monkeypatch.setattr(eca_resnet, 'EVAL_POOL_INPUT_MIN_NUMEL',
                        2 * 256 * 16 * 16)
    with torch.no_grad():
        torch.testing.assert_close(block._pooled_conv3(x), ref,
                                   atol=1e-12, rtol=1e-12)


def test_small_maps_take_plain_autograd(monkeypatch):
    """Below ``FUSE_MIN_NUMEL`` elements a block trains through plain
    autograd ops (faster there); from it on through the fused node."""
    monkeypatch.setattr(gated_residual, 'FUSE_MIN_NUMEL', 2**19)
    calls, pooled = [], []
    orig = gated_residual._BNGatedResidual.apply
    monkeypatch.setattr(gated_residual._BNGatedResidual, 'apply',
                        lambda *a: calls.append(a[0].shape) or orig(*a))
    block = ECABottleneck(inplanes=256, planes=64, eca_k_size=3)
    orig_pool = block._pooled_conv3
    monkeypatch.setattr(block, '_pooled_conv3',
                        lambda x: pooled.append(x.shape) or orig_pool(x))
    block.train()
    block(torch.randn(2, 256, 16, 16, requires_grad=True)).sum().backward()
    # 2 x 256 x 16 x 16 = 131072 elements; conv3's input is not pooled
    # either (that path reads the gate's input from conv3's output)
    assert calls == [] and pooled == []
    block(torch.randn(2, 256, 32, 32, requires_grad=True)).sum().backward()
    assert calls == [(2, 256, 32, 32)] and pooled == [(2, 64, 32, 32)]


@pytest.mark.parametrize('channels_last', [False, True])
def test_one_pass_hw_sums(channels_last):
    """``sum_hw(G)`` and ``sum_hw(G * x)`` from batch norm's backward
    kernel (contiguous maps) or the plain product (other layouts)."""
    g = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64) + 3
    if channels_last:
        g = g.to(memory_format=torch.channels_last)
    sum_g, sum_gx = gated_residual._sum_hw_and_sum_hw_product(g, x)
    torch.testing.assert_close(sum_g, g.sum((2, 3)), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sum_gx, (g * x).sum((2, 3)), rtol=1e-12,
                               atol=1e-12)
