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
