"""The documentation cannot rot: README.md, docs/*.md and configs/**/README.md.

* every relative link and ``#anchor`` resolves (GitHub's heading slugs);
* every command in a shell code block names files, configs, make targets and
  options that exist: ``python tools/X.py ... --opt`` needs ``--opt`` in that
  tool's ``--help`` (``make T ARGS='--opt'`` and ``bash tools/dist_*.sh``
  likewise, through the tool they run);
* every repository path in a code block exists; every ``type='Name'`` in a
  Python block is registered; every ``eca://`` / ``timm://`` name is known;
* every config linked from a table loads, and a representative few build;
* a figure stated both in a config folder's README table and in its
  ``metafile.yml`` is the same in both.

The ``--help`` texts come from one subprocess of the test's interpreter that
runs each tool as ``python TOOL [SUBCOMMAND] --help`` would (``runpy`` as
``__main__``), so torch and mmdet are imported once, not once per tool.
"""
import functools
import glob
import json
import os.path as osp
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from helpers import ROOT

DOCS = sorted(
    [osp.join(ROOT, 'README.md')]
    + glob.glob(osp.join(ROOT, 'docs', '*.md'))
    + glob.glob(osp.join(ROOT, 'configs', '**', 'README.md'), recursive=True))
IDS = [osp.relpath(p, ROOT) for p in DOCS]

SHELL_LANGS = {'bash', 'sh', 'shell', 'console', ''}
REPO_PATH = re.compile(r'(?<![\w/.-])((?:configs|tools|docs|eca_mmdet|tests)'
                       r'/[\w.\-/{}*$]*)')
PYTHONS = {'python', 'python3', '.venv/bin/python', '.venv-compat/bin/python'}
# scripts that hand their extra arguments to a Python tool
WRAPPERS = {'tools/dist_train.sh': 'tools/train.py',
            'tools/dist_test.sh': 'tools/test.py',
            'tools/slurm_train.sh': 'tools/train.py'}


# ---------------------------------------------------------------- parsing

@functools.lru_cache(maxsize=None)
def parse(path):
    """(prose lines with line numbers, code blocks as (lang, first line
    number, lines)) of a markdown file."""
    prose, blocks, block = [], [], None
    with open(path, encoding='utf-8') as f:
        for no, line in enumerate(f, 1):
            fence = re.match(r'^\s*(```+|~~~+)\s*([\w+-]*)', line)
            if block is None and fence:
                block = (fence.group(2).lower(), no + 1, [], fence.group(1))
            elif block is not None and line.strip().startswith(block[3]):
                blocks.append(block[:3])
                block = None
            elif block is not None:
                block[2].append(line.rstrip('\n'))
            else:
                prose.append((no, line.rstrip('\n')))
    assert block is None, f'{path}: unclosed code block from line {block[1]}'
    return prose, blocks


def strip_code_spans(line):
    return re.sub(r'(`+)(.+?)\1', '', line)


def slug(heading):
    """GitHub's anchor for a heading."""
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading.strip())
    text = re.sub(r'<[^>]+>', '', text).lower()
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


@functools.lru_cache(maxsize=None)
def anchors(path):
    seen, out = {}, set()
    for _, line in parse(path)[0]:
        m = re.match(r'^(#{1,6})\s+(.*?)\s*#*\s*$', line)
        if m:
            base = slug(m.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f'{base}-{n}')
    return out


def links(path):
    """(line number, target) of every inline link and image outside code."""
    for no, line in parse(path)[0]:
        text = strip_code_spans(line)
        for m in re.finditer(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?'
                             r'(?:\s+"[^"]*")?\s*\)', text):
            yield no, m.group(1)
        for m in re.finditer(r'(?:src|href)="([^"]+)"', text):
            yield no, m.group(1)


def shell_commands(path):
    """(line number, words) of every command in the shell code blocks:
    continuation lines joined, comments dropped, split at ; && || | and
    `do`/`then`, leading VAR=value assignments dropped."""
    for lang, first, lines in parse(path)[1]:
        if lang not in SHELL_LANGS:
            continue
        joined, start = '', None
        for i, line in enumerate(lines):
            if start is None:
                start = first + i
            joined += line.rstrip('\\') + ' '
            if line.rstrip().endswith('\\'):
                continue
            text = re.sub(r'(^|\s)#.*$', '', joined)
            for part in re.split(r';|&&|\|\||\|', text):
                try:
                    words = shlex.split(part)
                except ValueError:
                    words = part.split()
                while words and (words[0] in ('do', 'then', 'else', 'time')
                                 or re.match(r'^\w+=', words[0])):
                    words = words[1:]
                if words:
                    yield start, words
            joined, start = '', None


def is_placeholder(path):
    return any(c in path for c in '<>{}$*')


# ------------------------------------------------------- tools' --help

