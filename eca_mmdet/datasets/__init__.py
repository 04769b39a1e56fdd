from .synthetic_shapes import CLASSES, generate_dataset

__all__ = ['CLASSES', 'generate_dataset']
