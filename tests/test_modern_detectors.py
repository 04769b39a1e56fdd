"""Cascade (Mask) R-CNN and DINO on the authors' ECA-ResNets (configs/
cascade_rcnn/, configs/dino/): the paper's backbone and weights in mmdet's
own detectors; each family trains a few iterations on generated data."""
import re

import pytest

from tiny_training import train_tiny


@pytest.mark.parametrize('config, model', [
    ('cascade_rcnn/cascade_mask_rcnn_eca_r50.py', ''),
    # 128 px images have fewer encoder tokens than DINO's 900 queries
    ('dino/dino-4scale_eca_r50_8xb2-12e_coco.py', ', num_queries=100'),
])
def test_trains_a_few_iterations(config, model, tmp_path):
    out = train_tiny(config, tmp_path, model=model)
    losses = [float(x) for x in re.findall(r' loss: (\d+\.\d+)', out)]
    assert len(losses) == 2 and all(0 < v < 1e3 for v in losses), losses
    assert "type='ECAResNet'" in out  # the config as mmengine logs it
