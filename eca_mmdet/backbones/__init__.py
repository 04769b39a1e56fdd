from .eca_mobilenet_v2 import ECAMobileNetV2
from .eca_resnet import ECABasicBlock, ECABottleneck, ECAResNet, ECAResNetV1d
from .timm_backbone import TIMM_ECA_MODELS, ECATimmBackbone

__all__ = ['ECAResNet', 'ECAResNetV1d', 'ECABasicBlock', 'ECABottleneck',
           'ECAMobileNetV2', 'ECATimmBackbone', 'TIMM_ECA_MODELS']
