"""The dataset card: README.md with the YAML metadata the Hub reads, and a body that
says exactly how the dataset was made (source graph, pruning, sampling, writer,
prompts, verification with acceptance rates and rejection reasons) and how to cite it.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import yaml

from kgsynth.export.build import LEFT_OUT_REVIEW, Prepared
from kgsynth.export.markdown import percent, table
from kgsynth.export.redact import REDACTED, is_secret_name, redact
from kgsynth.export.splits import LEFT_OUT_HOPS
from kgsynth.export.stats import RunStats
from kgsynth.graph.snapshot import SourceInfo

# Licence ids the Hub knows, as the card's `license:` field spells them.
HUB_LICENSES = {
    "apache-2.0", "mit", "bsd-2-clause", "bsd-3-clause", "gpl-3.0", "lgpl-3.0", "mpl-2.0",
    "cc0-1.0", "cc-by-2.0", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0",
    "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-4.0",
    "odc-by", "odbl", "pddl", "openrail", "unlicense", "other", "unknown",
}
UMLS_LICENSE_LINK = "https://www.nlm.nih.gov/research/umls/knowledge_sources/metathesaurus/release/license_agreement.html"
UMLS_NOTE = (
    "Items are derived from the UMLS Metathesaurus. Everyone who receives them needs their own UMLS "
    "licence (free from the U.S. National Library of Medicine), and some UMLS source vocabularies carry "
    "further restrictions. Do not publish this dataset openly unless your licence allows it; keep the Hub "
    "repository private or gated to UMLS licensees."
)
_CC = re.compile(r"creativecommons\.org/(?:licenses/(?P<kind>[a-z-]+)/(?P<ver>\d\.\d)|publicdomain/zero/1\.0)")


@dataclass(frozen=True)
class CardLicense:
    license: str  # a Hub licence id, "other" or "unknown"
    name: str | None = None  # license_name, for "other"
    link: str | None = None  # license_link, for "other"
    note: str = ""


def card_license(info: SourceInfo | None) -> CardLicense:
    """The card's licence fields, derived from the source graph's recorded licence."""
    if info is None or not (info.license or "").strip():
        return CardLicense(
            "unknown",
            note="The source graph's licence was not recorded in its snapshot manifest; "
            "check it before you redistribute this dataset.",
        )
    text = info.license.strip()
    lower = text.lower()
    is_url = lower.startswith(("http://", "https://"))
    if "umls" in (info.name or "").lower() or "umls" in lower:
        return CardLicense("other", "umls-license", text if is_url else UMLS_LICENSE_LINK, UMLS_NOTE)
    if (match := _CC.search(lower)) is not None:
        spdx = f"cc-{match['kind']}-{match['ver']}" if match["kind"] else "cc0-1.0"
        if spdx in HUB_LICENSES:
            return CardLicense(spdx, link=text)
    if lower in HUB_LICENSES:
        return CardLicense(lower)
    if "hpo.jax.org" in lower:
        return CardLicense(
            "other", "hpo-license", text,
            "The Human Phenotype Ontology is free to use with attribution (see the licence link); "
            "keep the attribution text below when you redistribute.",
        )
    if is_url:
        host = urlparse(text).netloc.removeprefix("www.")
        return CardLicense("other", _slug(f"{host}-license"), text)
    return CardLicense("other", _slug(text), info.url, f"The source graph is licensed as: {text}.")


def size_category(n: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < bound:
            return label
    return "10M<n<100M"


@dataclass
class SplitFiles:
    """What the card says about one configuration's files."""

    patterns: dict[str, str]  # split → data_files glob relative to the repository root
    examples: dict[str, int]  # split → rows
    num_bytes: dict[str, int]  # split → Arrow bytes
    download_size: int  # parquet bytes


