"""Files that could make a checkpoint reader run code or take the process
down are refused from their structure, through every entry point, before
torch.load sees them (tests/fuzzing.py fuzzes the same readers)."""
import os.path as osp
import resource
import subprocess
import sys
import zipfile

import pytest
import torch

import eca_mmdet  # noqa: F401
from eca_mmdet.checkpoint import CheckpointError, load_checkpoint_file

from ckpt_utils import (
    RawStorage,
    RawTensor,
    nested_lists_pickle,
    write_legacy_checkpoint,
    write_zip_checkpoint,
)
from fuzzing import MARKER, TorchScriptMarker
from helpers import ROOT

TORCHSCRIPT = 'is a TorchScript archive'


@pytest.fixture(scope='module')
def torchscript(tmp_path_factory):
    """A scripted model whose ``__setstate__`` prints MARKER: what a user
    gets from ``torch.jit.save`` and may name ``model.pth``."""
    path = tmp_path_factory.mktemp('ts') / 'model.pth'
    torch.jit.save(torch.jit.script(TorchScriptMarker()), str(path))
    return str(path)


def test_torchscript_loader_and_init_cfg(torchscript, capfd):
    from mmdet.registry import MODELS
    with pytest.raises(CheckpointError, match=TORCHSCRIPT) as e:
        load_checkpoint_file(torchscript)
    assert 'torch.jit.load' in str(e.value) and 'state_dict()' in str(e.value)
    model = MODELS.build(dict(type='ECAResNet', depth=18, init_cfg=dict(
        type='Pretrained', checkpoint=torchscript)))
    with pytest.raises(CheckpointError, match=TORCHSCRIPT):
        model.init_weights()
    assert MARKER not in capfd.readouterr().out


def test_torchscript_mmengine_loader(torchscript, capfd):
    """--resume, load_from and tools/test.py read through mmengine's
    CheckpointLoader, which eca_mmdet.engine points at the safe loader."""
    from mmengine.runner.checkpoint import load_checkpoint

    import eca_mmdet.engine  # noqa: F401
    model = torch.nn.Linear(2, 2)
    with pytest.raises(CheckpointError, match=TORCHSCRIPT):
        load_checkpoint(model, torchscript, map_location='cpu')
    assert MARKER not in capfd.readouterr().out


def _shapes(tmp_path):
    from eca_mmdet.datasets import generate_dataset
    root = tmp_path / 'shapes'
    generate_dataset(str(root), 2, 2, progress=False)
    return root


DEMO_CFG = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_eca_r18_shapes.py')


@pytest.mark.parametrize('tool', ['test', 'convert_checkpoint', 'infer',
                                  'deployment/export_onnx',
                                  'analysis/visualize_attention'])
def test_torchscript_refused_by_every_tool(torchscript, tmp_path, tool):
    root = _shapes(tmp_path)
    args = {
        'test': [DEMO_CFG, torchscript, '--data-root', str(root),
                 '--work-dir', str(tmp_path / 'w')],
        'convert_checkpoint': [torchscript, str(tmp_path / 'out.pth')],
        'infer': [str(root / 'val'), DEMO_CFG, torchscript, '--out-dir',
                  str(tmp_path / 'o'), '--device', 'cpu'],
        'deployment/export_onnx': [DEMO_CFG, torchscript, '--out',
                                   str(tmp_path / 'm.onnx')],
        'analysis/visualize_attention': [DEMO_CFG, torchscript,
                                         '--data-root', str(root), '--out',
                                         str(tmp_path / 'a.png')],
    }[tool]
    r = subprocess.run([sys.executable, osp.join(ROOT, 'tools',
                                                 f'{tool}.py')] + args,
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode != 0
    assert TORCHSCRIPT in r.stderr, r.stderr[-3000:]
    assert 'Traceback' not in r.stderr, r.stderr[-3000:]
    assert MARKER not in r.stdout + r.stderr


def _peak_rss_growth(fn):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) << 10


@pytest.mark.parametrize('fmt', ['zip', 'legacy'])
def test_storage_claiming_a_terabyte(tmp_path, fmt):
    """A 24-byte storage whose pickle claims 10^12 bytes: a clear error
    before anything of that size is allocated."""
    path = str(tmp_path / 'big.pth')
    claim = RawStorage('0', 250_000_000_000)  # float32: 10^12 bytes
    obj = {'w': RawTensor(claim, 6)}
    if fmt == 'zip':
        write_zip_checkpoint(path, obj, {'0': bytes(24)})
    else:
        write_legacy_checkpoint(path, obj, [('0', 6, bytes(24))])

    def load():
        with pytest.raises(CheckpointError,
                           match='claims storage .0. of 1000000000000 bytes|'
                                 'claims 1000000000000 bytes'):
            load_checkpoint_file(path)

    assert _peak_rss_growth(load) < 100 << 20


