"""Explain why a COCO-format annotation file cannot be used.

MMDetection reads annotation files with pycocotools and fails deep inside
it on a broken file (``need at least one array to concatenate``,
``KeyError: 'categories'``, ``KeyError: 'bbox'``, a bare JSON position).
:func:`check_coco_annotation_file` names the file and what is wrong with it.
It parses the whole file, so the tools call it only after a dataset failed
to build, never on the normal path.
"""
import json
import os.path as osp
import reprlib
from typing import Optional, Sequence

from ..errors import ReadableError


class AnnotationError(ReadableError, ValueError):
    """A COCO annotation file is unreadable or lacks required fields."""


NUMBER = (int, float)
ID = (int, str)
# what mmdet's CocoDataset and CocoMetric read from each entry, and its type
REQUIRED = {
    'images': {'id': ID, 'file_name': str, 'height': NUMBER,
               'width': NUMBER},
    'annotations': {'id': ID, 'image_id': ID, 'category_id': ID,
                    'bbox': list, 'area': NUMBER},
    'categories': {'id': ID, 'name': str},
}
_NAMES = {ID: 'an integer id', str: 'a string', NUMBER: 'a number',
          list: '[x, y, width, height]'}


def check_coco_annotation_file(path: str,
                               classes: Optional[Sequence[str]] = None
                               ) -> None:
    """Raise :class:`AnnotationError` if ``path`` is not a usable COCO file.

    Args:
        path (str): The annotation file.
        classes (Sequence[str], optional): The class names the dataset is
            configured with (``metainfo.classes``); at least one must be
            among the file's categories.

    Raises:
        AnnotationError: With the file, the problem and how to fix it.
    """
    if not osp.isfile(path):
        raise AnnotationError(f'annotation file not found: {path}')
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except UnicodeDecodeError as e:
        raise AnnotationError(f'annotation file {path} is not text (UTF-8 '
                              f'JSON expected): {e}') from None
    except json.JSONDecodeError as e:
        empty = ' (the file is empty)' if osp.getsize(path) == 0 else ''
        raise AnnotationError(
            f'annotation file {path} is not valid JSON{empty}: {e.msg} '
            f'(line {e.lineno}, column {e.colno}); a truncated download or an '
            f'HTML error page saved under this name looks like this')\
            from None
    except RecursionError:
        raise AnnotationError(f'annotation file {path} nests JSON arrays '
                              f'or objects too deeply to be a COCO file') \
            from None
    if not isinstance(data, dict):
        raise AnnotationError(f'annotation file {path}: expected a JSON '
                              f'object with {", ".join(REQUIRED)}, found a '
                              f'{type(data).__name__}')
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise AnnotationError(
            f'annotation file {path} has no {", ".join(map(repr, missing))} '
            f'list; a COCO detection file needs "images", "annotations" '
            f'and "categories" (an image without objects is simply not '
            f'referenced by any annotation)')
    for section, fields in REQUIRED.items():
        _check_entries(path, section, data[section], fields)
    ids = [ann['id'] for ann in data['annotations']]
    if len(set(ids)) != len(ids):
        raise AnnotationError(f'annotation file {path}: annotation ids are '
                              f'not unique (mmdet requires unique ids)')
    if classes:
        names = {c['name'] for c in data['categories']}
        if not names & set(classes):
            raise AnnotationError(
                f'annotation file {path}: none of the configured classes '
                f'{list(classes)[:5]}... is among its categories '
                f'{sorted(names)[:5]}; set the dataset\'s metainfo='
                f'dict(classes=(...)) to the names in the file')


def _check_entries(path: str, section: str, entries, fields: dict) -> None:
    if not isinstance(entries, list):
        raise AnnotationError(f'annotation file {path}: {section!r} must '
                              f'be a list, found {type(entries).__name__}')
    for i, entry in enumerate(entries):
        lacking = [k for k in fields if not isinstance(entry, dict)
                   or k not in entry]
        if lacking:
            raise AnnotationError(
                f'annotation file {path}: {section}[{i}] lacks '
                f'{", ".join(map(repr, lacking))} (every entry of '
                f'{section!r} needs {", ".join(fields)})')
        for key, kind in fields.items():
            value = entry[key]
            ok = isinstance(value, kind) and not (
                kind is NUMBER and isinstance(value, bool))
            if key == 'bbox':
                ok = ok and len(value) == 4 and all(
                    isinstance(v, NUMBER) and not isinstance(v, bool)
                    for v in value)
            if not ok:
                raise AnnotationError(
                    f'annotation file {path}: {section}[{i}].{key} must be '
                    f'{_NAMES[kind]}, found {_short(value)}')


def _short(value) -> str:
    return reprlib.repr(value)
