"""Grounding existing QA pairs in the graph (the MedReason workflow, done carefully).

QA rows → linked entities (`link`) → paths between question and answer entities on
the pruned graph (`paths`) → a thinking path over the selected paths ending at the
gold answer (`reason`) → verification against the full graph → MedReason-compatible
rows plus kgsynth's items and a coverage report (`run`).
"""
