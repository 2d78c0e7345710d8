"""Silent-data-corruption defences: tensor fingerprints, model/optimizer fingerprints, the replaying
SDC guard, cross-replica checks, fingerprinted checkpoints and a fault-injection harness."""

from iquest_core.reliability.fingerprint import digest_hex, fingerprint, fingerprint_many

__all__ = ["digest_hex", "fingerprint", "fingerprint_many"]