def render_card(
    prepared: Prepared,
    stats: RunStats,
    files: dict[str, SplitFiles],
    *,
    repo_id: str | None = None,
    formats: tuple[str, ...] = ("parquet",),
) -> str:
    """README.md: YAML metadata block, then the description. Every line passes through `redact`."""
    from kgsynth import __version__

    metadata = _metadata(prepared, stats, files)
    body = _body(prepared, stats, files, repo_id=repo_id, formats=formats, version=__version__)
    text = "---\n" + yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, width=1000) + "---\n\n" + body
    return redact(text)


def card_metadata(card_text: str) -> dict[str, Any]:
    """The YAML block of a card (what the Hub reads)."""
    match = re.match(r"^---\n(.*?)\n---\n", card_text, flags=re.DOTALL)
    if match is None:
        return {}
    return yaml.safe_load(match.group(1)) or {}


def _source(prepared: Prepared) -> SourceInfo | None:
    snapshot = prepared.inputs.snapshot
    return snapshot.manifest.source_info if snapshot is not None else None


def _metadata(prepared: Prepared, stats: RunStats, files: dict[str, SplitFiles]) -> dict[str, Any]:
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCardData

    from kgsynth.export.rows import FEATURES

    source = _source(prepared)
    lic = card_license(source)
    total = sum(len(rows) for rows in prepared.rows.values())
    snapshot_name = prepared.inputs.snapshot.name if prepared.inputs.snapshot else None
    tags = ["biomedical", "knowledge-graph", "multi-hop-reasoning", "reasoning", "synthetic", "kgsynth"]
    tags += [t for t in (snapshot_name,) if t and t not in tags]
    data: dict[str, Any] = {
        "pretty_name": _pretty_name(prepared),
        "license": lic.license,
    }
    if lic.license == "other":
        data["license_name"] = lic.name
        if lic.link:
            data["license_link"] = lic.link
    data |= {
        "language": ["en"],
        "task_categories": ["question-answering", "text-generation"],
        "size_categories": [size_category(total)],
        "tags": tags,
    }
    if files:
        data["configs"] = [
            {
                "config_name": config,
                **({"default": True} if config == "default" else {}),
                "data_files": [{"split": split, "path": pattern} for split, pattern in f.patterns.items()],
            }
            for config, f in files.items()
        ]
        infos = DatasetInfosDict(
            {
                config: DatasetInfo(
                    features=FEATURES[config],
                    splits=SplitDict(
                        {s: SplitInfo(name=s, num_bytes=f.num_bytes[s], num_examples=f.examples[s]) for s in f.examples}
                    ),
                    download_size=f.download_size,
                    dataset_size=sum(f.num_bytes.values()),
                )
                for config, f in files.items()
            }
        )
        card_data = DatasetCardData()
        infos.to_dataset_card_data(card_data)
        data["dataset_info"] = card_data.to_dict()["dataset_info"]
    return data


def _pretty_name(prepared: Prepared) -> str:
    source = _source(prepared)
    name = source.name if source is not None else prepared.inputs.accepted["provenance"][0]["snapshot_name"]
    return f"{name}: multi-hop reasoning questions (kgsynth)"


