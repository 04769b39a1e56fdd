from .eca_mobilenet_v2 import ECAMobileNetV2
from .eca_resnet import ECABasicBlock, ECABottleneck, ECAResNet, ECAResNetV1d

__all__ = ['ECAResNet', 'ECAResNetV1d', 'ECABasicBlock', 'ECABottleneck',
           'ECAMobileNetV2']
