"""The run configuration: one YAML or TOML file drives `kgsynth run` and the Prefect flow.

It names the source graph, each stage's parameters, the writer and model, and the
outputs. Validation is pydantic; `load_config` turns every problem into one
`ConfigError` naming the file, the line (YAML) and the field, e.g.
`demo.yaml, line 12: sample.hops: expected 'MIN-MAX' like 2-4, got 'x'`.

Secrets never live here: Neo4j credentials, API keys and Hub tokens are read from
environment variables whose *names* the file may choose.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kgsynth.errors import ConfigError, SourceNotFoundError
from kgsynth.llm.config import Price

# Keys that would hold a secret; refused anywhere in the file, and their values are never echoed.
SECRET_KEYS = frozenset({"password", "api_key", "apikey", "token", "secret", "hf_token"})


class Section(BaseModel):
    """A config section. Fields listed in `not_in_key` do not change a stage's output."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    not_in_key: ClassVar[frozenset[str]] = frozenset()

    def key_fields(self) -> dict[str, Any]:
        fields = self.model_dump(mode="json", exclude=set(self.not_in_key))
        for name in fields:
            value = getattr(self, name)
            if isinstance(value, Section):
                fields[name] = value.key_fields()
        return fields


class SourceConfig(Section):
    # the load stage keys on the files' content hashes, so moving them costs no re-run
    not_in_key: ClassVar[frozenset[str]] = frozenset({"paths"})

    format: str = Field(description="Loader name: hpo, primekg, umls, rdf, edges.")
    paths: list[Path] = Field(default_factory=list, description="Files or directories; relative to the config file.")
    name: str | None = Field(default=None, description="Snapshot name (default: the format).")
    vocabulary: str | None = Field(default=None, description="A bundled vocabulary name or a .ttl file.")
    allow_unknown_relations: bool = Field(
        default=False, description="Load relations the vocabulary does not define, with generic wording."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Loader-specific options.")

    def loader_options(self) -> dict[str, Any]:
        options = dict(self.options)
        options["name"] = self.name or self.format
        if self.vocabulary:
            options["vocabulary"] = self.vocabulary
        if self.allow_unknown_relations:
            options["allow_unknown_relations"] = True
        return options


def _no_password_in_url(value: str | None) -> str | None:
    if value and re.match(r"^[a-z][a-z0-9+.-]*://[^/@]+:[^/@]*@", value, re.IGNORECASE):
        raise ValueError("the URL holds a password; put credentials in the environment instead")
    return value


class Neo4jConfig(Section):
    """A Neo4j server; user and password come from the environment variables named here."""

    uri: str = Field(description="bolt:// or neo4j:// URI.")
    database: str | None = Field(default=None, description="Database name (default: the server's).")
    user_env: str = Field(default="NEO4J_USER", description="Environment variable that holds the user name.")
    password_env: str = Field(default="NEO4J_PASSWORD", description="Environment variable that holds the password.")
    push: bool = Field(default=True, description="Load the snapshot into Neo4j after loading it.")
    options: dict[str, Any] = Field(default_factory=dict, description="Options of the push, e.g. batch_size: 5000 (rows per transaction).")

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        _no_password_in_url(value)
        if not re.match(r"^(bolt|neo4j)(\+s|\+ssc)?://", value):
            raise ValueError(f"expected a bolt:// or neo4j:// URI, got {value!r}")
        return value


class ShatterConfig(Section):
    enabled: bool = Field(default=True, description="Prune hubs before sampling (off: sample the full graph).")
    rule: str = Field(default="shortcut", description="shortcut (k-Shattering) or degree.")
    k: float = Field(default=50, gt=0, description="Hub threshold of the rule.")
    pairs: int = Field(default=2000, ge=1, description="Node pairs whose shortest paths measure a hub's load.")
    seed: int = Field(default=0, description="Seed of the node pairs drawn.")
    budget: int = Field(default=200, ge=0, description="Most nodes to remove.")
    protect_types: list[str] = Field(default_factory=list, description="Node types never removed.")
    protect_ids: list[str] = Field(default_factory=list, description="Node ids never removed.")
    params: dict[str, Any] = Field(default_factory=dict, description="Further options of the rule.")


def parse_hops(value: Any) -> tuple[int, int]:
    """`3`, `"2-4"` or `[2, 4]` → (min, max) hops. Raises ValueError, which pydantic reports with the field."""
    if isinstance(value, int) and not isinstance(value, bool):
        low = high = value
    elif isinstance(value, str) and (match := re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", value)):
        low = int(match[1])
        high = int(match[2] or match[1])
    elif isinstance(value, (list, tuple)) and len(value) == 2 and all(type(v) is int for v in value):
        low, high = value
    else:
        raise ValueError(f"expected 'MIN-MAX' like 2-4, got {value!r}")
    if not 1 <= low <= high:
        raise ValueError(f"expected 1 <= MIN <= MAX, got {low}-{high}")
    return low, high


DEFAULT_SHARD_SIZE = 1_000_000  # paths per sampling shard


class SampleConfig(Section):
    strategy: str = Field(default="walk", description="Sampler name (walk, pattern, between, rare-chain, convergent).")
    n: int = Field(default=1000, ge=1, description="Paths to sample.")
    hops: tuple[int, int] | None = Field(
        default=None, description="'MIN-MAX' hops per path, e.g. 2-4 (default: the strategy's own)."
    )
    seed: int = Field(default=0, ge=0, description="Seed; the same seed, shard size and snapshot give the same paths.")
    negatives: int = Field(default=3, ge=0, description="Hard negatives per path (distractors for MCQ).")
    source: Literal["snapshot", "neo4j"] = Field(
        default="snapshot", description="Sample with the in-memory engine or with Cypher on Neo4j."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Sampler-specific parameters.")
    shard_size: int = Field(
        default=DEFAULT_SHARD_SIZE, ge=1,
        description="Paths per sampling shard: each shard has its own random stream, so this is part of "
        "what a seed means; shards are the unit of streaming and of work on a cluster.",
    )

    @field_validator("hops", mode="before")
    @classmethod
    def _hops(cls, value: Any) -> tuple[int, int] | None:
        return None if value is None else parse_hops(value)


class GenerateConfig(Section):
    not_in_key: ClassVar[frozenset[str]] = frozenset(
        {"concurrency", "api_key_env", "timeout", "max_retries", "batch_api", "save_every"}
    )

    writer: str = Field(default="template", description="Writer name: template (offline) or openai.")
    model: str | None = Field(default=None, description="Model name; required for a model writer, e.g. gpt-4o-mini.")
    base_url: str | None = Field(default=None, description="Any OpenAI-compatible endpoint.")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="Environment variable that holds the API key.")
    concurrency: int = Field(default=32, ge=1, description="Model calls in flight at once (per batch).")
    batch_size: int = Field(default=500, ge=1, description="Paths per generation batch (one flow task each).")
    save_every: int = Field(default=256, ge=1, description="Items per saved part: a crash loses at most these.")
    kinds: list[Literal["mcq", "open", "dag"]] = Field(
        default_factory=lambda: ["mcq", "open"], min_length=1,
        description="Item kinds: mcq, open (one per path), dag (one per convergent group: sample with strategy convergent).",
    )
    seed: int = Field(default=0, description="Seed of the order of options (also sent to the model as its sampling seed).")
    options: int = Field(default=4, ge=2, le=26, description="Options per multiple-choice item.")
    min_options: int | None = Field(
        default=None, ge=2, le=26,
        description="Fewest options an MCQ item may have when a path has few hard negatives (default: options).",
    )
    budget_usd: float | None = Field(
        default=None, ge=0, description="Stop before spending more (shared among batches by their paths)."
    )
    prices: dict[str, Price] = Field(
        default_factory=dict, description="USD per million tokens by model: {gpt-4o-mini: {input: .15, output: .6}}."
    )
    temperature: float | None = Field(default=0.2, description="Sampling temperature of the writer model (null: the server's).")
    max_tokens: int = Field(default=1024, ge=1, description="Reply token limit per call.")
    structured: Literal["auto", "json_schema", "json_object", "text"] = Field(
        default="auto",
        description="Structured output: auto tries json_schema, then json_object, then text with the schema in the prompt.",
    )
    timeout: float = Field(default=60.0, gt=0, description="Seconds per model call.")
    max_retries: int = Field(default=6, ge=0, description="Retries per call (429, 5xx, timeouts).")
    batch_api: bool = Field(default=False, description="OpenAI Batch API: half price, hours of latency.")

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return _no_password_in_url(value)

    @model_validator(mode="after")
    def _model_for_llm(self) -> GenerateConfig:
        if self.writer != "template" and not self.model:
            raise ValueError(f"writer {self.writer!r} needs a model, e.g. model: gpt-4o-mini")
        if self.min_options is not None and self.min_options > self.options:
            raise ValueError(f"min_options ({self.min_options}) cannot exceed options ({self.options})")
        return self


class JudgeConfig(Section):
    not_in_key: ClassVar[frozenset[str]] = frozenset({"concurrency", "api_key_env", "timeout", "max_retries"})

    model: str = Field(description="Judge model name, e.g. gpt-4o-mini.")
    base_url: str | None = Field(default=None, description="Any OpenAI-compatible endpoint (default: $OPENAI_BASE_URL or OpenAI).")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="Environment variable that holds the API key.")
    concurrency: int = Field(default=32, ge=1, description="Calls in flight at once.")
    timeout: float = Field(default=60.0, gt=0, description="Seconds per call.")
    max_retries: int = Field(default=6, ge=0, description="Retries per call (429, 5xx, timeouts).")

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return _no_password_in_url(value)


class VerifyConfig(Section):
    not_in_key: ClassVar[frozenset[str]] = frozenset({"benchmarks"})  # keyed by the files' content instead

    checks: list[str] | None = Field(default=None, description="Graph checks to run (default: all).")
    llm_judge: JudgeConfig | None = Field(default=None, description="A model answers from the thinking alone.")
    dedup: bool = Field(default=False, description="De-duplication: exact, same path, near (embeddings).")
    dedup_near: bool = Field(default=True, description="Include the embedding near-duplicate check.")
    dedup_threshold: float = Field(default=0.95, gt=0, le=1, description="Cosine similarity at or above which questions are near-duplicates.")
    benchmarks: list[Path] = Field(default_factory=list, description="Benchmark files to decontaminate against.")
    params: dict[str, Any] = Field(default_factory=dict, description="Check parameters, e.g. decontamination_ngram.")
    relation_check: Literal["lexicon", "model", "off"] = Field(
        default="lexicon",
        description=(
            "What each thinking step says about its relation is read with: the relation lexicon (steps it cannot "
            "read pass), the lexicon then the llm_judge model for those steps, or off."
        ),
    )

    @model_validator(mode="after")
    def _relation_model_needs_a_judge(self) -> VerifyConfig:
        if self.relation_check == "model" and self.llm_judge is None:
            raise ValueError("relation_check 'model' asks the llm_judge model about the steps the lexicon cannot read: set llm_judge")
        return self


class DifficultyModel(Section):
    """One answering model for empirical difficulty: any OpenAI-compatible endpoint."""

    not_in_key: ClassVar[frozenset[str]] = frozenset({"concurrency", "api_key_env", "timeout", "max_retries"})

    model: str = Field(description="Model name as the endpoint serves it; also its label in the outputs.")
    base_url: str | None = Field(default=None, description="Any OpenAI-compatible endpoint (default: $OPENAI_BASE_URL or OpenAI).")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="Environment variable that holds the API key.")
    concurrency: int = Field(default=16, ge=1, description="Calls in flight at once.")
    timeout: float = Field(default=60.0, gt=0, description="Seconds per call.")
    max_retries: int = Field(default=6, ge=0, description="Retries per call (429, 5xx, timeouts).")
    prices: dict[str, Price] = Field(default_factory=dict, description="USD per million tokens by model.")

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        return _no_password_in_url(value)