def _body(
    prepared: Prepared,
    stats: RunStats,
    files: dict[str, SplitFiles],
    *,
    repo_id: str | None,
    formats: tuple[str, ...],
    version: str,
) -> str:
    inputs = prepared.inputs
    source = _source(prepared)
    lic = card_license(source)
    first = inputs.accepted.row(0, named=True)["provenance"]
    snapshot_name = inputs.snapshot.name if inputs.snapshot else first["snapshot_name"]
    snapshot_hash = inputs.snapshot.hash if inputs.snapshot else first["snapshot_hash"]
    total = sum(len(rows) for rows in prepared.rows.values())
    where = repo_id or "PATH/TO/THIS/FOLDER"
    out: list[str] = [f"# {_pretty_name(prepared)}", ""]
    out.append(
        f"{total:,} multi-hop questions with thinking paths, generated by "
        f"kgsynth {version} from the knowledge graph "
        f"**{source.name if source else snapshot_name}**"
        + (f" (version {source.version})" if source and source.version else "")
        + f" and checked against it. Every row carries the graph triples it rests on "
        f"(`path_nodes`, `path_edges`), the verification verdicts, and its provenance "
        f"(snapshot hash `{snapshot_hash[:16]}`, sampler and seed, prompt and model)."
    )
    out += ["", "## Loading", "", "```python", "from datasets import load_dataset", ""]
    for config in files or {"default": None}:
        out.append(f'{config} = load_dataset("{where}", "{config}")')
    out += ["```", ""]
    if "sft" in files:
        out += [
            "The `sft` configuration is in the conversational format TRL's `SFTTrainer` reads "
            "(`messages` with a user question and an assistant answer whose reasoning is inside "
            "`<think>…</think>`); `mcq` has the question, lettered options and the answer letter.",
            "",
        ]
    if "dag" in files:
        out += [*_dag_section(prepared), ""]
    if not files:
        out += ["This export has no parquet files; load the copies under `disk/` with `datasets.load_from_disk`.", ""]
    extra = [f for f in formats if f != "parquet"]
    if extra:
        out += [
            "The exported folder also holds "
            + " and ".join({"disk": "`disk/<config>` (`datasets.load_from_disk`)",
                            "jsonl": "`jsonl/<config>/<split>.jsonl`"}[f] for f in extra)
            + "; only the parquet files and this card are published to the Hub.",
            "",
        ]

    out += ["## Configurations and splits", ""]
    rows = [[config, *(f.examples.get(s, 0) for s in ("train", "validation", "test"))] for config, f in files.items()]
    if rows:
        out += [table(["config", "train", "validation", "test"], rows), ""]
    plan = prepared.plan
    if plan.hop_split:
        out.append(
            "Splits are **hop-stratified**: "
            + ", ".join(f"`{s}` has {', '.join(map(str, h))}-hop items" for s, h in plan.hop_split.items())
            + " (splits with the same hop list share it by ratio)."
        )
    out.append(
        f"Splits cannot leak: items sharing an answer entity or a path signature (the same set of triples, "
        f"walked either way) form one group ({plan.groups:,} groups), and each group lies in one split. "
        f"Ratios train/validation/test {', '.join(f'{plan.ratios[s]:.2f}' for s in ('train', 'validation', 'test'))}, "
        f"seed {plan.seed}. No answer entity and no path signature appears in two splits; the "
        f"configurations share the split of each item."
    )
    counts = {reason: n for reason, n in plan.left_out_counts().items() if reason != LEFT_OUT_REVIEW}
    if counts:
        out.append(
            "Left out to keep splits disjoint: "
            + "; ".join(f"{n:,} item(s): {reason}" for reason, n in counts.items())
            + ("." if LEFT_OUT_HOPS not in counts else ". (Their hop counts are not in the hop split.)")
        )
    out += ["", "Hops per split:", ""]
    hop_values = sorted({h for split in plan.counts() for h in stats.hops.get(split, {})})
    out += [
        table(["split", *map(str, hop_values)],
               [[split, *(stats.hops[split].get(h, 0) for h in hop_values)] for split in plan.counts()]),
        "",
    ]

    out += [*difficulty_section(stats, curriculum=prepared.curriculum, stratified=plan.stratified), ""]

    out += ["## Fields (default configuration)", "", _FIELDS, ""]

    out += ["## How it was made", "", "### Source graph", ""]
    if source is not None:
        m = inputs.snapshot.manifest
        out += [
            f"- **{source.name}**" + (f", version {source.version}" if source.version else "")
            + (f", <{source.url}>" if source.url else ""),
            f"- licence: {source.license or 'not recorded'}",
            f"- snapshot `{m.name}` (loader `{m.loader}`), content hash `{m.hash}`, "
            f"{m.counts.nodes:,} nodes, {m.counts.edges:,} edges",
            "- relations: " + ", ".join(f"`{r}` ({n:,})" for r, n in m.counts.relations.items()),
        ]
        if m.sources:
            out.append("- source files: " + ", ".join(f"`{s.path.rsplit('/', 1)[-1]}` (sha256 `{s.sha256[:16]}`)" for s in m.sources))
        if m.dropped:
            out.append("- rows skipped on loading: " + "; ".join(f"{n:,} {reason}" for reason, n in m.dropped.items()))
    else:
        out.append(f"- snapshot `{snapshot_name}`, content hash `{snapshot_hash}` (from the items' provenance)")
    out += ["", "### Hub pruning", ""]
    if inputs.pruned is not None:
        pm = inputs.pruned.manifest
        out += [f"Paths were sampled from the pruned snapshot `{pm.name}` (hash `{pm.hash[:16]}`, "
                f"{pm.counts.nodes:,} nodes, {pm.counts.edges:,} edges).", ""]
    if inputs.hubs is not None:
        hubs = stats.hubs
        params = inputs.hubs.get("params")
        out.append(
            f"{len(hubs):,} hub node(s) removed before sampling"
            + (f" with parameters `{json.dumps(params, sort_keys=True)}`" if params else "")
            + (f" (parameters hash `{inputs.hubs['params_hash']}`)" if inputs.hubs.get("params_hash") else "")
            + ". Pruning decides what is asked, never what counts as true: verification used the full graph."
        )
        if stats.pruning_effect:
            out += ["", table(["", "before pruning", "after pruning"], stats.pruning_effect)]
        if hubs:
            out += ["", table(["id", "name", "type", "degree"],
                               [[h.get("id"), h.get("name"), h.get("type"), h.get("degree")] for h in hubs[:10]])]
            if len(hubs) > 10:
                out.append(f"\n… and {len(hubs) - 10:,} more, listed in the run's `pruned/hubs.json`.")
    elif inputs.pruned is None:
        out.append("No hub pruning was applied: paths were sampled from the full graph.")
    out += ["", "### Sampling", ""]
    out.append(
        "Sampler(s) and seeds: "
        + "; ".join(f"`{s}` (seed {', '.join(map(str, seeds))})" for s, seeds in stats.strategies.items())
        + (f". {inputs.paths:,} paths sampled." if inputs.paths is not None else ".")
    )
    out += ["", "### Writing", ""]
    usage = stats.usage
    out.append(
        table(["writer", "model", "items", "prompt tokens", "completion tokens", "cost (USD)", "cached"],
               [list(r) for r in usage.iter_rows()])
    )
    out += ["", "Prompts: " + "; ".join(f"`{p}` (hash {', '.join(f'`{h}`' for h in hs)})" for p, hs in stats.prompts.items())]
    if inputs.generate is not None:
        out += ["", *_details("Generation record (`generate.json`)", inputs.generate)]
    out += ["", "### Verification and acceptance", ""]
    out.append("Checks: " + (", ".join(f"`{c}`" for c in stats.checks) or "none recorded") + ".")
    out += ["", table(["stage", "counted", "in", "kept", "rate"],
                       [[s.name, s.what, s.entered, s.kept, percent(s.rate)] for s in stats.stages]), ""]
    if stats.rejections:
        out += ["Rejection reasons (an item rejected for several reasons counts under each):", "", table(
            ["stage", "reason", "count"],
            [[stage, reason, n] for stage, reasons in stats.rejections.items() for reason, n in reasons.items()],
        ), ""]
    else:
        out += ["No rejections were recorded.", ""]
    if inputs.summary is not None:
        out += [*_details("Verification summary (`summary.json`)", inputs.summary), ""]
    if prepared.reviews is not None:
        out += [*_review_section(prepared), ""]
    if stats.notes:
        out += ["### Not recorded", ""] + [f"- {note}" for note in stats.notes] + [""]

    out += ["## Licence and attribution", ""]
    out.append(
        f"Licence: `{lic.license}`" + (f" ({lic.name}, <{lic.link}>)" if lic.name and lic.link else "")
        + ". The questions and thinking paths restate facts of the source graph, so its licence applies."
    )
    if lic.note:
        out += ["", lic.note]
    if source is not None and source.attribution:
        out += ["", "Attribution:", "", "> " + source.attribution]

    out += ["", "## Limitations", "",
            "- Each question is grounded in one path of the graph; the graph can be incomplete or wrong, and "
            "other correct answers that the graph lacks are possible.",
            "- Distractors are graph hard negatives: nodes of the answer's type that the path does not reach, "
            "which does not prove they are false.",
            "- Verification checks the items against the graph, not against the literature.", ""]

    year = time.strftime("%Y")
    key = _slug(f"{snapshot_name}-kgsynth-{year}").replace("-", "_")
    howpublished = f"  howpublished = {{\\url{{https://huggingface.co/datasets/{repo_id}}}}},\n" if repo_id else ""
    out += ["## Citation", "", "```bibtex",
            f"@misc{{{key},\n  title = {{{_pretty_name(prepared)}}},\n{howpublished}"
            f"  note = {{Generated with kgsynth {version} from snapshot {snapshot_hash[:16]}}},\n  year = {{{year}}}\n}}",
            "```", ""]
    if source is not None and source.attribution:
        out += ["Please cite the source graph as well (see the attribution above).", ""]
    return "\n".join(out)


