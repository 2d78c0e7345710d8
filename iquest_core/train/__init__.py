"""The training loop only: the trainer, recipes, schedules, the shared training step, checkpoints, metrics
and export."""
