"""checkpoint_control: one bit of the checkpoint's small control files (.metadata, trainer.json, the RNG
file, fingerprints.json), uniform over their bytes: faults there decide whether a checkpoint can be read at
all, and `checkpoint`'s draw uniform over all bytes almost always lands in the shards instead."""

from iquest_core.reliability.drill.checkpoint_site import CheckpointSite
from iquest_core.reliability.drill.sites import register

register(CheckpointSite("checkpoint_control", 70, files=lambda path: path.suffix != ".distcp"))
