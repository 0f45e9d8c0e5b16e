"""The quality report of a run: `report.md` with PNG plots beside it.

Hop distribution, relation and node-type coverage, difficulty (the answering
models' accuracy against hops and against the feature difficulty), degree of the
answer nodes, rejection reasons by stage, hubs removed by pruning, and token cost. A figure
whose data the run lacks is replaced by a sentence saying what is missing.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from kgsynth.atomic import replace_directory
from kgsynth.export import plots
from kgsynth.export.inputs import read_run
from kgsynth.export.markdown import percent, table
from kgsynth.export.redact import redact
from kgsynth.export.stats import RunStats, run_stats


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write `report.md` and its PNGs to `out` (default RUN_DIR/report), atomically; return report.md."""
    inputs = read_run(run_dir)
    stats = run_stats(inputs)
    out = Path(out) if out is not None else inputs.run.report
    with replace_directory(out, marker="report.md", what="report") as tmp:
        text = _render(inputs.run.root, stats, tmp, hubs_params=(inputs.hubs or {}).get("params"))
        (tmp / "report.md").write_text(redact(text), encoding="utf-8")
    return out / "report.md"


def _render(run_root: Path, stats: RunStats, folder: Path, *, hubs_params) -> str:
    from kgsynth import __version__

    out = [f"# Quality report: {run_root.name}", "",
           f"Run directory `{run_root}`, written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
           f"by kgsynth {__version__}.", ""]
    if stats.notes:
        out += ["Not recorded in this run:", ""] + [f"- {note}" for note in stats.notes] + [""]

    out += ["## Acceptance by stage", "",
            table(["stage", "counted", "in", "kept", "rate"],
                  [[s.name, s.what, s.entered, s.kept, percent(s.rate)] for s in stats.stages]), ""]

    out += ["## Path length", "", _image(plots.hops_plot(stats, folder / "hops.png"), "items by hops"), ""]
    accepted, rejected = stats.hops.get("accepted", {}), stats.hops.get("rejected", {})
    rows = []
    for h in sorted(set(accepted) | set(rejected)):
        a, r = accepted.get(h, 0), rejected.get(h, 0)
        rows.append([h, a, r if "rejected" in stats.hops else None, percent(r / (a + r)) if "rejected" in stats.hops else None])
    out += [table(["hops", "accepted", "rejected", "rejection rate"], rows), ""]

    out += ["## Coverage", "", _image(plots.coverage_plot(stats, folder / "coverage.png"), "relation and node-type coverage"), ""]
    total_edges = sum(stats.graph_relations.values())
    relations = list(stats.relations) + [r for r in stats.graph_relations if r not in stats.relations]
    out += [table(["relation", "hops in accepted items", "edges in the graph", "share of graph edges"],
                  [[r, stats.relations.get(r, 0), stats.graph_relations.get(r),
                    percent(stats.graph_relations[r] / total_edges) if r in stats.graph_relations and total_edges else None]
                   for r in relations]), ""]
    unused = [r for r in stats.graph_relations if r not in stats.relations]
    if unused:
        out += [f"Relations of the graph that no accepted item uses: {', '.join(f'`{r}`' for r in unused)}.", ""]
    roles = stats.node_roles
    out += [table(["node type", "path nodes", "as anchor", "as bridge", "as answer"],
                  [[t, n, roles["anchor"].get(t, 0), roles["bridge"].get(t, 0), roles["answer"].get(t, 0)]
                   for t, n in stats.node_types.items()]), ""]

    out += ["## Difficulty", ""]
    if stats.difficulty is not None:
        from kgsynth.export.card import difficulty_section

        out += [_image(plots.difficulty_plot(stats, folder / "difficulty.png"), "accuracy against hops and difficulty"), ""]
        out += [*difficulty_section(stats, curriculum=None, heading=False), ""]
    else:
        out += ["The items' difficulty was not measured (run the difficulty stage, `kgsynth difficulty`).", ""]

    out += ["## Answer nodes", ""]
    if stats.answer_degrees:
        d = np.array(stats.answer_degrees)
        out += [_image(plots.degree_plot(stats, folder / "answer_degree.png"), "answer-node degree"), "",
                f"{len(d):,} distinct answer nodes; degree in the full graph: min {d.min():,}, "
                f"median {np.median(d):,.0f}, 90th percentile {np.percentile(d, 90):,.0f}, max {d.max():,}. "
                "Low-degree answers make specific questions; very high-degree answers are near-generic.", ""]
    else:
        out += ["The run has no `snapshot/`, so the answer nodes' degrees are unknown.", ""]

    out += ["## Rejections", ""]
    if stats.rejections:
        out += [_image(plots.rejections_plot(stats, folder / "rejections.png"), "rejection reasons"), "",
                "An item rejected for several reasons counts under each.", "",
                table(["stage", "reason", "count"],
                      [[stage, reason, n] for stage, reasons in stats.rejections.items() for reason, n in reasons.items()]),
                ""]
    else:
        out += ["No rejections were recorded.", ""]

    out += ["## Hubs removed", ""]
    if stats.hubs:
        out += [_image(plots.hubs_plot(stats, folder / "hubs.png"), "hubs removed"), ""]
        if hubs_params:
            out += [f"Pruning parameters: `{json.dumps(hubs_params, sort_keys=True)}`.", ""]
        if stats.pruning_effect:
            out += [table(["", "before pruning", "after pruning"], stats.pruning_effect), ""]
        out += [table(["id", "name", "type", "degree", "shortcut load", "round"],
                      [[h.get("id"), h.get("name"), h.get("type"), h.get("degree"),
                        percent(h.get("shortcut_load")), h.get("round")]
                       for h in stats.hubs[:20]]), ""]
        if len(stats.hubs) > 20:
            out += [f"… and {len(stats.hubs) - 20:,} more in `pruned/hubs.json`.", ""]
    else:
        out += ["No hubs were removed (the run has no pruning report).", ""]

    out += ["## Cost", ""]
    usage = stats.usage
    if int(usage["prompt_tokens"].sum() + usage["completion_tokens"].sum()) > 0:
        out += [_image(plots.cost_plot(stats, folder / "cost.png"), "token usage and cost"), ""]
    else:
        out += ["No model tokens were used (template writer only).", ""]
    out += [table(["writer", "model", "items", "prompt tokens", "completion tokens", "cost (USD)", "cached"],
                  [list(r) for r in usage.iter_rows()]),
            "", f"Total cost of the judged items: ${float(usage['cost_usd'].sum()):,.4f}. "
            "Generation failures are not included (their usage is not recorded per item).", ""]
    return "\n".join(out)


def _image(path: Path, alt: str) -> str:
    return f"![{alt}]({path.name})"
