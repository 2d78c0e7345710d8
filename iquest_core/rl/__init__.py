"""Reinforcement learning: GRPO with clip-higher and token-mean loss (`grpo`), the toy code tasks and their
test-pass reward (`tasks`), and `iquest rl` (`cli`)."""