_FIELDS = table(
    ["field", "meaning"],
    [
        ["`id`", "stable item id (hash of path, kind and prompt)"],
        ["`kind`", "`mcq` (with `options`) or `open`"],
        ["`question`, `thinking`", "the question and the thinking path that answers it"],
        ["`options`", "label, text and node id of each option (empty for open questions)"],
        ["`answer`, `answer_id`, `answer_label`, `answer_type`", "the answer's name, node id, option letter and node type"],
        ["`hops`", "number of edges in the path"],
        ["`anchor`", "the node the question starts from (id, name, type)"],
        ["`path_nodes`", "the path's nodes in order, anchor first, answer last"],
        ["`path_edges`", "one per hop, `source` → `target` in path order; `direction` is `forward` when the graph stores "
                         "the triple as (source, relation, target), `inverse` when it stores (target, relation, source)"],
        ["`path_signature`", "hash of the set of stored triples; the split key together with `answer_id`"],
        ["`masked_bridges`", "intermediate nodes the question does not name"],
        ["`distractors`", "wrong options: node id, name and how they were chosen"],
        ["`verdicts`", "one per verification check: check, passed, reason code, detail"],
        ["`difficulty`", "how hard the item is: `score` (0 easy … 1 hard), `level` (easy, medium, hard), `source` "
                         "(`models` or `features`), `feature_score`, `accuracy` (share of answering models right) and "
                         "`models`, and the features (hops, steps, branches, degrees, rarity, distractor distance, overlap "
                         "and hardness, anchor distance, shortcut); null when not measured"],
        ["`plan`", "`dag` items: the plan's steps (id, kind `fact` or `join`, `depends_on`, the triple a fact step rests on "
                   "as `subject` -`relation`-> `object` with its `direction`, and the step's sentence); empty for other kinds"],
        ["`provenance`", "snapshot name and hash (full graph), hash of the sampled (pruned) snapshot, pruning "
                         "parameters hash, sampler and seed, writer, model, prompt name and hash, token usage and cost"],
    ],
)