DIFFICULTY_WEIGHTS = {"steps": 0.35, "rarity": 0.2, "distractors": 0.25, "shortcut": 0.2}


class DifficultyConfig(Section):
    """Difficulty of every accepted item: graph features, and optionally the share of models that get it wrong."""

    enabled: bool = Field(default=True, description="Measure difficulty (the `difficulty` stage, before export).")
    models: list[DifficultyModel] = Field(
        default_factory=list,
        description="Answering models: each answers every multiple-choice item from the question alone (none: features only).",
    )
    seed: int = Field(default=0, ge=0, description="Sampling seed sent to the models (recorded).")
    temperature: float = Field(default=0.0, ge=0, description="Sampling temperature of the answering models.")
    max_tokens: int = Field(default=256, ge=1, description="Reply token limit per answer.")
    weights: dict[str, float] = Field(
        default_factory=lambda: dict(DIFFICULTY_WEIGHTS),
        description="Weights of the feature score's parts: steps, rarity, distractors, shortcut.",
    )

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(DIFFICULTY_WEIGHTS))
        if unknown or any(w < 0 for w in value.values()) or not sum(value.values()) > 0:
            raise ValueError(
                f"expected non-negative weights of {', '.join(DIFFICULTY_WEIGHTS)} with a positive sum, got {value!r}"
            )
        return {name: float(value.get(name, 0.0)) for name in DIFFICULTY_WEIGHTS}

    def key_fields(self) -> dict[str, Any]:
        return {**super().key_fields(), "models": [m.key_fields() for m in self.models]}

    @field_validator("models")
    @classmethod
    def _distinct(cls, value: list[DifficultyModel]) -> list[DifficultyModel]:
        names = [m.model for m in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"model {twice[0]!r} is listed twice; each model answers once (its name labels its answers)")
        return value


