"""Fuzz the two readers of user files with hypothesis.

* checkpoints: :func:`load_checkpoint_file`, then what our tools do with the
  result (:func:`to_backbone_state_dict`, :func:`convert_mmdet_v1` for v1
  detectors), on files written by the real writers (``torch.save`` zip and
  legacy formats, mmengine's training checkpoint, the authors' ``*.pth.tar``
  layout, an MMDetection v1 detector, ``torch.jit.save``, a pickle that calls
  ``os.system``) and mutated at three layers: the file's bytes, the object
  pickle inside a re-written zip, and the zip's entries;
* COCO annotation files: mmdet's ``CocoDataset`` and our
  :func:`check_coco_annotation_file`, on a generated COCO file mutated as
  JSON values and as text.

The property, per input: the reader loads it or raises our own error class
(:class:`CheckpointError`; for annotations, :class:`AnnotationError`
whenever mmdet cannot load the file), never another exception, a crash, more
than :data:`TIMEOUT_S` seconds, peak memory more than :data:`MEMORY_BOUND`
above the start, or code from the file (a marker file, a marker line on
stdout). ``tests/test_fuzz_readers.py`` runs a short seeded pass;
``make fuzz`` runs ``python tests/fuzzing.py`` (10,000 inputs per reader).
"""
import argparse
import collections
import contextlib
import faulthandler
import io
import json
import os
import os.path as osp
import resource
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zipfile

import torch
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from ckpt_utils import mmdet_v1_layout, official_layout  # noqa: E402

TIMEOUT_S = 10
MEMORY_BOUND = 1 << 30  # peak RSS growth over the whole run, bytes
MARKER = 'ECA_FUZZ_CODE_RAN'

OUTCOMES = ('loaded', 'our error', 'anything else')


# -- seeds, written by the real writers --------------------------------------

class _RunsCode:
    def __init__(self, marker_file):
        self.marker_file = marker_file

    def __reduce__(self):
        return (os.system, (f'touch {self.marker_file}', ))