def difficulty_section(stats: RunStats, *, curriculum: bool | None, stratified: bool = False, heading: bool = True) -> list[str]:
    """How difficulty was measured and what it shows: levels per split, the models' accuracy; then (unless
    `curriculum` is None: the report) how the splits use it."""
    d = stats.difficulty
    out = ["## Difficulty", ""] if heading else []
    if d is None:
        return [*out, "The items' difficulty was not measured (the difficulty stage did not run), so the "
                "`difficulty` fields are empty."]  # fmt: skip
    weights = ", ".join(f"{name} {w:g}" for name, w in d.weights.items())
    out.append(
        "Every item has a measured difficulty. Its **feature score** (0 easy … 1 hard) is the weighted mean "
        f"({weights}) of: the number of triples to chain (`steps`: min(steps − 1, 5) / 5); the rarity of its "
        "entities (1 − log(1 + degree) / log(1 + the graph's largest degree), averaged); distractor hardness (how "
        "close each distractor lies to the answer in the full graph, 1, 2 or 3+ hops, and the share of neighbours "
        "they have in common); and whether the full graph joins an anchor to the answer in fewer hops than the item "
        "(a shortcut makes it easier)."
    )
    if d.models:
        out.append(
            "Its **empirical difficulty** is the share of the answering models below that got the multiple-choice "
            "question wrong from the question and options alone; `score` is that where models answered, else the "
            "feature score. Items are ranked by score, ties broken by the feature score, then the item id, and the "
            "ranking is cut into thirds: easy, medium, hard."
        )
    else:
        out.append(
            "No answering models were configured, so `score` is the feature score. Items are ranked by it (ties: "
            "the item id) and the ranking is cut into thirds: easy, medium, hard."
        )
    out += ["", table(["", *d.levels["accepted"]], [[name, *(counts.get(level, 0) for level in d.levels["accepted"])]
                                                   for name, counts in d.levels.items()]), ""]  # fmt: skip
    if d.models:
        out += [table(["model", "items answered", "right", "accuracy"],
                      [[m["model"], m["items"], m["correct"], percent(m["accuracy"])] for m in d.models]), ""]  # fmt: skip
        hops = sorted({h for by in d.accuracy_by_hops.values() for h in by})
        out += ["Accuracy by hops, and by feature difficulty (thirds of the feature score):", "",
                table(["model", *(f"{h} hops" for h in hops), *d.items_by_level],
                      [[name, *(percent(d.accuracy_by_hops[name].get(h)) for h in hops),
                        *(percent(d.accuracy_by_level.get(name, {}).get(level)) for level in d.items_by_level)]
                       for name in d.accuracy_by_hops]), ""]  # fmt: skip
    if curriculum is None:
        return out
    out.append(
        "The train split is ordered **from easy to hard** (a curriculum): by score, ties broken by the feature "
        "score, then by item id; validation and test are in item-id order."
        if curriculum else "Rows are in item-id order (export with `--curriculum` to order the train split easy to hard)."
    )
    if stratified:
        out.append(
            "Splits are **stratified by difficulty**: each split holds every level in its ratio. Groups of items "
            "sharing an answer or a path stay whole (a group counts under its most common level), so no answer or "
            "path is in two splits; evaluate by level with the `difficulty` field."
        )
    return out