class ExportConfig(Section):
    ratios: tuple[float, float, float] = Field(default=(0.8, 0.1, 0.1), description="train, validation, test.")
    seed: int = Field(default=0, description="Seed of the split assignment.")
    hop_split: dict[str, list[int]] | None = Field(
        default=None, description="Splits by hop count instead of ratios, e.g. {train: [2, 3], test: [4]}."
    )
    formats: list[Literal["arrow", "disk", "parquet", "jsonl"]] = Field(
        default_factory=lambda: ["parquet"],
        min_length=1,
        description="parquet (Hub layout), arrow (save_to_disk), jsonl.",
    )
    drop_rejected: bool = Field(
        default=False,
        description="Leave out items an expert rejected in `kgsynth review` (needs review/reviews.parquet).",
    )
    curriculum: bool = Field(
        default=False,
        description="Order the train split easy to hard by difficulty (ties: feature score, then item id); needs the difficulty stage.",
    )
    stratify: Literal["none", "difficulty"] = Field(
        default="none",
        description="difficulty: each split gets every difficulty level in the same proportion (groups stay whole).",
    )

    @field_validator("ratios", mode="before")
    @classmethod
    def _ratios(cls, value: Any) -> Any:
        if isinstance(value, dict):
            value = [value.get("train", 0), value.get("validation", 0), value.get("test", 0)]
        shares = (
            isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value)
        )
        if shares and (any(v < 0 for v in value) or abs(sum(value) - 1) > 1e-6):
            raise ValueError(f"expected three shares >= 0 summing to 1 (train, validation, test), got {list(value)}")
        return value


