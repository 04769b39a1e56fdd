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
from typing import Optional, Sequence


class AnnotationError(ValueError):
    """A COCO annotation file is unreadable or lacks required fields."""


# what mmdet's CocoDataset and CocoMetric read from each entry
REQUIRED = {
    'images': ('id', 'file_name', 'height', 'width'),
    'annotations': ('id', 'image_id', 'category_id', 'bbox'),
    'categories': ('id', 'name'),
}


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
    for section, keys in REQUIRED.items():
        entries = data[section]
        if not isinstance(entries, list):
            raise AnnotationError(f'annotation file {path}: {section!r} must '
                                  f'be a list, found '
                                  f'{type(entries).__name__}')
        for i, entry in enumerate(entries):
            lacking = [k for k in keys if not isinstance(entry, dict)
                       or k not in entry]
            if lacking:
                raise AnnotationError(
                    f'annotation file {path}: {section}[{i}] lacks '
                    f'{", ".join(map(repr, lacking))} (every entry of '
                    f'{section!r} needs {", ".join(keys)})')
        if section == 'annotations':
            for i, ann in enumerate(entries):
                box = ann['bbox']
                if not (isinstance(box, list) and len(box) == 4):
                    raise AnnotationError(
                        f'annotation file {path}: annotations[{i}].bbox '
                        f'must be [x, y, width, height], found {box!r}')
    if classes:
        names = {c['name'] for c in data['categories']}
        if not names & set(classes):
            raise AnnotationError(
                f'annotation file {path}: none of the configured classes '
                f'{list(classes)[:5]}... is among its categories '
                f'{sorted(names)[:5]}; set the dataset\'s metainfo='
                f'dict(classes=(...)) to the names in the file')
