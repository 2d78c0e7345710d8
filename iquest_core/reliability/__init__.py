"""Silent-data-corruption defences: tensor fingerprints, model/optimizer fingerprints, the replaying
SDC guard, cross-replica checks, fingerprinted checkpoints and a fault-injection harness
(the drill that exercises them all: `python -m iquest_core.reliability.drill`)."""

from iquest_core.reliability.checkpoint import load_checkpoint, save_checkpoint
from iquest_core.reliability.errors import SilentDataCorruptionError
from iquest_core.reliability.faults import Fault, FaultInjector, flip_bit
from iquest_core.reliability.fingerprint import digest_hex, fingerprint, fingerprint_many
from iquest_core.reliability.guard import RunHooks, SDCGuard
from iquest_core.reliability.replicas import check_replicas, compare_across_ranks
from iquest_core.reliability.state import fingerprint_module, fingerprint_optimizer

__all__ = ["Fault", "FaultInjector", "RunHooks", "SDCGuard", "SilentDataCorruptionError", "check_replicas",
           "compare_across_ranks", "digest_hex", "fingerprint", "fingerprint_many", "fingerprint_module",
           "fingerprint_optimizer", "flip_bit", "load_checkpoint", "save_checkpoint"]