class PublishConfig(Section):
    """Push the exported dataset to the Hub (endpoint: $HF_ENDPOINT; token: the variable named here)."""

    not_in_key: ClassVar[frozenset[str]] = frozenset({"token_env"})

    repo_id: str = Field(description="Hub dataset repo, e.g. my-org/hpo-reasoning.")
    private: bool = Field(default=True, description="Create the repo private (an existing repo keeps its visibility).")
    token_env: str = Field(default="HF_TOKEN", description="Environment variable that holds the Hub token.")

    @field_validator("repo_id")
    @classmethod
    def _repo(cls, value: str) -> str:
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", value):
            raise ValueError(f"expected 'owner/name', got {value!r}")
        return value


class ExecutionConfig(Section):
    """Where stage work runs. Outputs are the same bytes whichever runner makes them."""

    # how work is spread changes no output, so no stage re-runs when it changes
    not_in_key: ClassVar[frozenset[str]] = frozenset({"runner", "address", "workers"})

    runner: Literal["local", "dask"] = Field(
        default="local",
        description="local: in this process, parts one after another; dask: Prefect tasks on a Dask cluster "
        "(prefect-dask; needs `pip install 'kgsynth[flows]'`). See docs/cluster.md.",
    )
    address: str | None = Field(
        default=None, description="Scheduler of an existing Dask cluster, e.g. tcp://10.0.0.5:8786; null starts a local one."
    )
    workers: int = Field(
        default=4, ge=1, description="Worker processes of the local cluster, one part at a time each (ignored with an address)."
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        from kgsynth.execution.cluster import split_address

        if value is not None:
            split_address(value)  # ValueError saying what a scheduler address looks like
        return value


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Run name; the default run directory is runs/<name>.")
    run_dir: Path | None = Field(default=None, description="Where outputs go (relative to the current directory).")
    source: SourceConfig = Field(description="The source graph: the load stage.")
    neo4j: Neo4jConfig | None = Field(default=None, description="A Neo4j server to push the snapshot to (and sample with Cypher).")
    shatter: ShatterConfig = Field(default_factory=ShatterConfig, description="Hub pruning: the shatter stage.")
    sample: SampleConfig = Field(default_factory=SampleConfig, description="Path sampling: the sample stage.")
    generate: GenerateConfig = Field(default_factory=GenerateConfig, description="Item writing: the generate stage.")
    verify: VerifyConfig = Field(default_factory=VerifyConfig, description="Checks against the full graph: the verify stage.")
    difficulty: DifficultyConfig = Field(default_factory=DifficultyConfig, description="Difficulty of accepted items: the difficulty stage.")
    export: ExportConfig = Field(default_factory=ExportConfig, description="The Hugging Face dataset and report: the export stage.")
    publish: PublishConfig | None = Field(default=None, description="Push the dataset to the Hub: the publish stage.")
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig, description="Where stage work runs (changes no output).")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][\w.-]*", value):
            raise ValueError(f"expected letters, digits, '.', '_' or '-', got {value!r}")
        return value

    @model_validator(mode="after")
    def _neo4j_sampling(self) -> RunConfig:
        if self.sample.source == "neo4j" and self.neo4j is None:
            raise ValueError("sample.source is 'neo4j' but there is no neo4j section; add one with a uri")
        return self

    def default_run_dir(self) -> Path:
        return self.run_dir or Path("runs") / self.name