HELP_DRIVER = r'''
import contextlib, io, json, os, runpy, sys
out = {}
path0 = list(sys.path)
for key, argv in json.loads(sys.argv[1]):
    buf = io.StringIO()
    sys.argv = argv + ['--help']
    sys.path[:] = [os.path.dirname(os.path.abspath(argv[0]))] + path0
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            runpy.run_path(argv[0], run_name='__main__')
    except SystemExit:
        pass
    except BaseException as e:  # noqa: B036
        buf.write('\nHELP FAILED: %r' % (e,))
    out[key] = buf.getvalue()
print('\n@@HELP@@' + json.dumps(out))
'''


def used_tools():
    """Every (tool, subcommand) whose --help the docs need."""
    tools = set()
    for path in DOCS:
        for _, words in shell_commands(path):
            for tool, sub, _ in invocations(words):
                if osp.isfile(osp.join(ROOT, tool)):
                    tools.add((tool, sub))
    return sorted(tools, key=lambda t: (t[0], t[1] or ''))


@functools.lru_cache(maxsize=None)
def makefile_targets():
    """target -> its recipe lines."""
    targets, current = {}, None
    with open(osp.join(ROOT, 'Makefile')) as f:
        for line in f:
            m = re.match(r'^([\w.\-/$() ]+?)\s*:(?!=)', line)
            if m and not line.startswith('\t'):
                current = []
                for t in m.group(1).split():
                    targets[t] = current
            elif line.startswith('\t') and current is not None:
                current.append(line.strip())
    return targets


def make_tool(target):
    """(tool, subcommand) that `make TARGET ARGS=...` runs, or None."""
    for line in makefile_targets().get(target, []):
        m = re.search(r'\$\(PY\)\s+(\S+\.py)(?:\s+(\w[\w-]*))?', line)
        if m:
            sub = m.group(2)
            return m.group(1), (sub if sub and not sub.startswith('-')
                                and osp.sep not in sub else None)
    return None


@functools.lru_cache(maxsize=None)
def subcommands(tool):
    """The subcommand names of a tool that has them (argparse sub-parsers,
    read from its source: `add_parser('NAME'`)."""
    with open(osp.join(ROOT, tool), encoding='utf-8') as f:
        return tuple(re.findall(r"add_parser\(\s*'([\w-]+)'", f.read()))


# copies of a tool that a command makes outside the repository
ALIASES = {'gpu-bundle/offline_install.py': 'tools/offline_install.py'}


def invocations(words):
    """(tool, subcommand, words whose --options the tool must know) of one
    shell command; shell wrappers and make targets map to their tool."""
    if words[0] in PYTHONS and len(words) > 1 and words[1].endswith('.py'):
        tool, rest = ALIASES.get(words[1], words[1]), words[2:]
        subs = subcommands(tool) if osp.isfile(osp.join(ROOT, tool)) else ()
        sub = rest[0] if rest and rest[0] in subs else None
        yield tool, sub, rest
    elif words[0] == 'bash' and len(words) > 1 and words[1] in WRAPPERS:
        yield WRAPPERS[words[1]], None, words[2:]
    elif words[0] == 'make':
        args = [w[len('ARGS='):] for w in words[1:] if w.startswith('ARGS=')]
        for target in (w for w in words[1:] if '=' not in w
                       and not w.startswith('-')):
            found = make_tool(target)
            if found and args:
                yield found[0], found[1], shlex.split(' '.join(args))


@pytest.fixture(scope='session')
def help_process():
    """The subprocess that prints every used tool's --help; started by the
    first test of this file so that it runs while the others do."""
    jobs = [[f'{tool}|{sub or ""}', [tool] + ([sub] if sub else [])]
            for tool, sub in used_tools()]
    proc = subprocess.Popen(
        [sys.executable, '-c', HELP_DRIVER, json.dumps(jobs)], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope='session')
def tool_help(help_process):
    """(tool, subcommand) -> its --help text."""
    stdout, stderr = help_process.communicate(timeout=300)
    assert '@@HELP@@' in stdout, stdout[-2000:] + stderr[-2000:]
    texts = json.loads(stdout.split('@@HELP@@')[-1])
    return {tuple(k.split('|')): v for k, v in texts.items()}


# ----------------------------------------------------------------- tests

@pytest.mark.parametrize('path', DOCS, ids=IDS)
def test_links_and_anchors_resolve(path, help_process):
    bad = []
    here = osp.dirname(path)
    for no, target in links(path):
        if re.match(r'^[a-z][\w+.-]*:', target):   # http:, mailto:, ...
            continue
        file_part, _, anchor = target.partition('#')
        dest = osp.normpath(osp.join(here, file_part)) if file_part else path
        if not osp.exists(dest):
            bad.append(f'line {no}: {target}: {osp.relpath(dest, ROOT)} '
                       f'does not exist')
        elif anchor:
            if not dest.endswith('.md'):
                bad.append(f'line {no}: {target}: anchor into a non-markdown '
                           f'file')
            elif anchor not in anchors(dest):
                bad.append(f'line {no}: {target}: no heading with anchor '
                           f'#{anchor} in {osp.relpath(dest, ROOT)}')
    assert not bad, f'{osp.relpath(path, ROOT)}:\n' + '\n'.join(bad)


