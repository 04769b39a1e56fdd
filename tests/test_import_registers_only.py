"""``import eca_mmdet`` (what ``custom_imports`` does) registers names and
changes nothing else in the process; ``eca_mmdet.engine`` is the opt-in.
Each check runs in a fresh interpreter."""
import json
import subprocess
import sys

PROBE = r'''
import json, sys
import mmengine.fileio as fileio
from mmengine.fileio import io as mmengine_io
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.runner.checkpoint import CheckpointLoader
from mmdet.registry import HOOKS, MODELS
import mmdet.engine, mmdet.models  # what mmdet itself registers on import

def state():
    return dict(
        backend=type(fileio.get_file_backend('/tmp/x.pth')).__qualname__,
        backend_module=type(fileio.get_file_backend('/tmp/x.pth')).__module__,
        prefixes={k: f'{v.__module__}.{v.__qualname__}' for k, v in
                  mmengine_io.prefix_to_backends.items()},
        schemes={k: f'{v.__module__}.{v.__qualname__}' for k, v in
                 CheckpointLoader._schemes.items()},
        root_models=sorted(ROOT_MODELS.module_dict),
        hooks=sorted(HOOKS.module_dict),
        models=sorted(MODELS.module_dict))

before = state()
for name in sys.argv[1:]:
    __import__(name)
print(json.dumps(dict(before=before, after=state())))
'''


def probe(*modules):
    out = subprocess.run([sys.executable, '-c', PROBE, *modules],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_only_registers_models_and_eca_scheme():
    r = probe('eca_mmdet')
    before, after = r['before'], r['after']
    # mmengine's own local backend and checkpoint loaders, untouched
    assert after['backend'] == before['backend'] == 'LocalBackend'
    assert after['backend_module'].startswith('mmengine.')
    assert after['prefixes'] == before['prefixes']
    added = {k: v for k, v in after['schemes'].items()
             if before['schemes'].get(k) != v}
    # only new names: none of mmengine's own schemes is replaced
    assert sorted(added) == ['eca://', 'hf-hub:', 'timm://']
    assert not set(added) & set(before['schemes'])
    assert after['root_models'] == before['root_models']
    assert after['hooks'] == before['hooks']
    new_models = set(after['models']) - set(before['models'])
    assert {'ECA', 'SE', 'ECAResNet', 'ECAResNetV1d',
            'ECAMobileNetV2'} <= new_models
    assert new_models <= {'ECA', 'ECANS', 'SE', 'SEGC', 'SEVar1', 'SEVar2',
                          'SEVar3', 'ECAResNet', 'ECAResNetV1d',
                          'ECAMobileNetV2', 'ECATimmBackbone'}


def test_engine_is_the_opt_in():
    r = probe('eca_mmdet', 'eca_mmdet.engine')
    before, after = r['before'], r['after']
    assert after['backend'] == 'AtomicLocalBackend'
    for scheme in ('', 'http://', 'https://'):  # read by the safe loader
        assert after['schemes'][scheme].startswith('eca_mmdet.')
        assert before['schemes'][scheme].startswith('mmengine.')
    assert {'SafeCheckpointHook', 'FiniteLossHook', 'EpochSeedHook',
            'ImageFilesCheckHook', 'BatchSizeLogHook'} <= \
        set(after['hooks']) - set(before['hooks'])
