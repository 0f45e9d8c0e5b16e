"""The quality report's figures (matplotlib, written as PNG without a display)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from kgsynth.export.stats import RunStats

DPI = 110
_ROLE_COLOURS = {"anchor": "#4C72B0", "bridge": "#DD8452", "answer": "#55A868"}


@contextmanager
def figure(path: Path, *, width: float = 8.0, height: float = 4.5, ncols: int = 1) -> Iterator:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width, height))
    try:
        yield fig, axes
        fig.tight_layout()
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)


def hops_plot(stats: RunStats, path: Path) -> Path:
    """Accepted and rejected items per hop count, with the rejection rate on top."""
    accepted, rejected = stats.hops.get("accepted", {}), stats.hops.get("rejected", {})
    hops = sorted(set(accepted) | set(rejected))
    x = np.arange(len(hops))
    with figure(path) as (fig, ax):
        a = [accepted.get(h, 0) for h in hops]
        r = [rejected.get(h, 0) for h in hops]
        ax.bar(x - 0.2, a, width=0.4, label="accepted", color="#55A868")
        if rejected:
            ax.bar(x + 0.2, r, width=0.4, label="rejected", color="#C44E52")
            for xi, ai, ri in zip(x, a, r, strict=True):
                if ai + ri:
                    ax.annotate(f"{ri / (ai + ri):.0%} rej.", (xi, max(ai, ri)), ha="center", va="bottom",
                                fontsize=8, xytext=(0, 3), textcoords="offset points")
        ax.set_xticks(x, [str(h) for h in hops])
        ax.set_xlabel("hops (edges in the path)")
        ax.set_ylabel("items")
        _integer_ticks(ax.yaxis)
        ax.set_title("Items by path length")
        ax.legend()
        ax.margins(y=0.15)
    return path


def coverage_plot(stats: RunStats, path: Path) -> Path:
    """Left: hops per relation (accepted items). Right: path nodes per type, by role."""
    relations = list(stats.relations) + [r for r in stats.graph_relations if r not in stats.relations]
    roles = stats.node_roles
    types = list(stats.node_types)
    height = max(3.5, 0.35 * max(len(relations), len(types)) + 1.5)
    with figure(path, width=12, height=height, ncols=2) as (fig, (left, right)):
        y = np.arange(len(relations))
        used = [stats.relations.get(r, 0) for r in relations]
        left.barh(y, used, color="#4C72B0")
        left.set_yticks(y, relations, fontsize=8)
        left.invert_yaxis()
        left.set_xlabel("hops using the relation (accepted items)")
        left.set_title("Relation coverage")
        total_edges = sum(stats.graph_relations.values())
        for yi, r, n in zip(y, relations, used, strict=True):
            share = stats.graph_relations.get(r)
            label = f"{n:,}" + (f"  ({share / total_edges:.1%} of graph edges)" if share and total_edges else "")
            left.annotate(label, (n, yi), va="center", fontsize=7, xytext=(3, 0), textcoords="offset points")
        left.margins(x=0.45)

        y = np.arange(len(types))
        start = np.zeros(len(types))
        for role, colour in _ROLE_COLOURS.items():
            values = np.array([roles.get(role, {}).get(t, 0) for t in types], dtype=float)
            right.barh(y, values, left=start, color=colour, label=role)
            start += values
        right.set_yticks(y, types, fontsize=8)
        right.invert_yaxis()
        right.set_xlabel("path nodes (accepted items)")
        right.set_title("Node-type coverage by role")
        right.legend(fontsize=8)
    return path


def degree_plot(stats: RunStats, path: Path) -> Path:
    """Degree in the full graph of the answer nodes (log bins), with the pruning cut if any."""
    degrees = np.array(stats.answer_degrees, dtype=float)
    with figure(path) as (fig, ax):
        top = max(float(degrees.max()), 1.0)
        bins = np.unique(np.geomspace(1, top + 1, num=min(30, max(2, int(np.log2(top + 1) * 3)))))
        ax.hist(np.maximum(degrees, 1), bins=bins, color="#8172B3", edgecolor="white")
        ax.set_xscale("log")
        ax.set_xlabel("degree of the answer node in the full graph (log scale)")
        ax.set_ylabel("distinct answer nodes")
        _integer_ticks(ax.yaxis)
        ax.set_title(f"Answer-node degree ({len(degrees):,} distinct answers, median {np.median(degrees):,.0f})")
        if stats.hubs:
            cut = min(int(h.get("degree") or 0) for h in stats.hubs)
            ax.axvline(cut, color="#C44E52", linestyle="--", label=f"smallest removed hub: degree {cut:,}")
            ax.legend(fontsize=8)
    return path


def rejections_plot(stats: RunStats, path: Path) -> Path:
    """Rejected items per reason code, grouped and coloured by stage."""
    rows = [(stage, reason, n) for stage, reasons in stats.rejections.items() for reason, n in reasons.items()]
    stages = list(stats.rejections)
    palette = ["#C44E52", "#DD8452", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD"]
    colour = {s: palette[i % len(palette)] for i, s in enumerate(stages)}
    with figure(path, height=max(3.0, 0.4 * len(rows) + 1.5)) as (fig, ax):
        y = np.arange(len(rows))
        ax.barh(y, [n for _, _, n in rows], color=[colour[s] for s, _, _ in rows])
        ax.set_yticks(y, [f"{reason}  [{stage}]" for stage, reason, _ in rows], fontsize=8)
        ax.invert_yaxis()
        for yi, (_, _, n) in zip(y, rows, strict=True):
            ax.annotate(f"{n:,}", (n, yi), va="center", fontsize=8, xytext=(3, 0), textcoords="offset points")
        ax.set_xlabel("count (an item rejected for several reasons counts under each)")
        _integer_ticks(ax.xaxis)
        ax.set_title("Rejection reasons by stage")
        ax.margins(x=0.1)
    return path


def hubs_plot(stats: RunStats, path: Path, top: int = 20) -> Path:
    """The highest-degree removed hubs, each labelled with its pruning round and shortcut load."""
    hubs = stats.hubs[:top]
    with figure(path, width=9, height=max(3.0, 0.32 * len(hubs) + 1.5)) as (fig, ax):
        y = np.arange(len(hubs))
        degrees = [int(h.get("degree") or 0) for h in hubs]
        ax.barh(y, degrees, color="#4C72B0")
        ax.set_yticks(y, [f"{_short(h.get('name') or h.get('id'))} ({h.get('type')})" for h in hubs], fontsize=8)
        ax.invert_yaxis()
        for yi, degree, hub in zip(y, degrees, hubs, strict=True):
            notes = []
            if hub.get("round") is not None:
                notes.append(f"round {hub['round']}")
            if hub.get("shortcut_load") is not None:
                notes.append(f"load {float(hub['shortcut_load']):.1%}")
            ax.annotate(", ".join(notes), (degree, yi), va="center", fontsize=7, xytext=(3, 0), textcoords="offset points")
        ax.set_xlabel("degree in the full graph")
        ax.xaxis.set_major_formatter("{x:,.0f}")
        ax.set_title(f"Hubs removed by pruning (top {len(hubs)} of {len(stats.hubs):,} by degree)")
        ax.margins(x=0.2)
    return path


def cost_plot(stats: RunStats, path: Path) -> Path:
    """Prompt and completion tokens per writer/model, with the cost on each bar."""
    usage = stats.usage
    labels = [f"{w}\n{m}" for w, m in zip(usage["writer"], usage["model"], strict=True)]
    x = np.arange(len(labels))
    with figure(path, width=max(5.0, 1.6 * len(labels) + 2)) as (fig, ax):
        prompt = usage["prompt_tokens"].to_numpy()
        completion = usage["completion_tokens"].to_numpy()
        ax.bar(x, prompt, color="#4C72B0", label="prompt tokens")
        ax.bar(x, completion, bottom=prompt, color="#DD8452", label="completion tokens")
        for xi, total, cost, items in zip(x, prompt + completion, usage["cost_usd"], usage["items"], strict=True):
            ax.annotate(f"${cost:,.4f}\n{items:,} items", (xi, total), ha="center", va="bottom", fontsize=8,
                        xytext=(0, 3), textcoords="offset points")
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_ylabel("tokens")
        ax.yaxis.set_major_formatter("{x:,.0f}")
        ax.set_title("Token usage and cost by writer and model")
        ax.legend(fontsize=8)
        ax.margins(y=0.25)
    return path


def difficulty_plot(stats: RunStats, path: Path) -> Path:
    """Left: the answering models' accuracy by hops. Right: their accuracy by feature level (thirds of the
    feature score). Without models: the mean feature score by hops, and items per level."""
    d = stats.difficulty
    assert d is not None
    with figure(path, width=12, height=4.5, ncols=2) as (fig, (left, right)):
        if d.accuracy_by_hops:
            for name, by_hops in d.accuracy_by_hops.items():
                hops = sorted(by_hops)
                bold = name == "all models"
                left.plot(hops, [by_hops[h] for h in hops], marker="o", linewidth=2.5 if bold else 1.2,
                          color="#333333" if bold else None, label=name)  # fmt: skip
            left.set_ylabel("share of answers right")
            left.set_ylim(0, 1.05)
            left.set_title("Model accuracy by hops")
            left.legend(fontsize=8)
            levels = list(d.items_by_level)
            x = np.arange(len(levels))
            names = list(d.accuracy_by_level)
            width = 0.8 / max(len(names), 1)
            for k, name in enumerate(names):
                values = [d.accuracy_by_level[name].get(level, 0) for level in levels]
                right.bar(x + (k - (len(names) - 1) / 2) * width, values, width=width, label=name,
                          color="#333333" if name == "all models" else None)  # fmt: skip
            right.set_xticks(x, [f"{level}\n({d.items_by_level[level]:,} items)" for level in levels])
            right.set_ylabel("share of answers right")
            right.set_ylim(0, 1.05)
            right.set_xlabel("feature difficulty (thirds of the feature score)")
            right.set_title("Model accuracy by feature difficulty")
            right.legend(fontsize=8)
        else:
            hops = sorted(d.feature_by_hops)
            left.bar([str(h) for h in hops], [d.feature_by_hops[h] for h in hops], color="#8172B3")
            left.set_ylabel("mean feature score (0 easy, 1 hard)")
            left.set_title("Feature difficulty by hops (no answering models)")
            levels = d.levels["accepted"]
            right.bar(list(levels), list(levels.values()), color="#55A868")
            right.set_ylabel("items")
            _integer_ticks(right.yaxis)
            right.set_title("Items per difficulty level")
        left.set_xlabel("hops (edges from an anchor to the answer)")
        _integer_ticks(left.xaxis)
    return path


def _integer_ticks(axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