@pytest.mark.parametrize('path', DOCS, ids=IDS)
def test_paths_in_code_blocks_exist(path):
    bad = []
    for lang, first, lines in parse(path)[1]:
        if lang not in SHELL_LANGS:
            continue
        for i, line in enumerate(lines):
            for m in REPO_PATH.finditer(line):
                p = m.group(1).rstrip('.,:;)')
                if is_placeholder(p):
                    continue
                if not osp.exists(osp.join(ROOT, p)):
                    bad.append(f'line {first + i}: {p} does not exist')
    assert not bad, f'{osp.relpath(path, ROOT)}:\n' + '\n'.join(bad)


def _registered(name):
    import mmengine.optim  # noqa: F401  (registers AmpOptimWrapper)
    from mmdet.registry import HOOKS, METRICS, MODELS, OPTIM_WRAPPERS
    from mmengine.registry import WEIGHT_INITIALIZERS

    import eca_mmdet  # noqa: F401
    import eca_mmdet.engine  # noqa: F401
    return any(reg.get(name) is not None
               for reg in (MODELS, METRICS, HOOKS, OPTIM_WRAPPERS,
                           WEIGHT_INITIALIZERS))


@pytest.mark.parametrize('path', DOCS, ids=IDS)
def test_python_snippets_name_what_exists(path):
    import mmdet

    from eca_mmdet.checkpoint.sources import TIMM_WEIGHTS
    from eca_mmdet.checkpoint.zoo import RELEASED_CHECKPOINTS, cache_path
    bad = []
    mmdet_configs = osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs')
    for lang, first, lines in parse(path)[1]:
        if lang != 'python':
            continue
        code = '\n'.join(lines)
        for name in re.findall(r"(?<!\w)type='([\w.]+)'", code):
            if not _registered(name.split('.')[-1]):
                bad.append(f'block at line {first}: type={name!r} is not '
                           f'registered')
        for base in re.findall(r"'mmdet::([^']+)'", code):
            if not osp.isfile(osp.join(mmdet_configs, base)):
                bad.append(f'block at line {first}: mmdet::{base} is not '
                           f'one of mmdet\'s configs')
        for arch in re.findall(r"arch='([\w.]+)'", code):
            if arch not in RELEASED_CHECKPOINTS:
                bad.append(f'block at line {first}: no preset {arch!r}')
    # checkpoint names anywhere on the page, prose included
    with open(path, encoding='utf-8') as f:
        text = f.read()
    # (an upper-case name, eca://NAME, is a placeholder)
    for uri in set(re.findall(r'eca://[a-z][\w.\-]*(?![\w.\-]*/)', text)):
        uri = uri.rstrip('.')
        if cache_path(uri)[0] is None:
            bad.append(f'{uri} is not a released file')
    for name in set(re.findall(r'timm://([a-z]\w*)', text)):
        if name not in TIMM_WEIGHTS:
            bad.append(f'timm://{name}: not one of timm\'s ECA weights here')
    assert not bad, f'{osp.relpath(path, ROOT)}:\n' + '\n'.join(bad)


def test_readme_registry_table_is_registered():
    """The README's tables of registered names list names that exist."""
    prose, _ = parse(osp.join(ROOT, 'README.md'))
    names = []
    for _, line in prose:
        m = re.match(r'^\|\s*`(MODELS|METRICS|HOOKS)`\s*\|([^|]*)\|', line)
        if m:
            names += re.findall(r'`(\w+)`', m.group(2))
    assert len(names) >= 10, names
    missing = [n for n in names if not _registered(n)]
    assert not missing, f'README lists unregistered names: {missing}'


# ---------------------------------------------------------------- configs

def table_configs():
    """Every config a table row of the docs links to (deploy configs are
    mmdeploy's, read separately)."""
    found = set()
    for path in DOCS:
        for no, line in parse(path)[0]:
            if not line.lstrip().startswith('|'):
                continue
            for m in re.finditer(r'\]\(([^)#\s]+\.py)\)',
                                 strip_code_spans(line)):
                found.add(osp.normpath(osp.join(osp.dirname(path),
                                                m.group(1))))
    return sorted(found)