def stable_hash(value: Any) -> str:
    """sha256 of canonical JSON: the cache key building block."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def config_hash(config: RunConfig) -> str:
    """Hash of everything in the config that can change an output (not names, paths to outputs, concurrency)."""
    sections = {
        name: getattr(config, name).key_fields() if getattr(config, name) is not None else None
        for name in ("source", "neo4j", "shatter", "sample", "generate", "verify", "difficulty", "export", "publish")
    }
    return stable_hash(sections)


# --- reading -------------------------------------------------------------------------


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML (.yaml/.yml) or TOML (.toml) run configuration."""
    path = Path(path)
    if not path.is_file():
        raise SourceNotFoundError(f"{path}: no such config file (see configs/demo.yaml for an example)")
    text = path.read_text(encoding="utf-8")
    lines: dict[tuple[str, ...], int] = {}
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    elif path.suffix.lower() in {".yaml", ".yml"}:
        data, lines = _read_yaml(text, path)
    else:
        raise ConfigError(f"{path}: unknown config type {path.suffix!r}; use .yaml, .yml or .toml")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections (name, source, sample, …) at the top")
    _refuse_secrets(data, path, lines)
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path, lines)) from None
    return _resolve_paths(config, path.parent)


def _read_yaml(text: str, path: Path) -> tuple[Any, dict[tuple[str, ...], int]]:
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from None
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: Any, prefix: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                loc = (*prefix, str(key.value))
                lines[loc] = key.start_mark.line + 1
                walk(value, loc)
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                loc = (*prefix, str(i))
                lines[loc] = value.start_mark.line + 1
                walk(value, loc)

    if node is not None:
        walk(node, ())
    return data, lines