def test_legacy_and_zip_files_of_the_real_writer_load(tmp_path):
    """torch.save's own legacy and zip files, with views and shared
    storages, pass the structure check unchanged."""
    base = torch.arange(12.)
    obj = {'view': base[2:8], 'same': base, 'int': torch.ones(3).long(),
           'nested': [{'half': torch.zeros(2).half()}]}
    for zip_format in (True, False):
        path = str(tmp_path / f'{zip_format}.pth')
        torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
        out = load_checkpoint_file(path)
        assert torch.equal(out['view'], base[2:8])
        assert out['view'].untyped_storage().data_ptr() == \
            out['same'].untyped_storage().data_ptr()
        assert out['nested'][0]['half'].dtype == torch.float16


def test_deep_nesting_huge_claims_and_memo(tmp_path):
    cases = {
        # containers 10^6 deep (the unpickler is iterative; what walks the
        # result later is not)
        'deep.pth': (nested_lists_pickle(1_000_000), 'nested more than'),
        # a string that claims 10^12 bytes in a 30-byte file
        'long_str.pth': (b'\x80\x04\x8d' + (10 ** 12).to_bytes(8, 'little')
                         + b'abc.', 'truncated, corrupt'),
        # memo index 2^30: the C unpickler would allocate 16 GiB for it
        'memo.pth': (b'\x80\x02K\x01r\x00\x00\x00\x40.', 1),
        # a list of 300,000 references in 600 kB: as large as the file
        # allows, no more
        'long_list.pth': (b'\x80\x02K\x01q\x00]q\x01(' + b'h\x00' * 300_000
                          + b'e.', [1] * 300_000),
    }
    for name, (pickled, match) in cases.items():
        path = str(tmp_path / name)
        write_zip_checkpoint(path, pickled, {})

        def load():
            if not isinstance(match, str):
                assert load_checkpoint_file(path) == match
            else:
                with pytest.raises(CheckpointError, match=match):
                    load_checkpoint_file(path)

        assert _peak_rss_growth(load) < 200 << 20, name


@pytest.mark.parametrize('entries, match', [
    ({'archive/../../etc/evil': b'x'}, 'outside its archive folder'),
    ({'other/data.pkl': b'x'}, 'outside its archive folder'),
    ({'archive/constants.pkl': b''}, TORCHSCRIPT),
    ({'archive/code/__torch__/m.py': b''}, TORCHSCRIPT),
    ({'archive/notes.txt': b'hi'}, 'not a torch.save checkpoint'),
])
def test_zips_that_are_not_torch_save_archives(tmp_path, entries, match):
    path = str(tmp_path / 'z.pth')
    write_zip_checkpoint(path, {'a': 1}, {}, extra=entries)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint_file(path)


def test_other_files(tmp_path):
    import numpy as np
    np.savez(tmp_path / 'a.npz', w=np.zeros(3))
    with pytest.raises(CheckpointError, match='zip archive but not a '
                                              'torch.save checkpoint'):
        load_checkpoint_file(str(tmp_path / 'a.npz'))
    path = str(tmp_path / 'c.pth')
    torch.save({'w': torch.zeros(3)}, path)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(
            tmp_path / 'd.pth', 'w', zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    with pytest.raises(CheckpointError, match='entries are compressed'):
        load_checkpoint_file(str(tmp_path / 'd.pth'))
    import tarfile
    with tarfile.open(tmp_path / 't.pth', 'w') as tar:
        tar.add(path, arcname='storages')
    with pytest.raises(CheckpointError, match='is a tar archive'):
        load_checkpoint_file(str(tmp_path / 't.pth'))
    (tmp_path / 'page.pth').write_text('<html>Quota exceeded</html>')
    with pytest.raises(CheckpointError, match='HTML page'):
        load_checkpoint_file(str(tmp_path / 'page.pth'))


def test_pickled_module_and_persistent_ids(tmp_path):
    """torch.save(model) and persistent ids that are not storages."""
    path = str(tmp_path / 'model.pth')
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(CheckpointError, match='refusing to load'):
        load_checkpoint_file(path)
    path = str(tmp_path / 'legacy_model.pth')
    torch.save(torch.nn.Linear(2, 2), path,
               _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match='refusing to load'):
        load_checkpoint_file(path)
    # a persistent id naming something other than a storage
    pickled = b'\x80\x02X\x04\x00\x00\x00evilQ.'
    write_zip_checkpoint(str(tmp_path / 'pid.pth'), pickled, {})
    with pytest.raises(CheckpointError, match='persistent id'):
        load_checkpoint_file(str(tmp_path / 'pid.pth'))
