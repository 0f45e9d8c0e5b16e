"""Item → verdict with reason codes, always against the full, unpruned graph.

    result = verify_items(items, full_snapshot, hubs="run/pruned/hubs.json")
    write_verified(result, "run/verified")

Graph checks first (deterministic, vectorised), then the optional model check,
decontamination against benchmark files, and de-duplication. See
`kgsynth.verify.run` for the stages and `CHECKS` for the registered checks.
"""

from kgsynth.verify.checks import CHECKS, STAGES, load_checks
from kgsynth.verify.dedup import DedupConfig
from kgsynth.verify.run import ACCEPTED, REJECTED, SUMMARY, VerifyResult, verify_items, write_verified

__all__ = [
    "ACCEPTED",
    "CHECKS",
    "REJECTED",
    "STAGES",
    "SUMMARY",
    "DedupConfig",
    "VerifyResult",
    "load_checks",
    "verify_items",
    "write_verified",
]
