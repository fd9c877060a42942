"""Datasets, samplers, augmentation, the training loop, checkpoints, distributed launch."""
