"""Silent-data-corruption defences: tensor fingerprints, model/optimizer fingerprints, the SDC guard
(at-rest, cross-replica and deterministic-replay checks with rollback), fingerprinted checkpoints and
the fault-injection harness and the drill that exercises them (`reliability.drill`, `iquest drill`)."""

from iquest_core.reliability.errors import SilentDataCorruptionError
from iquest_core.reliability.faults import OpFaultMode, flip_bit
from iquest_core.reliability.fingerprint import digest_hex, fingerprint, fingerprint_many
from iquest_core.reliability.guard import SDCGuard
from iquest_core.reliability.replicas import check_replicas, compare_across_ranks
from iquest_core.reliability.state import fingerprint_module, fingerprint_optimizer

__all__ = ["OpFaultMode", "SDCGuard", "SilentDataCorruptionError", "check_replicas", "compare_across_ranks",
           "digest_hex", "fingerprint", "fingerprint_many", "fingerprint_module", "fingerprint_optimizer", "flip_bit"]
