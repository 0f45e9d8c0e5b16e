"""The deployments' entry point for the `synthesize` and `refresh_graph` flows.

The flows themselves live in `kgsynth.execution.flow` (one definition, shared with
`kgsynth run` when the config says `execution.runner: dask`, and importable on Dask
workers); this file names them for prefect.yaml and flows/serve.py.

Run it locally:   python flows/synthesize.py configs/demo.yaml
Serve weekly:     python -m flows.serve configs/demo.yaml
"""

from __future__ import annotations

import sys

from kgsynth.execution.flow import refresh_graph, synthesize

__all__ = ["refresh_graph", "synthesize"]

if __name__ == "__main__":
    for stage_name, outcome in synthesize(sys.argv[1] if len(sys.argv) > 1 else "configs/demo.yaml").items():
        print(f"{stage_name}: {outcome['state']} ({outcome['seconds']:.1f}s)")
