"""Item kinds, chosen by name (`kinds: [mcq, open, dag]`): what one item is made from and asks.

A kind made from one path (`mcq`, `open`) gets one item per path; a kind made from
a group (`dag`) gets one item per convergent group, the rows of the paths table
sharing a `group_id` (the `convergent` sampler draws them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from kgsynth.errors import ConfigError
from kgsynth.registry import Registry


@dataclass(frozen=True)
class ItemKind:
    name: str
    unit: Literal["path", "group"]  # one item per path, or per convergent group of paths
    options: bool  # multiple choice: lettered options from the graph's hard negatives
    description: str


ITEM_KINDS: Registry[ItemKind] = Registry("item kind")

for _kind in (
    ItemKind("mcq", "path", True, "a multiple-choice question over one path; its thinking walks the path hop by hop"),
    ItemKind("open", "path", False, "an open question over one path whose pattern reaches the answer only"),
    ItemKind(
        "dag", "group", True,
        "a multiple-choice question over a convergent group (two or three paths from different anchors meeting "
        "at the answer); its thinking is a plan of steps with dependencies, one per triple, joined at the answer, "
        "then the execution of each step",
    ),
):
    ITEM_KINDS.register(_kind.name)(_kind)


def check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """The kinds asked for, each once, in order; unknown names are a ConfigError listing the known ones."""
    kinds = tuple(dict.fromkeys(kinds))
    if not kinds:
        raise ConfigError(f"no item kind given; choose from {', '.join(ITEM_KINDS.names())}")
    for kind in kinds:
        ITEM_KINDS.get(kind)
    return kinds