def _dag_section(prepared: Prepared) -> list[str]:
    """What the `dag` configuration holds, with its branch and step counts."""
    from collections import Counter

    from kgsynth.export.rows import dag_row, is_dag

    rows = [dag_row(r) for split in prepared.rows.values() for r in split if is_dag(r)]
    shapes = Counter((r["branches"], r["hops"]) for r in rows)
    out = [
        "### Reasoning plans (`dag`)",
        "",
        "The `dag` configuration holds items whose reasoning is a directed acyclic plan, MedVerse-style: two or "
        "three independent branches, each starting from an entity the question names, are established in parallel "
        "and joined at the answer. `plan` lists the steps: a `fact` step rests on one triple of the graph "
        "(`subject` -`relation`-> `object`, `direction` `forward` when the graph stores it that way, `inverse` when "
        "it stores it the other way round) and `depends_on` the step that found its subject (none for a leaf); the "
        "final `join` step depends on the last step of every branch and concludes at the answer. `plan_text` "
        "serialises it as the model should write it, and `messages` puts it inside `<think>…</think>`:",
        "",
        "```text",
        "<Plan>",
        "Step 1 (depends on: none): <first anchor> <relation> which <type>?",
        "Step 2 (depends on: 1): The <type> found in step 1 <relation> which <type>?",
        "…",
        "Step 5 (depends on: 2, 4): Which <answer type> do steps 2 and 4 both lead to?",
        "</Plan>",
        "<Execution>",
        "Step 1: <the triple of step 1 as a sentence>",
        "…",
        "Step 5: Steps 2 and 4 both lead to <answer>. So the <answer type> asked for is <answer>.",
        "</Execution>",
        "```",
        "",
        "Verification checked every plan as a graph (each step's triple in the full graph with its stored direction, "
        "the dependencies a DAG naming only steps the plan has, every leaf an entity the question names, the join "
        "reaching the answer from two or more branches, no unused step, the text saying exactly the plan) and then "
        "each branch as a path (answer, distractors, leaks, thinking). A distractor is wrong because at least one "
        "branch's relation pattern does not reach it.",
        "",
        table(["branches", "hops per branch", "items"], [[b, h, n] for (b, h), n in sorted(shapes.items())]),
    ]
    return out


