"""``init_cfg`` in every form mmengine accepts -- one dict, a list of dicts,
``Pretrained`` with ``prefix`` -- loads every weight strictly, from a ``.pth``
and from a ``.safetensors`` file, into every backbone we register, or stops
with our one-line error; a timm file without ``num_batches_tracked`` loads
with the counters at zero. mmdet's own ResNet with the ECA plugin is
mmengine's: its ``Pretrained`` is mmengine's non-strict loader (pinned here,
as the docs say)."""
import functools

import pytest
import torch
from mmdet.registry import MODELS
from safetensors.torch import save_file

import eca_mmdet  # noqa: F401
from eca_mmdet.checkpoint import CheckpointError

from helpers import randomize_bn

SMALL = dict(base_channels=16, stem_channels=16)
BACKBONES = {
    'ECAResNet': dict(type='ECAResNet', depth=18, **SMALL),
    'ECAResNetV1d': dict(type='ECAResNetV1d', depth=18, **SMALL),
    'ECAMobileNetV2': dict(type='ECAMobileNetV2', widen_factor=0.5),
    'ECATimmBackbone': dict(type='ECATimmBackbone',
                            model_name='eca_resnext26ts'),
}
FORMS = {
    'dict': lambda ckpt: dict(type='Pretrained', checkpoint=ckpt),
    'list': lambda ckpt: [dict(type='Pretrained', checkpoint=ckpt)],
    'list with prefix': lambda ckpt: [
        dict(type='Kaiming', layer='Conv2d'),
        dict(type='Pretrained', checkpoint=ckpt, prefix='backbone.')],
}


def randomized(model):
    """``model`` with random weights and batch-norm statistics, and batch
    counters at 7."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    for name, b in model.named_buffers():
        if name.endswith('num_batches_tracked'):
            b.fill_(7)
    return randomize_bn(model)


@functools.lru_cache(maxsize=None)
def source_weights(name):
    """The weights a file for backbone ``name`` holds: for our backbones
    their own state_dict, for timm's network the whole model's (classifier
    included), as on timm's hub."""
    if name == 'ECATimmBackbone':
        timm = pytest.importorskip('timm')
        model = timm.create_model(BACKBONES[name]['model_name'])
    else:
        model = MODELS.build(BACKBONES[name])
    return {k: v.contiguous() for k, v in randomized(model).state_dict()
            .items()}


def write(state_dict, path):
    """``state_dict`` as ``path`` (``.safetensors``: flat; ``.pth``: under
    ``state_dict``, as mmengine saves)."""
    if path.suffix == '.safetensors':
        save_file(state_dict, str(path))
    else:
        torch.save(dict(state_dict=state_dict), str(path))
    return str(path)


def build(name, init_cfg):
    return MODELS.build(dict(BACKBONES[name], init_cfg=init_cfg))


def assert_loaded(model, source):
    """Each tensor of ``model`` equals the one of the file's ``source``
    (timm's feature net flattens ``stages.0`` to ``stages_0``: its names are
    compared with dots)."""
    state = model.state_dict()
    if hasattr(model, 'body'):
        def dotted(tensors):
            return {k.replace('_', '.'): v for k, v in tensors.items()}
        state, source = dotted(model.body.state_dict()), dotted(source)
    assert state
    for key, value in state.items():
        assert torch.equal(value, source[key]), key


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
@pytest.mark.parametrize('form', FORMS)
@pytest.mark.parametrize('name', BACKBONES)
def test_init_cfg_form_loads_strictly(name, form, suffix, tmp_path):
    source = source_weights(name)
    if 'prefix' in form:  # a detector's checkpoint: backbone and more
        state = {'backbone.' + k: v for k, v in source.items()}
        state['neck.conv.weight'] = torch.ones(2, 2, 1, 1)
    else:
        state = source
    model = build(name, FORMS[form](write(state, tmp_path / f'w{suffix}')))
    model.init_weights()
    assert_loaded(model, source)


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
@pytest.mark.parametrize('name', BACKBONES)
def test_list_init_cfg_of_a_file_that_does_not_fit_stops(name, suffix,
                                                         tmp_path):
    """One convolution missing from the file: our one-line error, not a
    warning from mmengine's non-strict loader and random weights."""
    state = dict(source_weights(name))
    del state[[k for k, v in state.items()
               if v.dim() == 4 and '.eca.' not in k][-1]]
    model = build(name, FORMS['list'](write(state, tmp_path / f'w{suffix}')))
    with pytest.raises(CheckpointError) as e:
        model.init_weights()
    assert '\n' not in str(e.value)
    assert 'missing' in str(e.value) or 'lacks' in str(e.value)


def test_prefix_that_matches_nothing_stops(tmp_path):
    for name in ('ECAResNet', 'ECATimmBackbone'):
        path = write(source_weights(name), tmp_path / 'w.safetensors')
        model = build(name, [dict(type='Pretrained', checkpoint=path,
                                  prefix='backbone')])
        with pytest.raises(CheckpointError, match="no tensors under prefix "
                           "'backbone'|no keys under prefix 'backbone'"):
            model.init_weights()


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_timm_file_without_batch_counters_loads_them_at_zero(suffix,
                                                             tmp_path):
    """Files some tools write hold no ``num_batches_tracked``: the weights
    load strictly and the counters start at zero (they held 5 before)."""
    source = source_weights('ECATimmBackbone')
    state = {k: v for k, v in source.items()
             if not k.endswith('num_batches_tracked')}
    model = build('ECATimmBackbone',
                  FORMS['dict'](write(state, tmp_path / f'w{suffix}')))
    counters = [b for n, b in model.named_buffers()
                if n.endswith('num_batches_tracked')]
    for b in counters:
        b.fill_(5)
    model.init_weights()
    assert counters and all(b.item() == 0 for b in counters)
    assert_loaded(model, {**state, **{
        k: torch.tensor(0) for k in source
        if k.endswith('num_batches_tracked')}})


def test_mmdet_resnet_with_eca_plugin_pretrained_is_mmengines_loader(
        tmp_path):
    """mmdet's ResNet is mmdet's: ``Pretrained`` goes through mmengine's
    non-strict loader. An ECA-ResNet file (same keys) loads every weight, ECA
    kernels included; a plain ResNet file (the usual torchvision://resnet50)
    loads the ResNet weights and leaves the ECA kernels at their init, as for
    any new mmdet plugin. ECAResNet loads ECA weights strictly."""
    small = dict(depth=50, **SMALL)
    plugin = dict(type='ResNet', plugins=[dict(
        cfg=dict(type='ECA', k_size=3), position='after_conv3')], **small)
    eca = randomized(MODELS.build(dict(type='ECAResNet', k_size=3, **small)))
    eca_file = write(dict(eca.state_dict()), tmp_path / 'eca.pth')
    model = MODELS.build(dict(plugin, init_cfg=dict(type='Pretrained',
                                                    checkpoint=eca_file)))
    model.init_weights()
    assert all(torch.equal(v, eca.state_dict()[k])
               for k, v in model.state_dict().items())

    plain = {k: v for k, v in eca.state_dict().items() if '.eca.' not in k}
    model = MODELS.build(dict(plugin, init_cfg=dict(
        type='Pretrained', checkpoint=write(plain, tmp_path / 'plain.pth'))))
    kernels = {k: v.clone() for k, v in model.state_dict().items()
               if k not in plain}
    assert len(kernels) == 16  # one ECA per bottleneck
    model.init_weights()
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in kernels.items())
    assert all(torch.equal(state[k], v) for k, v in plain.items())