class TorchScriptMarker(torch.nn.Module):
    """``torch.jit.load`` runs ``__setstate__``, which prints MARKER."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(2))

    @torch.jit.export
    def __getstate__(self):
        return (self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]):
        print('ECA_FUZZ_CODE_RAN')
        self.w = state[0]
        self.training = state[1]

    def forward(self, x):
        return x * self.w


def _small_eca_state_dict():
    g = torch.Generator().manual_seed(0)
    sd = collections.OrderedDict()
    sd['conv1.weight'] = torch.randn(4, 3, 3, 3, generator=g)
    sd['bn1.running_mean'] = torch.randn(4, generator=g)
    sd['bn1.num_batches_tracked'] = torch.tensor(7)
    sd['layer1.0.conv1.weight'] = torch.randn(4, 4, 1, 1, generator=g)
    sd['layer1.0.eca.conv.weight'] = torch.randn(1, 1, 3, generator=g)
    sd['layer2.0.eca.conv.weight'] = torch.randn(1, 1, 5, generator=g)
    return sd


def write_checkpoint_seeds(root, marker_file):
    """Seed files in the real formats; returns {name: bytes}."""
    import numpy as np
    from mmengine.logging import MessageHub
    sd = _small_eca_state_dict()
    hub = MessageHub.get_instance('fuzz_seed')
    hub.update_scalar('train/loss', 0.5)
    hub.update_scalar('train/lr', np.float64(0.01))
    objects = {
        'state_dict.pth': (sd, True),
        'mmengine_training.pth': ({
            'meta': {'epoch': 1, 'seed': np.int64(3),
                     'hist': np.arange(3.)},
            'message_hub': hub.state_dict(), 'state_dict': sd,
            'optimizer': {'state': {0: {'momentum_buffer': torch.ones(2)}},
                          'param_groups': [{'lr': 0.02, 'params': [0]}]}},
            True),
        'official.pth.tar': (official_layout(sd, 'eca_resnet50',
                                             num_classes=3, fc_in=4), False),
        'mmdet_v1.pth': (mmdet_v1_layout(
            {('backbone.' + k): v for k, v in sd.items()},
            'faster_rcnn_ecanet50'), False),
        'runs_code.pth': ({'state_dict': sd,
                           'meta': _RunsCode(marker_file)}, True),
    }
    seeds = {}
    for name, (obj, zip_format) in objects.items():
        path = osp.join(root, name)
        torch.save(obj, path, _use_new_zipfile_serialization=zip_format)
        seeds[name] = open(path, 'rb').read()
    path = osp.join(root, 'torchscript.pth')
    torch.jit.save(torch.jit.script(TorchScriptMarker()), path)
    seeds['torchscript.pth'] = open(path, 'rb').read()
    return seeds


def write_annotation_seed(root):
    from eca_mmdet.datasets import generate_dataset
    generate_dataset(root, 3, 1, progress=False)
    with open(osp.join(root, 'annotations', 'train.json')) as f:
        return json.load(f)


# -- mutations ---------------------------------------------------------------

INTERESTING = [b'\x00', b'\xff', b'\x7f', b'\x80', b'\xff' * 8,
               struct.pack('<q', 2 ** 40), struct.pack('<q', -1),
               struct.pack('<I', 2 ** 30), b'PK\x03\x04', b'{']
# pickle opcodes that attack unpicklers: a huge memo index, a string that
# claims 10^12 bytes, a global that runs code, deep nesting, stack abuse
PICKLE_SNIPPETS = [
    b'K\x01r\x00\x00\x00\x40', b'\x8d' + struct.pack('<Q', 10 ** 12),
    b'cos\nsystem\n', b'cbuiltins\neval\n', b']' * 200 + b'a' * 199,
    b'(' * 50, b'0' * 20, b'Q', b'R', b'b', b'\x81', b'\x93', b'.',
    b'ctorch._utils\n_rebuild_tensor_v2\n',
    b'X\x07\x00\x00\x00storage', b'\x8a\x08' + b'\xff' * 8,
]


@st.composite
def byte_edits(draw, data):
    """1-4 edits of ``data``: flip, overwrite, insert, delete, truncate,
    or splice one of :data:`PICKLE_SNIPPETS`."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        op = draw(st.sampled_from(
            ['flip', 'interesting', 'insert', 'delete', 'truncate',
             'snippet']))
        if op == 'flip' and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == 'interesting':
            value = draw(st.sampled_from(INTERESTING))
            data[pos:pos + len(value)] = value
        elif op == 'insert':
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == 'delete':
            del data[pos:pos + draw(st.integers(1, 64))]
        elif op == 'truncate':
            del data[pos:]
        elif op == 'snippet':
            data[pos:pos] = draw(st.sampled_from(PICKLE_SNIPPETS))
    return bytes(data)


