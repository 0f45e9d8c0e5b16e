"""The readable shatter report (report.md): parameters, before/after figures, removed hubs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kgsynth.prune import ShatterResult


def report_markdown(result: ShatterResult, *, max_rows: int = 200) -> str:
    report, params = result.report, result.params
    before, after = report["before"], report["after"]
    lines = [
        f"# Hub pruning of {report['parent']['name']}",
        "",
        f"Parent snapshot `{report['parent']['hash'][:16]}` → pruned snapshot `{result.snapshot.hash[:16]}`.",
        "",
        "Parameters: " + ", ".join(f"{key}={value}" for key, value in params.items() if value not in ((), [], None)),
        "",
        "## Before and after",
        "",
        "| figure | before | after |",
        "|---|---:|---:|",
        f"| nodes | {before['nodes']:,} | {after['nodes']:,} |",
        f"| largest connected component | {before['largest_component']:,} | {after['largest_component']:,} |",
        f"| sampled pairs (both ends kept) | {before['pairs']:,} | {after['pairs']:,} |",
        f"| pairs with a path | {before['connected_pairs']:,} | {after['connected_pairs']:,} |",
        f"| mean shortest-path length | {_number(before['mean_path_length'])} | {_number(after['mean_path_length'])} |",
        f"| largest shortcut load | {before['max_load']:.2%} | {after['max_load']:.2%} |",
        "",
        f"Removed {after['nodes_removed']:,} nodes and {after['edges_removed']:,} edges. "
        f"{before['share_through_removed']:.1%} of the sampled pairs' shortest paths ran through a removed hub; "
        f"{after['pairs_dropped']:,} pairs lost an endpoint.",
        "",
        "Shortest-path lengths of the sampled pairs:",
        "",
        "| hops | before | after |",
        "|---:|---:|---:|",
    ]
    for hops in sorted(set(before["path_lengths"]) | set(after["path_lengths"])):
        lines.append(f"| {hops} | {before['path_lengths'].get(hops, 0):,} | {after['path_lengths'].get(hops, 0):,} |")
    lines += ["", f"## Removed nodes ({len(result.hubs):,})", ""]
    if result.hubs:
        lines += ["| round | id | name | type | degree | shortcut load | reason |", "|---:|---|---|---|---:|---:|---|"]
        for hub in result.hubs[:max_rows]:
            lines.append(
                f"| {hub['round']} | {hub['id']} | {_cell(hub['name'])} | {hub['type']} | {hub['degree']:,} "
                f"| {hub['shortcut_load']:.2%} | {_cell(hub['reason'])} |"
            )
        if len(result.hubs) > max_rows:
            lines.append(f"\n… and {len(result.hubs) - max_rows:,} more in hubs.json")
    else:
        lines.append("None: no node carried more than the limit.")
    return "\n".join(lines) + "\n"


def _number(value: Any) -> str:
    return "–" if value is None else f"{value:.2f}"


def _cell(text: Any) -> str:
    return str(text or "").replace("|", "\\|").replace("\n", " ")