def _refuse_secrets(data: Any, path: Path, lines: dict[tuple[str, ...], int], prefix: tuple[str, ...] = ()) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            loc = (*prefix, str(key))
            if str(key).lower() in SECRET_KEYS:
                env = {"neo4j": "password_env (NEO4J_PASSWORD)", "publish": "token_env (HF_TOKEN)"}.get(
                    prefix[0] if prefix else "", "api_key_env (OPENAI_API_KEY)"
                )
                raise ConfigError(
                    f"{_where(path, lines, loc)}: {'.'.join(loc)}: secrets are not read from config files; "
                    f"remove it and set the environment variable named by {env}"
                )
            _refuse_secrets(value, path, lines, loc)


def _where(path: Path, lines: dict[tuple[str, ...], int], loc: tuple[str, ...]) -> str:
    for cut in range(len(loc), 0, -1):
        if loc[:cut] in lines:
            return f"{path}, line {lines[loc[:cut]]}"
    return str(path)


def _describe(exc: ValidationError, path: Path, lines: dict[tuple[str, ...], int]) -> str:
    """One line per problem: file, line, dotted field, what was expected, what was given."""
    problems = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        field = ".".join(loc) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        kind = error["type"]
        if kind == "extra_forbidden":
            parent = _model_at(loc[:-1])
            known = ", ".join(parent.model_fields) if parent else ""
            message = f"unknown field; known fields here: {known}" if known else "unknown field"
        elif kind == "missing":
            message = "required field is missing"
        elif kind not in {"value_error", "assertion_error"} and "input" in error:
            message = f"{message}, got {error['input']!r}"
        problems.append(f"{_where(path, lines, loc)}: {field}: {message}")
    return "; ".join(problems)


def _model_at(loc: tuple[str, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = RunConfig
    for part in loc:
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


def _resolve_paths(config: RunConfig, base: Path) -> RunConfig:
    """Input paths are relative to the config file, so a config works from any directory."""

    def resolve(paths: list[Path]) -> list[Path]:
        return [p if p.is_absolute() else (base / p) for p in paths]

    vocabulary = config.source.vocabulary
    if vocabulary and vocabulary.endswith(".ttl") and not Path(vocabulary).is_absolute():
        vocabulary = str(base / vocabulary)
    options = {  # loader options that name files beside the config (a node table)
        key: str(base / value) if isinstance(value, str) and (base / value).is_file() else value
        for key, value in config.source.options.items()
    }
    source = config.source.model_copy(
        update={"paths": resolve(config.source.paths), "vocabulary": vocabulary, "options": options}
    )
    verify = config.verify.model_copy(update={"benchmarks": resolve(config.verify.benchmarks)})
    return config.model_copy(update={"source": source, "verify": verify})
