"""Runnable jobs and the training loop: the shared language-model step, trainer, recipes, evaluation,
RL, demo, drill and self-test."""
