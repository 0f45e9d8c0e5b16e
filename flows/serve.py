"""Serve both flows with their schedules from this process (no work pool needed).

    python -m flows.serve [CONFIG] [--cron "0 3 * * 1"]     (from the repository root)

`synthesize` runs weekly (Mondays 03:00 UTC by default); `refresh_graph` is served
without a schedule so a new source release can trigger it from the UI or with
`prefect deployment run 'refresh_graph/refresh-graph'`. Stop with Ctrl-C.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from flows.synthesize import refresh_graph, synthesize

WEEKLY = "0 3 * * 1"


def deployments(config: Path, cron: str = WEEKLY) -> list[RunnerDeployment]:
    parameters = {"config_path": str(config.resolve())}
    return [
        synthesize.to_deployment(name="weekly", cron=cron, parameters=parameters, tags=["kgsynth"]),
        refresh_graph.to_deployment(name="refresh-graph", parameters=parameters, tags=["kgsynth"]),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default="configs/demo.yaml", type=Path)
    parser.add_argument("--cron", default=WEEKLY, help="Cron schedule for synthesize (default: Mondays 03:00).")
    args = parser.parse_args(argv)
    serve(*deployments(args.config, args.cron))


if __name__ == "__main__":
    main()
