"""Benchmark: questions per second for entity linking and path finding on the HPO graph (no model).

Questions are written from the graph itself, in the shapes exam questions take:
"A patient presents with P1, P2 and P3. Which disease is the most likely
diagnosis?" (four disease options), "Which gene is associated with D?" (four gene
options) and open "Which phenotype is a clinical feature of D?". Every entity is a
real HPO name, so the figures measure the work, not the misses.

    python bench/bench_ground.py --questions 2000
    python bench/bench_ground.py --questions 300 --embedding   # + embedding linking of paraphrases
    python bench/bench_ground.py --precision 300 --snapshot DIR  # embedding linker precision per threshold
    python bench/bench_ground.py --first-run --baseline /tmp/old  # first `kgsynth ground`, cold and warm, old vs new
    python bench/bench_ground.py --backends 50 --snapshot DIR    # numpy, torch, onnxruntime fp32 / int8

Linking and path finding are timed separately and together (what `kgsynth ground`
reports as questions/s for linking + path finding). One-off costs are printed on
their own: building the name dictionary, and with --embedding loading the model
and building the name index (node names themselves are embedded while linking, only
those the mentions reach, and cached beside the snapshot). Prints figures only, with
the load average, because the numbers are only as quiet as the machine.

`--first-run` times `kgsynth ground tests/data/qa_hpo.jsonl` (dictionary and embedding
linking) in a child process on a copy of the HPO snapshot without caches, then the
same command again (warm): wall, CPU, names embedded. With `--baseline DIR` (a
checkout of older code, e.g. `git worktree add --detach /tmp/old 51c3089`) the old
code runs beside this one, interleaved, on its own copy, and the accepted links of
the two cold runs are compared.

`--precision N` measures the embedding linker's precision at accept thresholds
0.80-0.95 on three labelled sets of N mentions built from the HPO names: a
phenotype's synonym with that exact string held out of the index (the link is
right when it reaches the term, or a node whose name has the same words: OMIM's
and HPO's namesakes), a phenotype or disease name with its first two words swapped
or its last word's number changed ("syndrome moebius", "fryns syndromes"; right:
the term or a namesake), and a word of a name that names no node
("phenylalanine", "stature"), where any link is wrong. Mentions are searched as
`kgsynth ground` searches: a trigram pool per mention, ranked by the model. With
`--baseline DIR` the baseline's own table is printed first (same mentions). Give
--snapshot a directory whose name vectors are cached: 3 × 300 mentions reach most of
the 59,311 names and synonyms.

`--backends N` compares ways to run the bundled model: what loading each costs in a
fresh process (imports and model), then 3,000 node names embedded by
sentence-transformers (torch), by the numpy forward pass `kgsynth ground` uses, and by
onnxruntime on the model exported by torch (fp32, and int8 weights): names/s, CPU, the
cosine to sentence-transformers' vectors, and each one's precision table on N mentions
per set. Needs `pip install onnxruntime onnx`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from kgsynth.graph.engine import open_engine
from kgsynth.graph.snapshot import Snapshot, read_snapshot, write_snapshot
from kgsynth.ground.link import LinkConfig, QALinker
from kgsynth.ground.paths import find_paths
from kgsynth.ground.qa import QAOption, QARecord


def hpo_snapshot(where: Path) -> Snapshot:
    from kgsynth.loaders import load

    if not (where / "manifest.json").exists():
        write_snapshot(load("hpo", []), where)
    return read_snapshot(where)


def make_questions(snapshot: Snapshot, n: int, seed: int, *, paraphrase: bool = False) -> list[QARecord]:
    """Exam-style questions from the graph; with `paraphrase`, the first phenotype of each
    diagnosis question has its first two words swapped ("pancreatic exocrine
    insufficiency"), which the dictionary cannot match and the embeddings should."""
    rng = random.Random(seed)
    nodes = snapshot.nodes.select("id", "name", "type")
    name = dict(zip(nodes["id"].to_list(), nodes["name"].to_list(), strict=True))
    edges = snapshot.edges
    has = (
        edges.filter(pl.col("relation") == "has_phenotype")
        .group_by("src")
        .agg(pl.col("dst").sort())
        .filter(pl.col("dst").list.len() >= 3)
        .sort("src")  # group_by's order varies: the same seed must give the same questions
    )
    genes = edges.filter(pl.col("relation") == "gene_associated_with_disease").sort("src", "dst")
    diseases = nodes.filter(pl.col("type") == "disease")["id"].to_list()
    gene_ids = nodes.filter(pl.col("type") == "gene")["id"].to_list()
    phenotype_rows = has.rows()
    gene_rows = genes.select("src", "dst").rows()
    records = []
    for i in range(n):
        shape = i % 3
        if shape == 0:
            disease, phenotypes = rng.choice(phenotype_rows)
            shown = [name[p] for p in rng.sample(phenotypes, 3)]
            words = shown[0].split()
            if paraphrase and len(words) >= 2:
                shown[0] = " ".join([words[1], words[0], *words[2:]]).lower()
            question = f"A patient presents with {shown[0]}, {shown[1]} and {shown[2]}. Which disease is the most likely diagnosis?"
            options = [disease, *rng.sample(diseases, 3)]
        elif shape == 1:
            gene, disease = rng.choice(gene_rows)
            question = f"Which gene is associated with {name[disease]}?"
            options = [gene, *rng.sample(gene_ids, 3)]
        else:
            disease, phenotypes = rng.choice(phenotype_rows)
            question = f"Which phenotype is a clinical feature of {name[disease]}?"
            options = [rng.choice(phenotypes)]
        answer = options[0]
        rng.shuffle(options)
        labelled = [QAOption(label=chr(65 + j), text=name[o]) for j, o in enumerate(options)] if len(options) > 1 else []
        records.append(QARecord(
            dataset_name="bench", id_in_dataset=str(i), question=question, options=labelled, answer=name[answer],
            answer_label=chr(65 + options.index(answer)) if labelled else None, row=i + 1,
        ))
    return records


THRESHOLDS = (0.80, 0.82, 0.84, 0.85, 0.86, 0.88, 0.90, 0.92, 0.95)


def labelled_mentions(snapshot: Snapshot, known: set[str], n: int, seed: int) -> dict[str, list[tuple[str, str | None, str]]]:
    """(mention, the node it names or None, that node's string it stands for) per set; see the module docstring. `known`: every
    casefolded name and synonym of the graph, which the dictionary would have matched."""
    from kgsynth.ground.link import QUESTION_WORDS
    from kgsynth.verify.text import COMMON_WORDS

    rng = random.Random(seed)
    rows = snapshot.nodes.filter(pl.col("type").is_in(["phenotype", "disease"])).select("id", "name", "type", "synonyms").rows()
    rng.shuffle(rows)
    sets: dict[str, list[tuple[str, str | None, str]]] = {"held-out synonym": [], "reordered or plural name": [], "part of a name, no node": []}
    held, changed, parts = sets.values()
    taken: set[str] = set()
    for node_id, name, node_type, synonyms in rows:
        words = name.split()
        if len(held) < n and node_type == "phenotype":
            own = [s.casefold() for s in synonyms or [] if s.casefold() != name.casefold()]
            if own:
                synonym = rng.choice(own)
                held.append((synonym, node_id, synonym))
                continue
        if len(changed) < n and len(words) >= 2:
            if rng.random() < 0.5:
                text = " ".join([words[1], words[0], *words[2:]]).casefold()
            else:
                last = words[-1]
                text = " ".join([*words[:-1], last[:-1] if last.endswith("s") else last + "s"]).casefold()
            if text not in known:
                changed.append((text, node_id, name))
                continue
        if len(parts) < n and len(words) >= 2:
            text = rng.choice(words).casefold().strip(",()")
            if (
                text.isalpha() and len(text) >= 4 and text not in COMMON_WORDS and text not in QUESTION_WORDS
                and not {text, text + "s", text.removesuffix("s")} & known
                and text not in taken
            ):
                taken.add(text)
                parts.append((text, None, ""))
    return sets


def measure_precision(snapshot: Snapshot, n: int, seed: int, names=None) -> None:
    """The precision table of embedding linking as `kgsynth ground` searches (trigram pool, then the model's cosine)."""
    import numpy as np

    from kgsynth.ground.embed import name_index
    from kgsynth.verify.text import normalize

    clock = time.perf_counter()
    names = names or name_index(snapshot)
    folded = np.array([t.casefold() for t in names.texts])
    words_of = {node_id: set() for node_id in names.node_ids}
    for node_id, text in zip(names.node_ids, names.texts, strict=True):
        words_of[node_id].add(" ".join(sorted(normalize(text).split())))
    sets = labelled_mentions(snapshot, set(folded.tolist()), n, seed)
    best: dict[str, list[tuple[float, bool, str, str]]] = {}  # set → (cosine, right, mention, text reached)
    for label, mentions in sets.items():
        texts = [m for m, _, _ in mentions]
        pools = names.candidates(texts)
        if label == "held-out synonym":  # that exact string is not in the index
            pools = [rows[folded[rows] != mention] for rows, mention in zip(pools, texts, strict=True)]
        reached = np.unique(np.concatenate(pools))
        vectors, reached_vectors = names.query_vectors(texts), names.row_vectors(reached)
        judged = []
        for i, (mention, gold, meant) in enumerate(mentions):
            if not len(pools[i]):
                judged.append((-1.0, False, mention, ""))  # no string shares a trigram: nothing to link
                continue
            scores = reached_vectors[np.searchsorted(reached, pools[i])] @ vectors[i]
            row = int(pools[i][int(np.argmax(scores))])
            right = gold is not None and (names.node_ids[row] == gold or " ".join(sorted(normalize(meant).split())) in words_of[names.node_ids[row]])
            judged.append((float(scores.max()), right, mention, names.texts[row]))
        best[label] = judged
    stats = names.cache.stats
    print(f"name index: {len(names.node_ids):,} names and synonyms; {stats.embedded:,} embedded for these mentions "
          f"(pool {names.pool} per mention), {stats.from_cache:,} read from the cache; {time.perf_counter() - clock:.1f}s")
    print(f"mentions: {', '.join(f'{label} {len(m)}' for label, m in sets.items())}")
    print_precision(best)


def print_precision(best: dict[str, list[tuple[float, bool, str, str]]]) -> None:
    print("accept | " + " | ".join(f"{label:>27}" for label in best) + " | precision | recall")
    for threshold in THRESHOLDS:
        cells, linked, right, positives = [], 0, 0, 0
        for label, judged in best.items():
            taken = [ok for score, ok, _, _ in judged if score >= threshold]
            good = sum(taken)
            cells.append(f"{good:4d} right {len(taken) - good:4d} wrong")
            linked, right = linked + len(taken), right + good
            positives += len(judged) if label != "part of a name, no node" else 0
        print(f"  {threshold:.2f} | " + " | ".join(f"{c:>27}" for c in cells) + f" | {right / max(linked, 1):9.3f} | {right / positives:6.3f}")
    for label, judged in best.items():
        wrong = sorted((j for j in judged if not j[1] and j[0] >= THRESHOLDS[0]), reverse=True)
        print(f"{label}: wrong links at or above {THRESHOLDS[0]}, e.g. " + "; ".join(
            f"'{mention}' -> '{text}' {score:.2f}" for score, _, mention, text in wrong[:: max(1, len(wrong) // 8)][:8]))


# --- the first run of `kgsynth ground`, this code beside a baseline checkout ------------------

REPO = Path(__file__).resolve().parent.parent
QA_FILE = REPO / "tests" / "data" / "qa_hpo.jsonl"
_CLI = "import sys; from kgsynth.cli import main; main(sys.argv[1:])"


def fresh_copy(snapshot: Path, to: Path) -> Path:
    """The snapshot without its caches (engine, name vectors): what `kgsynth load` leaves."""
    return Path(shutil.copytree(snapshot, to, ignore=shutil.ignore_patterns(".*")))


def timed_ground(code: Path, snapshot: Path, out: Path, qa: Path) -> dict:
    """`kgsynth ground` in a child process running the code at `code`: wall, CPU, peak RSS, what it reports."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    clock = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", _CLI, "ground", str(qa), "--snapshot", str(snapshot), "--out", str(out)],
                             cwd=code, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, errors = child.communicate()
    wall = time.perf_counter() - clock
    if child.returncode:
        raise SystemExit(f"kgsynth ground ({code}) failed:\n{errors}")
    summary = json.loads((out / "ground.json").read_text())
    return {"wall": wall, "summary": summary, "links": pl.read_parquet(out / "links.parquet")}


def first_run(snapshot: Path, baseline: Path | None, qa: Path) -> None:
    import resource

    codes = [("new", REPO)] + ([("old", baseline.resolve())] if baseline else [])
    with tempfile.TemporaryDirectory() as tmp:
        copies = {label: fresh_copy(snapshot, Path(tmp) / label / "snapshot") for label, _ in codes}
        runs = {}
        for phase in ("cold", "warm"):  # interleaved, so a change in the machine's load hits both
            for label, code in codes:
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                run = timed_ground(code, copies[label], Path(tmp) / label / f"out-{phase}", qa)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                run["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                run["rss_mb"] = after.ru_maxrss / 1024  # the largest child so far
                run["load"] = os.getloadavg()[0]
                runs[label, phase] = run
        questions = runs["new", "cold"]["summary"]["questions"]
        print(f"kgsynth ground {qa.name}: {questions} questions, embedding linking (dictionary,embedding), HPO snapshot "
              "copied without caches (cold: no name vectors, no engine cache; warm: the same command again)")
        print("code | cache | wall s | CPU s | link s | names embedded | from cache | accepted | load (1 min)")
        for (label, phase), run in runs.items():
            summary = run["summary"]
            names = summary.get("name_embeddings") or {}
            print(f"{label:>4} | {phase:>5} | {run['wall']:6.1f} | {run['cpu']:5.1f} | {summary['seconds']['link'] + summary['seconds']['setup']:6.1f} | "
                  f"{names.get('embedded', 'all' if phase == 'cold' else 0)!s:>14} | {names.get('from_cache', '-')!s:>10} | "
                  f"{summary['accepted']:8d} | {run['load']:.2f}")
        if baseline:
            accepted = {label: _accepted_links(runs[label, "cold"]["links"]) for label, _ in codes}
            same = accepted["new"] & accepted["old"]
            print(f"accepted links: {len(same)} the same, only old: {sorted(accepted['old'] - same)}, only new: {sorted(accepted['new'] - same)}")
        print(f"peak RSS of a child: {max(r['rss_mb'] for r in runs.values()):.0f} MB")


def baseline_precision(code: Path, snapshot: Path, n: int, seed: int, tmp: Path) -> None:
    """The baseline's own --precision table, on a copy of the snapshot (its cache layout is its own)."""
    copy = tmp / "baseline-precision" / "snapshot"
    shutil.copytree(snapshot, copy, ignore=lambda _, names: [n for n in names if n.startswith(".name-vectors-")])
    print(f"--- baseline {code}:", flush=True)
    subprocess.run([sys.executable, str(code / "bench" / "bench_ground.py"), "--precision", str(n), "--seed", str(seed), "--snapshot", str(copy)],
                   cwd=code, env={**os.environ, "PYTHONPATH": str(code)}, check=True)


# --- sentence-transformers (torch) against onnxruntime, from the bundled model's files only ----------


def onnx_encoders(where: Path) -> dict[str, object]:
    """Encoders that run the bundled model in onnxruntime: exported here with torch's TorchScript
    exporter (mean pooling and normalisation inside the graph, as the model's modules.json says),
    as is and with int8 weights (dynamic quantisation, per channel). Nothing is downloaded."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

    from kgsynth.verify.dedup import DedupConfig, model_path

    path = model_path(DedupConfig())
    model = SentenceTransformer(str(path), device="cpu")
    bert = model[0].auto_model.eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
            weight = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return torch.nn.functional.normalize((hidden * weight).sum(1) / weight.sum(1).clamp(min=1e-9), dim=1)

    inputs = ["input_ids", "attention_mask", "token_type_ids"]
    sample = model.preprocess(["arachnodactyly", "ectopia lentis of the eye"])
    fp32, int8 = where / "model.onnx", where / "model_int8.onnx"
    clock = time.perf_counter()
    with torch.inference_mode():
        torch.onnx.export(Pooled().eval(), tuple(sample[k] for k in inputs), str(fp32), input_names=inputs, output_names=["embedding"],
                          dynamic_axes={k: {0: "batch", 1: "tokens"} for k in inputs}, opset_version=17, dynamo=False)
    exported = time.perf_counter() - clock
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
    print(f"onnx: exported in {exported:.1f}s, int8 weights in {time.perf_counter() - clock - exported:.1f}s "
          f"({fp32.stat().st_size / 1e6:.0f} MB, {int8.stat().st_size / 1e6:.0f} MB)")
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads to 128; sentence-transformers pads to the batch's longest
    tokenizer.enable_truncation(model.max_seq_length)

    def encoder(file: Path):
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])

        def encode(texts: list[str]) -> np.ndarray:
            out = []
            for start in range(0, len(texts), 256):
                encoded = tokenizer.encode_batch(texts[start : start + 256])
                ids = np.zeros((len(encoded), max(len(e.ids) for e in encoded)), dtype=np.int64)
                mask = np.zeros_like(ids)
                for i, e in enumerate(encoded):
                    ids[i, : len(e.ids)], mask[i, : len(e.ids)] = e.ids, 1
                out.append(session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0])
            return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)

        return encode

    return {"onnxruntime fp32": encoder(fp32), "onnxruntime int8": encoder(int8)}


LOAD_SNIPPETS = {
    "numpy (NumpyBert, kept)": "from kgsynth.ground.embed import encode; encode(['warm up'])",
    "sentence-transformers (torch)": "from kgsynth.verify.dedup import DedupConfig, embed; embed(['warm up'], DedupConfig())",
    "onnxruntime (model exported once)": "import onnxruntime, tokenizers",
}


def load_cost(snippet: str) -> tuple[float, float]:
    """Wall and CPU seconds of a fresh interpreter that imports a backend and embeds one text."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    clock = time.perf_counter()
    subprocess.run([sys.executable, "-c", snippet], check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - clock, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def compare_backends(snapshot: Snapshot, n: int, seed: int, sample: int = 3000) -> None:
    from dataclasses import replace

    from kgsynth.ground.embed import VectorCache, encode, encode_sorted, name_index
    from kgsynth.verify.dedup import DedupConfig, embed

    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("--backends needs onnxruntime and onnx (pip install onnxruntime onnx); skipped")
        return
    for label, snippet in LOAD_SNIPPETS.items():
        wall, cpu = load_cost(snippet)
        print(f"load in a fresh process, {label}: {wall:.1f}s wall, {cpu:.1f}s CPU")
    index = name_index(snapshot)
    texts = random.Random(seed).sample(index.texts, min(sample, len(index.texts)))
    with tempfile.TemporaryDirectory() as tmp:
        encoders = {
            "sentence-transformers (torch)": lambda batch: embed(batch, DedupConfig()),
            "numpy (NumpyBert, kept)": encode,
            **onnx_encoders(Path(tmp)),
        }
        reference = None
        for label, encoder in encoders.items():
            encoder(["warm up"])
            wall, cpu = time.perf_counter(), time.process_time()
            vectors = encode_sorted(texts, label, encoder)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            reference = vectors if reference is None else reference
            cosine = (vectors * reference).sum(axis=1)
            print(f"== {label}: {len(texts):,} node names in {wall:.1f}s wall, {cpu:.1f}s CPU: {len(texts) / wall:,.0f} names/s, "
                  f"{len(texts) / cpu:,.0f} per CPU-second; cosine to sentence-transformers' vectors min {cosine.min():.4f}, "
                  f"mean {cosine.mean():.4f}; load {os.getloadavg()[0]:.2f}", flush=True)
            measure_precision(snapshot, n, seed, names=replace(index, cache=VectorCache(None, encoder)))
            del vectors


def _accepted_links(links: pl.DataFrame) -> set[tuple]:
    return set(links.filter(pl.col("node_id").is_not_null()).select("id_in_dataset", "role", "mention", "node_id").rows())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=2000)
    parser.add_argument("--embedding", action="store_true", help="also link by embeddings (needs torch)")
    parser.add_argument("--snapshot", type=Path, help="an HPO snapshot directory (default: built in a temp dir)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--max-hops", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", type=int, metavar="N", help="measure embedding linking precision on N mentions per set instead")
    parser.add_argument("--first-run", action="store_true", help=f"time `kgsynth ground {QA_FILE.name}` with cold and warm caches instead")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="a checkout of the code to compare with (git worktree add --detach DIR 51c3089): "
                             "--first-run runs it beside this code, --precision prints its table first")
    parser.add_argument("--backends", type=int, metavar="N",
                        help="sentence-transformers (torch) against onnxruntime fp32 and int8 exported from the bundled model: "
                             "names/s and the precision table on N mentions per set (needs onnxruntime and onnx)")
    args = parser.parse_args()
    if args.first_run or args.precision or args.backends:
        with tempfile.TemporaryDirectory() as tmp:
            snapshot = hpo_snapshot(args.snapshot or Path(tmp) / "snapshot")
            if args.first_run:
                first_run(snapshot.path, args.baseline, QA_FILE)
            if args.precision:
                if args.baseline:
                    baseline_precision(args.baseline.resolve(), snapshot.path, args.precision, args.seed, Path(tmp))
                    print("--- this code:")
                measure_precision(snapshot, args.precision, args.seed)
            if args.backends:
                compare_backends(snapshot, args.backends, args.seed)
            print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPU(s)")
        return

    with tempfile.TemporaryDirectory() as tmp:
        clock = time.perf_counter()
        snapshot = hpo_snapshot(args.snapshot or Path(tmp) / "snapshot")
        engine = open_engine(snapshot)
        print(f"HPO snapshot: {snapshot.manifest.counts.nodes:,} nodes, {snapshot.manifest.counts.edges:,} edges "
              f"(ready in {time.perf_counter() - clock:.1f}s)")
        records = make_questions(snapshot, args.questions, args.seed, paraphrase=args.embedding)
        methods = ["dictionary", "embedding"] if args.embedding else ["dictionary"]

        clock = time.perf_counter()
        linker = QALinker(snapshot, LinkConfig(methods=methods))
        print(f"one-off: name dictionary built in {time.perf_counter() - clock:.2f}s")
        if args.embedding:
            clock = time.perf_counter()
            linker.prepare()
            print(f"one-off: model loaded and node names embedded or read from cache in {time.perf_counter() - clock:.1f}s")

        clock = time.perf_counter()
        linked = linker.link(records)
        link_s = time.perf_counter() - clock
        clock = time.perf_counter()
        search = find_paths(engine, linked, k=args.k, max_hops=args.max_hops, seed=args.seed, max_pairs=25)
        path_s = time.perf_counter() - clock

        n = len(records)
        with_paths = len(search.paths)
        found = sum(len(rows) for rows in search.paths.values())
        print(f"questions: {n:,} ({'+'.join(methods)} linking, k={args.k}, max {args.max_hops} hops)")
        print(f"linking:            {link_s:7.2f}s  {n / link_s:10,.1f} questions/s")
        print(f"path finding:       {path_s:7.2f}s  {n / path_s:10,.1f} questions/s  ({search.pairs:,} pairs, {found:,} paths)")
        print(f"linking + paths:    {link_s + path_s:7.2f}s  {n / (link_s + path_s):10,.1f} questions/s")
        if args.embedding:
            embedded = sum(1 for lk in linked for link in lk.question if link.method == "embedding" and link.accepted)
            print(f"embedding links accepted: {embedded:,}")
        print(f"coverage: {sum(1 for lk in linked if lk.question_nodes):,} with question entities, "
              f"{sum(1 for lk in linked if lk.answer_nodes):,} with a linked answer, {with_paths:,} with a path")
        print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPU(s)")


if __name__ == "__main__":
    main()
