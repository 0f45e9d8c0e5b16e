"""`pattern`: walks that follow a relation/type template (a metapath).

A template reads like the `pattern` column it produces:

    drug -indication-> disease -phenotype_present-> phenotype
    phenotype <-has_phenotype- disease -*- gene

Node positions name a type, `a|b` for any of several, or `*`; hops are `-r->`
(along the stored edge), `<-r-` (against it) or `-r-` (either way), where r is a
relation, `a|b`, or `*`. Symmetric relations match either way. With several
templates, n is split evenly between them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from kgsynth.errors import ConfigError
from kgsynth.graph.engine import Engine
from kgsynth.sample import SAMPLERS
from kgsynth.sample.batch import PathBatch
from kgsynth.sample.collect import Collected, Quotas, collect, share_cap, split_hops
from kgsynth.sample.params import Exclude, excluded_mask
from kgsynth.sample.walk import start_pool, to_batch
from kgsynth.sample.walks import build_view, pick_starts, relation_mask, type_mask, walk

_HOP = re.compile(r"^(<)?-([^<>\s]+?)-(>)?$")


@dataclass(frozen=True)
class Hop:
    relations: tuple[str, ...] | None  # None: any relation
    forward: bool | None  # None: either direction


@dataclass(frozen=True)
class Template:
    text: str
    types: tuple[tuple[str, ...] | None, ...]  # per position; None: any type
    hops: tuple[Hop, ...]


def parse_template(text: str) -> Template:
    """Parse 'drug -indication-> disease <-r- x'; errors quote the token and say the syntax."""
    tokens = text.split()
    if len(tokens) < 3 or len(tokens) % 2 == 0:
        raise ConfigError(
            f"pattern {text!r}: expected 'type -relation-> type …' (types and hops alternating, "
            "at least one hop)"
        )
    types = tuple(None if t == "*" else tuple(t.split("|")) for t in tokens[0::2])
    hops = []
    for token in tokens[1::2]:
        match = _HOP.match(token)
        if not match or (match.group(1) and match.group(3)):
            raise ConfigError(f"pattern {text!r}: hop {token!r} should be -relation->, <-relation- or -relation-")
        name = match.group(2)
        forward = True if match.group(3) else False if match.group(1) else None
        hops.append(Hop(None if name == "*" else tuple(name.split("|")), forward))
    return Template(text, types, tuple(hops))


def hop_key_mask(engine: Engine, hop: Hop) -> np.ndarray:
    """Hop keys a template hop allows: its relations in its direction (both for symmetric ones)."""
    relations = relation_mask(engine, None if hop.relations is None else list(hop.relations))
    along = relations & ((hop.forward is not False) | np.asarray(engine.symmetric))
    against = relations & ((hop.forward is not True) | np.asarray(engine.symmetric))
    return np.concatenate([along, against])


@SAMPLERS.register("pattern")
def sample_patterns(
    engine: Engine,
    n: int,
    rng: np.random.Generator,
    *,
    patterns: str | Iterable[str],
    exclude: Exclude = None,
    tries: int = 6,
    max_per_answer_type: float | None = None,
    advance: Callable[[int], None] | None = None,
) -> Collected:
    """n walks following the templates, split evenly between them."""
    templates = [parse_template(p) for p in ([patterns] if isinstance(patterns, str) else list(patterns))]
    if not templates:
        raise ConfigError("pattern: give at least one template, e.g. 'drug -indication-> disease'")
    excluded = excluded_mask(engine, exclude)
    uses = np.zeros(engine.n_nodes, dtype=np.float64)
    result = Collected(batches=[])
    for template, share in zip(templates, split_hops(n, list(range(len(templates)))).values(), strict=True):
        views = [
            build_view(
                engine,
                keys=hop_key_mask(engine, hop),
                neighbour_types=type_mask(engine, types) if (types := template.types[i + 1]) else None,
                excluded=excluded,
            )
            for i, hop in enumerate(template.hops)
        ]
        pool = start_pool(engine, views[0], template.types[0], excluded, "start type")

        def draw(_: int | None, size: int, views=views, pool=pool) -> tuple[list[PathBatch], Counter]:
            walked = walk(views, pick_starts(pool, uses, size, rng), rng, tries=tries)
            return [to_batch(walked, views)], Counter(dead_end=walked.dead_end, stuck=walked.stuck)

        def accepted(batch: PathBatch) -> None:
            uses[:] += np.bincount(batch.nodes[:, 0], minlength=engine.n_nodes)

        quotas = Quotas({len(template.hops): share}, max_per_answer_type=share_cap(max_per_answer_type, share))
        part = collect(engine, quotas, draw, accepted=accepted, advance=advance)
        result.batches += part.batches
        result.rejections.update(part.rejections)
        if part.shortfall:
            result.extra.setdefault("shortfall_by_template", {})[template.text] = sum(part.shortfall.values())
            result.shortfall[len(template.hops)] = result.shortfall.get(len(template.hops), 0) + sum(part.shortfall.values())
    return result