def _rezip(entries, compress=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as zf:
        for name, data in entries:
            zf.writestr(name, data, compress_type=compress
                        if compress and name.endswith('data.pkl') else None)
    return buf.getvalue()


@st.composite
def zip_edits(draw, data):
    """A torch.save zip re-written with its pickle, a storage record or
    its entry names changed (valid CRCs, so the change reaches the
    readers)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        entries = [(i.filename, zf.read(i)) for i in zf.infolist()]
    folder = entries[0][0].split('/')[0]
    op = draw(st.sampled_from(['pickle', 'record', 'name', 'add',
                               'compress']))
    compress = None
    if op == 'pickle':
        entries = [(n, draw(byte_edits(d)) if n.endswith('/data.pkl')
                    else d) for n, d in entries]
    elif op == 'record':
        i = draw(st.integers(0, len(entries) - 1))
        name, d = entries[i]
        entries[i] = (name, draw(byte_edits(d)) if d else b'\x00')
    elif op == 'name':
        i = draw(st.integers(0, len(entries) - 1))
        new = draw(st.sampled_from(
            ['../evil', '/abs', f'{folder}/../x', 'other/data.pkl',
             f'{folder}/constants.pkl', f'{folder}/code/m.py',
             f'{folder}/data/9', f'{folder}/extra', entries[0][0]]))
        entries[i] = (new, entries[i][1])
    elif op == 'add':
        entries.append((draw(st.sampled_from(
            [f'{folder}/constants.pkl', f'{folder}/code/__torch__/m.py',
             f'{folder}/data/999', 'elsewhere/file', f'{folder}/x/../y'])),
            draw(st.binary(max_size=32))))
    else:
        compress = zipfile.ZIP_DEFLATED
    return _rezip(entries, compress)


@st.composite
def mutated_checkpoint(draw, seeds):
    name = draw(st.sampled_from(sorted(seeds)))
    data = seeds[name]
    if data.startswith(b'PK') and draw(st.booleans()):
        return name, draw(zip_edits(data))
    return name, draw(byte_edits(data))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70)
    | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=8)


DEEP = '"ECA_FUZZ_DEEP"'


@st.composite
def json_edits(draw, obj):
    """Replace or delete one value anywhere in ``obj``, or mark it with
    :data:`DEEP` (nested 10^1..10^5 deep once serialised)."""
    obj = json.loads(json.dumps(obj))
    parent, key = None, None
    node = obj
    for _ in range(draw(st.integers(0, 4))):
        keys = list(node) if isinstance(node, dict) else \
            list(range(len(node))) if isinstance(node, list) else []
        if not keys:
            break
        parent, key = node, draw(st.sampled_from(keys))
        node = node[key]
    op = draw(st.sampled_from(['replace', 'delete', 'deep']))
    if parent is None:
        return draw(JSON_VALUES) if op == 'replace' else obj
    if op == 'replace':
        parent[key] = draw(JSON_VALUES)
    elif op == 'delete':
        del parent[key]
    else:
        parent[key] = json.loads(DEEP)
    return obj


@st.composite
def mutated_annotation(draw, seed_obj):
    if draw(st.integers(0, 3)) == 0:
        return draw(byte_edits(json.dumps(seed_obj).encode()))
    obj = seed_obj
    for _ in range(draw(st.integers(1, 3))):
        obj = draw(json_edits(obj))
    depth = draw(st.sampled_from([10, 1000, 100000]))
    return json.dumps(obj).replace(DEEP, '[' * depth + ']' * depth).encode()


# -- the readers and the property ---------------------------------------------

def read_checkpoint(path):
    """What our loaders and tools do with a user's checkpoint file."""
    from eca_mmdet.checkpoint import load_checkpoint_file
    from eca_mmdet.checkpoint.convert import to_backbone_state_dict
    from eca_mmdet.checkpoint.mmdet_v1 import convert_mmdet_v1, is_mmdet_v1
    obj = load_checkpoint_file(path)
    if is_mmdet_v1(obj):
        convert_mmdet_v1(obj)
    else:
        to_backbone_state_dict(obj)


def read_annotations(path, classes):
    """mmdet loads the file, or our check names what is wrong with it."""
    from mmdet.datasets import CocoDataset

    from eca_mmdet.datasets import AnnotationError, check_coco_annotation_file
    try:
        check_coco_annotation_file(path, classes)
        checked = None
    except AnnotationError as e:
        checked = e
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            CocoDataset(ann_file=path, data_prefix=dict(img=''),
                        metainfo=dict(classes=classes), pipeline=[],
                        filter_cfg=dict(filter_empty_gt=True, min_size=32),
                        serialize_data=False).full_init()
    except Exception as e:
        if checked is None:
            raise AssertionError(
                f'mmdet fails on this file ({type(e).__name__}: {e}) but '
                f'check_coco_annotation_file found nothing') from e
        raise checked
    return None


class Fuzzer:
    """Runs one reader on mutated files and counts outcomes."""

    def __init__(self, reader, ours, workdir, marker_file):
        self.reader, self.ours = reader, ours
        self.path = osp.join(workdir, 'input')
        self.marker_file = marker_file
        self.stdout = osp.join(workdir, 'stdout')
        self.counts = collections.Counter()
        self.failures = []
        self.slowest = 0.0
        self.start_rss = _peak_rss()

    def __call__(self, data, *args):
        with open(self.path, 'wb') as f:
            f.write(data)
        faulthandler.dump_traceback_later(TIMEOUT_S, exit=True)
        t = time.perf_counter()
        try:
            with _fd1_to(self.stdout):
                self.reader(self.path, *args)
            outcome = 'loaded'
        except self.ours as e:
            assert str(e).strip(), 'an error without a message'
            outcome = 'our error'
        except Exception as e:  # the property: this must never happen
            outcome = 'anything else'
            self.failures.append(f'{type(e).__name__}: {e}'[:300] + '\n'
                                 + traceback.format_exc()[-2000:])
        finally:
            faulthandler.cancel_dump_traceback_later()
        self.slowest = max(self.slowest, time.perf_counter() - t)
        self.counts[outcome] += 1
        ran = osp.exists(self.marker_file) or MARKER in open(
            self.stdout, errors='replace').read()
        grown = _peak_rss() - self.start_rss
        assert not ran, 'code from the file ran'
        assert grown < MEMORY_BOUND, f'peak memory grew by {grown} bytes'
        assert outcome != 'anything else', self.failures[-1]


@contextlib.contextmanager
def _fd1_to(path):
    """Send file descriptor 1 (where TorchScript's print writes) to a
    file for the duration."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(path, 'wb') as f:
        os.dup2(f.fileno(), 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def fuzz_checkpoints(workdir, examples, seed_value):
    marker = osp.join(workdir, 'CODE_RAN')
    seeds = write_checkpoint_seeds(workdir, marker)
    from eca_mmdet.checkpoint import CheckpointError
    fuzzer = Fuzzer(read_checkpoint, CheckpointError, workdir, marker)

    @seed(seed_value)
    @settings(max_examples=examples, database=None, deadline=None,
              derandomize=False, suppress_health_check=list(HealthCheck))
    @given(mutated_checkpoint(seeds))
    def run(case):
        fuzzer(case[1])

    run()
    return fuzzer


def fuzz_annotations(workdir, examples, seed_value):
    from eca_mmdet.datasets import AnnotationError
    seed_obj = write_annotation_seed(osp.join(workdir, 'coco'))
    classes = tuple(c['name'] for c in seed_obj['categories'])
    fuzzer = Fuzzer(read_annotations, AnnotationError, workdir,
                    osp.join(workdir, 'CODE_RAN'))

    @seed(seed_value)
    @settings(max_examples=examples, database=None, deadline=None,
              derandomize=False, suppress_health_check=list(HealthCheck))
    @given(mutated_annotation(seed_obj))
    def run(data):
        fuzzer(data, classes)

    run()
    return fuzzer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--examples', type=int, default=10000,
                        help='mutated inputs per reader')
    parser.add_argument('--seed', type=int, default=20261201)
    parser.add_argument('--reader', choices=['checkpoint', 'annotation'],
                        nargs='*', default=['checkpoint', 'annotation'])
    args = parser.parse_args(argv)
    faulthandler.enable()
    warnings.simplefilter('ignore')  # torch's and zipfile's, per input
    print(f'torch {torch.__version__}, python {sys.version.split()[0]}, '
          f'{args.examples} inputs per reader, seed {args.seed}, timeout '
          f'{TIMEOUT_S} s per input, memory bound {MEMORY_BOUND >> 20} MiB')
    for reader in args.reader:
        fuzz = fuzz_checkpoints if reader == 'checkpoint' \
            else fuzz_annotations
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as workdir:
            fuzzer = fuzz(workdir, args.examples, args.seed)
        counts = ', '.join(f'{o} {fuzzer.counts[o]}' for o in OUTCOMES)
        print(f'{reader}: {sum(fuzzer.counts.values())} inputs: {counts}; '
              f'{time.perf_counter() - t:.0f} s, slowest input '
              f'{fuzzer.slowest:.2f} s, peak memory +'
              f'{(_peak_rss() - fuzzer.start_rss) >> 20} MiB')
    return 0


if __name__ == '__main__':
    sys.exit(main())
