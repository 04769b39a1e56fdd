from .annotation_checks import AnnotationError, check_coco_annotation_file
from .synthetic_shapes import CLASSES, generate_dataset

__all__ = ['AnnotationError', 'CLASSES', 'check_coco_annotation_file',
           'generate_dataset']
