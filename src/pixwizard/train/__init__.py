"""Training: typed stage configs, shard batching, the trainer loop, EMA, exact-resume checkpoints,
DDP/FSDP2 wrapping from outside the model, metrics and the training benchmark."""

from pixwizard.train.config import PRESETS, StageConfig, TrainConfig, preset

__all__ = ["PRESETS", "StageConfig", "TrainConfig", "preset"]