def _review_section(prepared: Prepared) -> list[str]:
    """Expert review figures: items reviewed, the accepted share with its 95% interval, agreement."""
    from kgsynth.review.figures import review_figures

    inputs = prepared.inputs
    rejected_ids = inputs.rejected["id"].to_list() if inputs.rejected is not None else []
    figures = review_figures(prepared.reviews, inputs.accepted["id"].to_list(), rejected_ids)
    out = ["### Expert review", ""]
    if not figures.items_reviewed:
        return [*out, "Reviews were exported, but none decides an item that passed verification."]
    low, high = figures.interval
    sampled = f" through the stratified sample(s) {', '.join(f'`{s}`' for s in figures.samples)}" if figures.samples else ""
    out.append(
        f"Domain experts reviewed **{figures.items_reviewed:,}** of the {inputs.accepted.height:,} items that passed "
        f"verification{sampled} (`kgsynth review`; {len(figures.reviewers)} reviewer(s), {figures.decisions:,} decisions). "
        f"**{percent(figures.accepted_share)}** were accepted (95% Wilson interval {percent(low)}–{percent(high)}); "
        f"{figures.items_rejected:,} item(s) were rejected by at least one reviewer."
    )
    if not figures.samples:
        out.append("The reviewed items were not drawn as a sample (`kgsynth review --sample`), so the share describes them, "
                   "not necessarily the whole dataset.")
    if prepared.drop_rejected:
        dropped = prepared.plan.left_out_counts().get(LEFT_OUT_REVIEW, 0)
        out.append(f"Those {dropped:,} rejected item(s) are not in this dataset (`--drop-rejected`); the splits of the others are unchanged.")
    else:
        out.append("Items an expert rejected are still in this dataset (export with `--drop-rejected` to leave them out).")
    out += ["", table(["reviewer", "items decided", "accepted", "share"],
                       [[name, n, accepted, percent(accepted / n)] for name, n, accepted in figures.per_reviewer])]
    if figures.agreement:
        out += ["", "Agreement between reviewers on the items both decided (Cohen's kappa):", "", table(
            ["reviewers", "items", "same decision", "kappa"],
            [[" / ".join(a.reviewers), a.items, percent(a.observed),
              "undefined (one decision only)" if a.kappa is None else f"{a.kappa:.2f}"] for a in figures.agreement],
        )]
    else:
        out += ["", "No two reviewers decided the same item, so agreement between reviewers is not measured."]
    reviewed, accepted = figures.verifier_rejected
    if reviewed:
        out += ["", f"Of {reviewed:,} item(s) that verification rejected and an expert reviewed, the experts accepted {accepted:,}."]
    return out


def _details(title: str, record: dict[str, Any]) -> list[str]:
    """A run record as a folded JSON block (the Hub renders <details>)."""
    body = json.dumps(_public(record), indent=2, sort_keys=True)
    return [f"<details><summary>{title}</summary>", "", "```json", body, "```", "", "</details>"]


def _public(record: Any) -> Any:
    """A run record without secrets and local file locations (they mean nothing to readers of the card)."""
    if isinstance(record, dict):
        return {k: REDACTED if is_secret_name(k) else _public(v) for k, v in record.items() if not _is_local_path(v)}
    if isinstance(record, list):
        return [_public(v) for v in record if not _is_local_path(v)]
    return record


def _is_local_path(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    return value.startswith(("/", "~", "./", "../")) or re.match(r"^[A-Za-z]:\\", value) is not None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "license"
