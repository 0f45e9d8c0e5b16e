"""Train/validation/test splits that cannot leak.

Items that share an answer entity or a path signature (the same triples, walked
either way) are joined into one group, and a group goes to exactly one split, so
no answer entity and no path appears in two splits. Groups are placed with a
seeded shuffle, largest first, each into the split furthest below its target.

A hop split (`{"train": [1, 2, 3], "test": [4, 5]}`) first sends each item to
the splits listing its hop count. Splits with the same hop list share that pool
by their ratios; hop lists must be equal or disjoint. A group whose items fall
into two pools keeps the pool holding most of them (on a tie, the pool with
fewer items overall, which is usually the scarcer long-hop test set); its other
items are left out and counted, never silently dropped.

Stratified splits (`stratify=True`, e.g. by difficulty level) give every split each
stratum in its ratio: each group goes to the split furthest below its targets for
the strata of the group's items (the deficits weighted by how many items of each
stratum the group holds). Groups stay whole, so stratifying never puts one answer
or path in two splits.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kgsynth.errors import ConfigError

SPLITS = ("train", "validation", "test")

LEFT_OUT_HOPS = "hops not in any split of the hop split"
LEFT_OUT_LEAK = "shares an answer or path with items of another hop split"


@dataclass(frozen=True)
class SplitKey:
    """What an item contributes to leakage: its answer entity and its path signature."""

    item_id: str
    answer_id: str
    path_signature: str
    hops: int
    stratum: str | None = None  # e.g. the difficulty level, for stratified splits


@dataclass
class SplitPlan:
    split_of: dict[str, str]  # item id → split
    left_out: dict[str, str] = field(default_factory=dict)  # item id → reason
    groups: int = 0
    ratios: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    hop_split: dict[str, list[int]] | None = None
    stratified: bool = False

    def counts(self) -> dict[str, int]:
        counted = Counter(self.split_of.values())
        return {s: counted[s] for s in SPLITS if counted[s]}

    def left_out_counts(self) -> dict[str, int]:
        return dict(Counter(self.left_out.values()))


def check_ratios(ratios: Sequence[float]) -> dict[str, float]:
    if len(ratios) != 3 or any(r < 0 for r in ratios) or not sum(ratios) > 0:
        raise ConfigError(
            f"split ratios must be three non-negative numbers (train, validation, test) with a positive sum, "
            f"got {tuple(ratios)!r}; e.g. 0.8,0.1,0.1"
        )
    total = float(sum(ratios))
    return {s: r / total for s, r in zip(SPLITS, ratios, strict=True)}


def check_hop_split(hop_split: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
    unknown = sorted(set(hop_split) - set(SPLITS))
    if unknown or not hop_split:
        raise ConfigError(
            f"hop split names must be among {', '.join(SPLITS)}, got {sorted(hop_split)!r}; "
            'e.g. {"train": [1, 2, 3], "test": [4, 5]}'
        )
    clean = {s: sorted({int(h) for h in hops}) for s, hops in hop_split.items()}
    for split, hops in clean.items():
        if not hops or hops[0] < 1:
            raise ConfigError(f"hop split '{split}' needs hop counts of at least 1, got {hops!r}")
    names = list(clean)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = set(clean[a]) & set(clean[b])
            if shared and clean[a] != clean[b]:
                raise ConfigError(
                    f"hop splits '{a}' {clean[a]} and '{b}' {clean[b]} overlap without being equal; "
                    "give splits either the same hop list (they share it by ratio) or disjoint ones"
                )
    return clean


def parse_hop_split(text: str) -> dict[str, list[int]]:
    """`train=1-3,test=4-5` (or `train=1,2,3;test=4,5`) → {"train": [1, 2, 3], "test": [4, 5]}."""
    result: dict[str, list[int]] = {}
    split = None
    for token in text.replace(";", ",").split(","):
        token = token.strip()
        if "=" in token:
            split, _, token = token.partition("=")
            split = split.strip()
            result.setdefault(split, [])
        if not token:
            continue
        if split is None:
            raise ConfigError(f"hop split {text!r}: expected SPLIT=HOPS, e.g. train=1-3,test=4-5")
        low, dash, high = token.partition("-")
        try:
            hops = range(int(low), int(high) + 1) if dash else [int(low)]
        except ValueError:
            raise ConfigError(f"hop split {text!r}: {token!r} is not a hop count or range like 1-3") from None
        result[split].extend(hops)
    return check_hop_split(result)


def plan_splits(
    keys: Sequence[SplitKey],
    *,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    hop_split: Mapping[str, Sequence[int]] | None = None,
    stratify: bool = False,
) -> SplitPlan:
    weights = check_ratios(ratios)
    hops_of_split = check_hop_split(hop_split) if hop_split is not None else None
    plan = SplitPlan(split_of={}, ratios=weights, seed=seed, hop_split=hops_of_split, stratified=stratify)

    # Pools: splits sharing one hop list (without a hop split, one pool of all splits).
    if hops_of_split is None:
        pools = [tuple(s for s in SPLITS if weights[s] > 0)]
        pool_of_hops: dict[int, int] | None = None
    else:
        hop_lists = sorted({tuple(h) for h in hops_of_split.values()})
        pools = [tuple(s for s in SPLITS if tuple(hops_of_split.get(s, ())) == hl) for hl in hop_lists]
        pool_of_hops = {h: p for p, hl in enumerate(hop_lists) for h in hl}

    pool_of: dict[str, int] = {}
    for key in keys:
        if pool_of_hops is None:
            pool_of[key.item_id] = 0
        elif key.hops in pool_of_hops:
            pool_of[key.item_id] = pool_of_hops[key.hops]
        else:
            plan.left_out[key.item_id] = LEFT_OUT_HOPS

    groups = _groups([k for k in keys if k.item_id in pool_of])
    plan.groups = len(groups)
    pool_sizes = Counter(pool_of.values())
    members: dict[int, list[list[str]]] = defaultdict(list)
    for group in groups:
        by_pool = Counter(pool_of[i] for i in group)
        keep = min(by_pool, key=lambda p: (-by_pool[p], pool_sizes[p], p))
        kept = [i for i in group if pool_of[i] == keep]
        for i in group:
            if pool_of[i] != keep:
                plan.left_out[i] = LEFT_OUT_LEAK
        members[keep].append(kept)

    stratum_of = {k.item_id: k.stratum or "" for k in keys}
    rng = random.Random(seed)
    for p, splits in enumerate(pools):
        pool_groups = sorted(members.get(p, []))
        rng.shuffle(pool_groups)
        pool_groups.sort(key=len, reverse=True)  # stable: the shuffle decides among equal sizes
        # each split's target per stratum (one stratum of all items when not stratified)
        strata = Counter(stratum_of[i] if stratify else "" for g in pool_groups for i in g)
        targets = {s: {k: n * _pool_weight(s, splits, weights) for k, n in strata.items()} for s in splits}
        placed = {s: dict.fromkeys(strata, 0) for s in splits}
        for group in pool_groups:
            counts = Counter(stratum_of[i] if stratify else "" for i in group)
            split = max(splits, key=lambda s: sum(n * (targets[s][k] - placed[s][k]) for k, n in counts.items()))
            for k, n in counts.items():
                placed[split][k] += n
            for item_id in group:
                plan.split_of[item_id] = split
    return plan


def _pool_weight(split: str, splits: Sequence[str], weights: Mapping[str, float]) -> float:
    """A split's share of its hop pool; a pool whose splits all have ratio 0 shares equally."""
    total = sum(weights[s] for s in splits)
    return weights[split] / total if total else 1.0 / len(splits)


def _groups(keys: Sequence[SplitKey]) -> list[list[str]]:
    """Connected groups of items linked by a shared answer entity or path signature."""
    parent = list(range(len(keys)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, key in enumerate(keys):
        for link in (("answer", key.answer_id), ("path", key.path_signature)):
            if link in first:
                a, b = find(i), find(first[link])
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                first[link] = i
    grouped: dict[int, list[str]] = defaultdict(list)
    for i, key in enumerate(keys):
        grouped[find(i)].append(key.item_id)
    return [sorted(g) for g in grouped.values()]