TABLE_CONFIGS = table_configs()
# one per ECA backbone kind the tables list: a paper config (ECAResNet from
# a released preset), a timm ResNet-D config (ECAResNetV1d), the CPU demo
# (a two-stage detector with masks); test_configs.py builds the rest
BUILD = ['configs/retinanet_eca_r50.py',
         'configs/timm/retinanet_ecaresnet50d.py',
         'configs/demo/mask_rcnn_eca_r18_shapes.py']


def test_tables_list_configs():
    rel = {osp.relpath(p, ROOT) for p in TABLE_CONFIGS}
    assert len(rel) > 60, len(rel)
    assert set(BUILD) <= rel, set(BUILD) - rel


@pytest.fixture(scope='module')
def mmdet_index_cache():
    """mmengine resolves every `mmdet::` base by parsing all of mmdet's
    ~500 metafiles again (about 1 s a config); they do not change during a
    test run, so read each once."""
    from mmengine.config import utils
    load = utils.load

    @functools.lru_cache(maxsize=None)
    def cached(path):
        return load(path)

    utils.load = lambda f, *a, **k: (cached(f) if isinstance(f, str)
                                     and not a and not k else load(f, *a, **k))
    yield
    utils.load = load


@pytest.mark.parametrize('path', TABLE_CONFIGS,
                         ids=[osp.relpath(p, ROOT) for p in TABLE_CONFIGS])
def test_table_config_loads(path, mmdet_index_cache):
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    if '/deploy/' in path:
        assert 'codebase_config' in cfg or 'backend_config' in cfg
    elif '/_base_/' not in path:
        assert 'model' in cfg and 'type' in cfg.model


@pytest.mark.parametrize('rel', BUILD)
def test_representative_table_configs_build(rel, mmdet_index_cache):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import eca_mmdet  # noqa: F401
    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(ROOT, rel))
    cfg.model.backbone.init_cfg = None     # no downloads in tests
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0


# ------------------------------------------------ README tables vs metafiles

def _metafile_figures():
    """(folder README, config file name, figure as written) for every
    Parameters / FLOPs / metric a metafile states."""
    for meta in glob.glob(osp.join(ROOT, 'configs', '**', 'metafile.yml'),
                          recursive=True):
        readme = osp.join(osp.dirname(meta), 'README.md')
        with open(meta) as f:
            data = yaml.safe_load(f)
        for model in data.get('Models', []):
            name = osp.basename(model['Config'])
            md = model.get('Metadata', {})
            for key in ('Parameters', 'FLOPs'):
                if key in md:
                    yield readme, name, str(md[key]).rstrip('MG')
            for result in model.get('Results', []) or []:
                for value in result.get('Metrics', {}).values():
                    yield readme, name, str(value)


def test_metafile_figures_match_the_readme_tables():
    bad = []
    rows = {}
    for readme, name, figure in _metafile_figures():
        if readme not in rows:
            rows[readme] = [line for _, line in parse(readme)[0]
                            if line.lstrip().startswith('|')]
        row = [r for r in rows[readme] if f'({name})' in r]
        if not row:
            continue          # a model the README has no table row for
        cells = re.split(r'\s*\|\s*', row[0])
        if not any(re.fullmatch(
                re.escape(figure) + r'0*(?:[MG])?(?:\s.*)?', c.strip('*'))
                or c == figure for c in cells):
            bad.append(f'{osp.relpath(readme, ROOT)}: row of {name} does '
                       f'not state {figure} from its metafile')
    assert not bad, '\n'.join(bad)


# last, so that the --help subprocess has run beside the tests above
@pytest.mark.parametrize('path', DOCS, ids=IDS)
def test_commands_name_what_exists(path, tool_help):
    bad = []
    targets = makefile_targets()
    for no, words in shell_commands(path):
        if words[0] == 'make':
            for t in words[1:]:
                if '=' not in t and not t.startswith('-') and t not in targets:
                    bad.append(f'line {no}: make {t}: no such target in the '
                               f'Makefile')
        if words[0] == 'bash' and len(words) > 1 and words[1].startswith(
                'tools/') and not osp.isfile(osp.join(ROOT, words[1])):
            bad.append(f'line {no}: {words[1]} does not exist')
        for tool, sub, rest in invocations(words):
            if not osp.isfile(osp.join(ROOT, tool)):
                if tool.startswith(('tools/', 'tests/')):
                    bad.append(f'line {no}: {tool} does not exist')
                continue
            text = tool_help[(tool, sub or '')]
            assert 'HELP FAILED' not in text, f'{tool} --help: {text}'
            for w in rest:
                opt = w.split('=', 1)[0]
                if re.match(r'^--[\w-]+$', opt) and not re.search(
                        re.escape(opt) + r'(?![\w-])', text):
                    name = f'{tool} {sub}' if sub else tool
                    bad.append(f'line {no}: {name} has no option {opt} '
                               f'(not in its --help)')
    assert not bad, f'{osp.relpath(path, ROOT)}:\n' + '\n'.join(bad)
