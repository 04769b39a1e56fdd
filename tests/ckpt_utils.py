"""Write checkpoints in the released file layouts (for tests)."""
from collections import OrderedDict

import torch


def official_layout(state_dict, arch, num_classes=1000, fc_in=2048,
                    classifier='fc'):
    """The BangguWu/ECANet ``*.pth.tar`` layout: nested ``state_dict`` with
    DataParallel ``module.`` prefixes, a classifier, and extra keys."""
    sd = OrderedDict(('module.' + k, v.clone()) for k, v in
                     state_dict.items())
    if classifier == 'fc':
        sd['module.fc.weight'] = torch.randn(num_classes, fc_in)
        sd['module.fc.bias'] = torch.randn(num_classes)
    else:
        sd['module.classifier.1.weight'] = torch.randn(num_classes, fc_in)
        sd['module.classifier.1.bias'] = torch.randn(num_classes)
    return {
        'epoch': 100,
        'arch': 'eca_resnet50',  # some released files store a wrong arch
        'state_dict': sd,
        'best_prec1': torch.tensor(77.42),
        'optimizer': {'state': {}, 'param_groups': [
            {'lr': 0.0001, 'momentum': 0.9, 'params': [0, 1, 2]}]},
    }


# timm ecaresnet*d  <-  mmdet ResNetV1d names (written independently of the
# converter under test)
TIMM_STEM = {'stem.0.': 'conv1.0.', 'stem.1.': 'conv1.1.',
             'stem.3.': 'conv1.3.', 'stem.4.': 'conv1.4.',
             'stem.6.': 'conv1.6.', 'stem.7.': 'bn1.'}


def timm_layout(state_dict, fc_in=2048):
    out = OrderedDict()
    for k, v in state_dict.items():
        for a, b in TIMM_STEM.items():
            if k.startswith(a):
                k = b + k[len(a):]
        out[k.replace('.eca.conv.', '.se.conv.')] = v.clone()
    out['fc.weight'] = torch.randn(1000, fc_in)
    out['fc.bias'] = torch.randn(1000)
    return out


def mmdet_v1_layout(state_dict, config_name, seed=0):
    """How MMDetection v1 (2019-2020) saved a detector, written from an
    mmdet 3 state_dict: two-stage heads at the top level (no ``roi_head.``),
    softmax ``fc_cls`` with 81 rows, background first; class-specific
    ``fc_reg`` (81 x 4 rows) and ``conv_logits`` (81 channels) with a
    background block first; sigmoid heads as they are. ``meta.config`` is
    mmcv's ``Config.text``: the file's path, then its text."""
    g = torch.Generator().manual_seed(seed)

    def background_first(t, rows):  # a trained-looking background block
        return torch.cat([torch.randn((rows, ) + t.shape[1:], generator=g),
                          t])

    sd = OrderedDict()
    for key, value in state_dict.items():
        key = key.replace('roi_head.', '', 1) \
            if key.startswith('roi_head.') else key
        if key.startswith('bbox_head.fc_cls.'):
            value = torch.cat([value[-1:], value[:-1]])  # mmdet 3: bg last
        elif key.startswith('bbox_head.fc_reg.'):
            value = background_first(value, 4)
        elif key.startswith('mask_head.conv_logits.'):
            value = background_first(value, 1)
        sd[key] = value.clone()
    text = (f'configs/eca/{config_name}.py\n'
            "model = dict(type='MaskRCNN', pretrained=None)\n")
    return {
        'meta': {'mmdet_version': '1.0rc1+d3ca926', 'config': text,
                 'epoch': 12, 'iter': 175872, 'time': 'Sat Nov 30 2019'},
        'state_dict': sd,
        'optimizer': {'state': {0: {'momentum_buffer': torch.zeros(3)}},
                      'param_groups': [{'lr': 0.0001, 'momentum': 0.9,
                                        'weight_decay': 0.0001,
                                        'params': [0]}]},
    }


# -- hand-written torch files (for files torch.save would never write) ----

class RawStorage:
    """A storage named in a hand-written pickle: ``numel`` elements of
    ``storage_type`` under ``key``."""

    def __init__(self, key, numel, storage_type='FloatStorage'):
        self.key, self.numel, self.storage_type = key, numel, storage_type


class RawTensor:
    """Pickles as torch.save writes a 1-D tensor over a storage."""

    def __init__(self, storage, size):
        self.storage, self.size = storage, size

    def __reduce__(self):
        from collections import OrderedDict
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, 0, (self.size, ), (1, ), False,
                 OrderedDict()))


def raw_pickle(obj, legacy=False):
    """``obj`` pickled the way torch writes its object pickle: storages as
    persistent ids (5 fields in zip files, 6 in the legacy format)."""
    import io
    import pickle
    import warnings

    class Pickler(pickle.Pickler):
        def persistent_id(self, o):
            if not isinstance(o, RawStorage):
                return None
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                st = getattr(torch, o.storage_type)
            pid = ('storage', st, o.key, 'cpu', o.numel)
            return pid + (None, ) if legacy else pid

    buf = io.BytesIO()
    Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def write_zip_checkpoint(path, obj, records, folder='archive',
                         extra=None):
    """A zip in torch.save's layout: ``folder/data.pkl`` (``obj``),
    ``folder/data/<key>`` for each of ``records`` (key -> bytes) and
    ``extra`` entries (name -> bytes) as given. ``obj`` may be pickle
    bytes written by hand."""
    import zipfile
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr(f'{folder}/data.pkl', obj if isinstance(obj, bytes)
                    else raw_pickle(obj))
        zf.writestr(f'{folder}/byteorder', b'little')
        for key, data in records.items():
            zf.writestr(f'{folder}/data/{key}', data)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
        zf.writestr(f'{folder}/version', b'3\n')


def write_legacy_checkpoint(path, obj, blocks):
    """torch's pre-1.6 format: magic, protocol, sys_info, ``obj``, the
    storage keys, then per block ``(key, recorded_numel, data)`` an int64
    element count and the bytes."""
    import pickle
    import struct
    with open(path, 'wb') as f:
        for value in (0x1950a86a20f9469cfc6c, 1001,
                      dict(protocol_version=1001, little_endian=True,
                           type_sizes=dict(short=2, int=4, long=4))):
            pickle.dump(value, f, protocol=2)
        f.write(raw_pickle(obj, legacy=True))
        pickle.dump([key for key, _, _ in blocks], f, protocol=2)
        for _, numel, data in blocks:
            f.write(struct.pack('<q', numel))
            f.write(data)


def nested_lists_pickle(depth):
    """Pickle bytes of ``[[[...]]]`` ``depth`` deep (Python's pickler
    would recurse): ``depth`` EMPTY_LISTs, then ``depth - 1`` APPENDs."""
    return b'\x80\x02' + b']' * depth + b'a' * (depth - 1) + b'.'
