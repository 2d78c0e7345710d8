"""checkpoint: one bit anywhere in the trainer's checkpoint files (DCP shards, .metadata, trainer.json,
the RNG file, fingerprints.json), uniform over their bytes."""

from iquest_core.reliability.drill.checkpoint_site import CheckpointSite
from iquest_core.reliability.drill.sites import register

register(CheckpointSite("checkpoint", 60))
