"""A small COCO-format instance-segmentation dataset generated on the fly.

Used by the built-in demo and the end-to-end tests, so that nothing has to be
downloaded. Each image has a textured background (smooth colour field,
stripes or checkers, noise) and 1-5 objects of four shape classes with random
size (16-56 px), rotation, aspect and colour; each class draws its colours
from its own hue family (hue +-30 degrees, any saturation and brightness), so
shape and colour both tell the class. Objects may overlap, later ones
occluding earlier ones (every object stays at least half visible), and every
annotation carries the *visible* mask (RLE), its box and area. Generation is
deterministic for a given seed.
"""
import json
import os
import os.path as osp
from typing import Dict, Optional

import cv2
import numpy as np
from pycocotools import mask as mask_utils

CLASSES = ('circle', 'rectangle', 'triangle', 'cross')
PALETTE = [(220, 20, 60), (0, 128, 255), (0, 200, 80), (255, 170, 0)]
# hue centre (degrees) of each class's colour family: red, blue, green,
# orange; colours vary within a family, shape and colour both carry class
CLASS_HUES = (350, 220, 120, 40)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.uniform(40, 215, size=3)
    # smooth colour field
    low = rng.normal(0, 30, size=(4, 4, 3)).astype(np.float32)
    field = cv2.resize(low, (size, size), interpolation=cv2.INTER_CUBIC)
    img = base[None, None] + field
    # a texture: stripes or checkers
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = rng.uniform(6, 20)
    angle = rng.uniform(0, np.pi)
    if rng.random() < 0.5:
        t = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi
                   / period)
    else:
        t = np.sign(np.sin(xx * 2 * np.pi / period) *
                    np.sin(yy * 2 * np.pi / period))
    img += t[..., None] * rng.uniform(5, 20) * rng.choice([-1, 1], size=3)
    return img


def _shape_mask(rng: np.random.Generator, cls: int, size: int,
                min_obj: int, max_obj: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    s = rng.uniform(min_obj, max_obj)
    cx, cy = rng.uniform(s / 2, size - s / 2, size=2)
    ang = rng.uniform(0, 360)
    if cls == 0:  # circle
        cv2.circle(mask, (int(cx), int(cy)), max(int(s / 2), 3), 1, -1)
    elif cls == 1:  # rectangle, random aspect and rotation
        w, h = s, s * rng.uniform(0.45, 1.0)
        box = cv2.boxPoints(((cx, cy), (w, h), ang)).astype(np.int32)
        cv2.fillPoly(mask, [box], 1)
    elif cls == 2:  # triangle
        r = s / 2
        a0 = np.deg2rad(ang)
        pts = [(cx + r * np.cos(a0 + k * 2 * np.pi / 3 +
                                rng.uniform(-0.25, 0.25)),
                cy + r * np.sin(a0 + k * 2 * np.pi / 3 +
                                rng.uniform(-0.25, 0.25))) for k in range(3)]
        cv2.fillPoly(mask, [np.array(pts, np.int32)], 1)
    else:  # cross (plus sign)
        arm = s * rng.uniform(0.22, 0.34)
        for w, h in ((s, arm), (arm, s)):
            box = cv2.boxPoints(((cx, cy), (w, h), ang)).astype(np.int32)
            cv2.fillPoly(mask, [box], 1)
    return mask


def _visible_fractions(objects):
    """Visible fraction of each object when later ones are drawn on top."""
    cover = np.zeros_like(objects[0][1])
    fractions = []
    for _, m in reversed(objects):
        fractions.append((m & (1 - cover)).sum() / max(m.sum(), 1))
        cover |= m
    return fractions[::-1]


def _colour(rng, cls, bg_mean):
    """A random colour from the class's hue family (hue centre +- 30 deg,
    saturation 0.45-1, value 0.45-1), contrasting with the background."""
    for _ in range(100):
        hue = (CLASS_HUES[cls] + rng.uniform(-30, 30)) % 360
        sat, val = rng.uniform(0.45, 1.0), rng.uniform(0.45, 1.0)
        hsv = np.uint8([[[hue / 2, sat * 255, val * 255]]])  # OpenCV: H/2
        c = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)
        if np.abs(c - bg_mean).mean() > 40:
            return c
    return c


def make_image(rng: np.random.Generator, size: int = 128,
               max_objects: int = 5, min_obj: int = 16, max_obj: int = 56):
    """Return ``(image uint8 HxWx3 BGR, [(class_index, visible mask)])``."""
    img = _background(rng, size)
    n = int(rng.integers(1, max_objects + 1))
    objects = []  # (cls, full mask)
    for _ in range(n):
        for _attempt in range(20):
            cls = int(rng.integers(len(CLASSES)))
            m = _shape_mask(rng, cls, size, min_obj, max_obj)
            if m.sum() < 60:
                continue
            # keep every earlier object at least 50% visible
            ok = all(f >= 0.5 for f in
                     _visible_fractions(objects + [(cls, m)])[:-1])
            if ok:
                objects.append((cls, m))
                break
    bg_mean = img.mean((0, 1))
    for cls, m in objects:
        colour = _colour(rng, cls, bg_mean)
        shade = 1 + rng.normal(0, 0.06, size=(size, size, 1))
        img = np.where(m[..., None] > 0, colour[None, None] * shade, img)
    img += rng.normal(0, 4, size=img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    # visible masks: later objects occlude earlier ones
    annots = []
    cover = np.zeros((size, size), np.uint8)
    for cls, m in reversed(objects):
        vis = m & (1 - cover)
        cover |= m
        annots.append((cls, vis))
    return img, annots[::-1]


def _annotation(ann_id, img_id, cls, vis):
    rle = mask_utils.encode(np.asfortranarray(vis))
    x, y, w, h = [float(v) for v in mask_utils.toBbox(rle)]
    rle['counts'] = rle['counts'].decode('ascii')
    return dict(id=ann_id, image_id=img_id, category_id=cls + 1,
                segmentation=rle, area=float(mask_utils.area(rle)),
                bbox=[x, y, w, h], iscrowd=0)


def generate_split(root: str, split: str, num_images: int, seed: int,
                   size: int = 128, progress: bool = True) -> str:
    """Write ``root/{split}/*.png`` and ``root/annotations/{split}.json``.

    Returns:
        str: Path of the annotation file.
    """
    rng = np.random.default_rng(seed)
    img_dir = osp.join(root, split)
    os.makedirs(img_dir, exist_ok=True)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    images, annotations = [], []
    it = range(num_images)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc=f'generating {split}', unit='img')
    for i in it:
        img, annots = make_image(rng, size)
        name = f'{i:05d}.png'
        cv2.imwrite(osp.join(img_dir, name), img)
        images.append(dict(id=i + 1, file_name=name, height=size,
                           width=size))
        for cls, vis in annots:
            if vis.sum() < 20:
                continue
            annotations.append(
                _annotation(len(annotations) + 1, i + 1, cls, vis))
    ann = dict(images=images, annotations=annotations,
               categories=[dict(id=i + 1, name=n, supercategory='shape')
                           for i, n in enumerate(CLASSES)])
    ann_file = osp.join(root, 'annotations', f'{split}.json')
    tmp = ann_file + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(ann, f)
    os.replace(tmp, ann_file)  # the json appears only when complete
    return ann_file


def generate_dataset(root: str, num_train: int = 300, num_val: int = 60,
                     seed: int = 0, size: int = 128,
                     progress: bool = True) -> Dict[str, str]:
    """Generate train and val splits unless they already exist.

    Returns:
        dict: ``{'train': ann_file, 'val': ann_file}``.
    """
    out: Dict[str, Optional[str]] = {}
    for split, n, s in (('train', num_train, seed), ('val', num_val,
                                                     seed + 1)):
        ann_file = osp.join(root, 'annotations', f'{split}.json')
        if osp.isfile(ann_file):
            with open(ann_file) as f:
                meta = json.load(f)
            if len(meta['images']) == n:
                out[split] = ann_file
                continue
        out[split] = generate_split(root, split, n, s, size, progress)
    return out
