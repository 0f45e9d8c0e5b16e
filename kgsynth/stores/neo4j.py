"""Neo4j through the official `neo4j` driver: connection, naming, metadata, retries.

Push (`neo4j_push`), pull (`neo4j_pull`), the bulk-import files (`neo4j_csv`) and
Cypher sampling (`neo4j_sample`) build on this module. It owns the three rules
that keep Cypher text safe and a round trip exact:

- every label and relationship type that reaches Cypher text comes from the
  snapshot's vocabulary (a whitelist), is checked against `IDENTIFIER`, and is
  back-quoted; everything else travels as a query parameter;
- a relation `has_phenotype` is stored as type `HAS_PHENOTYPE` with the original
  name in `r.relation`; the mapping is kept on a metadata node so pull can undo it;
- the password lives in a `SecretStr`, is handed to the driver only, and error
  messages are built from the URI, user and database, never from driver text that
  could echo credentials.

Connection settings come from `NEO4J_URI`, `NEO4J_USER`, `NEO4J_PASSWORD` and
`NEO4J_DATABASE`, or from explicit values.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, SecretStr

from kgsynth.errors import ConfigError, StoreError, UnknownRelationError
from kgsynth.graph.vocabulary import NodeType, Relation, Vocabulary, safe_name

T = TypeVar("T")

ENTITY_LABEL = "Entity"  # every kgsynth node carries it; the unique id constraint lives on it
META_LABEL = "KgsynthSnapshot"  # one metadata node per pushed snapshot
HUB_PROPERTY = "kgsynth_hub"  # true on nodes the k-Shattering step flagged as hubs
IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_RESERVED_LABELS = {ENTITY_LABEL, META_LABEL}


class Neo4jConfig(BaseModel):
    """Where the graph lives. The password is a SecretStr: it prints as '**********'."""

    uri: str = "bolt://localhost:7687"
    user: str = "neo4j"
    password: SecretStr | None = None
    database: str | None = None  # None: the server's default database

    @classmethod
    def from_env(cls, **overrides: Any) -> Neo4jConfig:
        """Settings from NEO4J_URI/USER/PASSWORD/DATABASE; non-None overrides win."""
        values: dict[str, Any] = {}
        for field, variable in (("uri", "NEO4J_URI"), ("user", "NEO4J_USER"), ("database", "NEO4J_DATABASE")):
            if os.environ.get(variable):
                values[field] = os.environ[variable]
        if os.environ.get("NEO4J_PASSWORD"):
            values["password"] = SecretStr(os.environ["NEO4J_PASSWORD"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def target(self) -> str:
        """URI (without any user info) and database: safe to print and to key files by."""
        parts = urlsplit(self.uri)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        clean = urlunsplit((parts.scheme, host, parts.path, "", ""))
        return f"{clean}/{self.database or '(default database)'}"


@dataclass
class Neo4jStore:
    """An open driver plus the database to use; close it (or use `with`)."""

    config: Neo4jConfig
    driver: Any  # neo4j.Driver; typed loosely so importing this module stays cheap

    def session(self, **options: Any):
        # One bookmark manager for all sessions: on a cluster, a read after a write
        # (the count check after a push) waits for that write instead of racing it.
        return self.driver.session(
            database=self.config.database, bookmark_manager=self.driver.execute_query_bookmark_manager, **options
        )

    def read(self, query: str, **parameters: Any) -> list[dict[str, Any]]:
        """Run a read query with retries; return all records as dicts."""

        def work(tx) -> list[dict[str, Any]]:
            return tx.run(query, parameters).data()

        return with_retry(lambda: self._execute(work, write=False), self.config, what="a read query")

    def write(self, work: Callable[[Any], T], *, what: str, policy: RetryPolicy | None = None,
              on_retry: Callable[[int, float, str], None] | None = None) -> T:
        """Run `work(tx)` in one explicit write transaction, retried with backoff."""
        return with_retry(
            lambda: self._execute(work, write=True), self.config, what=what, policy=policy, on_retry=on_retry
        )

    def _execute(self, work: Callable[[Any], T], *, write: bool) -> T:
        import neo4j

        mode = neo4j.WRITE_ACCESS if write else neo4j.READ_ACCESS
        with self.session(default_access_mode=mode) as session:
            with session.begin_transaction() as tx:
                result = work(tx)
                tx.commit()
                return result

    def close(self) -> None:
        self.driver.close()

    def __enter__(self) -> Neo4jStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def connect(config: Neo4jConfig | None = None) -> Neo4jStore:
    """Open a driver and prove it can log in, or raise one clear `StoreError`."""
    import neo4j

    config = config or Neo4jConfig.from_env()
    auth = (config.user, config.password.get_secret_value()) if config.password is not None else None
    try:
        driver = neo4j.GraphDatabase.driver(
            config.uri, auth=auth, user_agent="kgsynth", connection_timeout=15.0
        )
    except (neo4j.exceptions.ConfigurationError, ValueError) as exc:
        raise ConfigError(
            f"NEO4J_URI {config.target.rsplit('/', 1)[0]!r} is not a valid Neo4j URI ({type(exc).__name__}); "
            "use e.g. bolt://localhost:7687 or neo4j+s://xxxx.databases.neo4j.io"
        ) from None
    try:
        driver.verify_connectivity()
        with driver.session(database=config.database) as session:
            session.run("RETURN 1").consume()
    except Exception as exc:
        driver.close()
        raise store_error(exc, config, doing="connecting") from None
    return Neo4jStore(config=config, driver=driver)


def store_error(exc: BaseException, config: Neo4jConfig, *, doing: str) -> StoreError:
    """Translate a driver error into one line that names the target but no secret."""
    from neo4j import exceptions as ne

    where = config.target
    if isinstance(exc, ne.AuthError):
        return StoreError(
            f"Neo4j at {where} refused the login of user '{config.user}' while {doing}; "
            "check NEO4J_USER and NEO4J_PASSWORD"
        )
    if isinstance(exc, (ne.ServiceUnavailable, ne.SessionExpired, OSError)):
        return StoreError(
            f"cannot reach Neo4j at {where} while {doing} ({type(exc).__name__}); is the server running "
            "and NEO4J_URI right?"
        )
    if isinstance(exc, ne.Neo4jError):
        code = exc.code or type(exc).__name__
        if "DatabaseNotFound" in code:
            return StoreError(f"Neo4j at {where}: database '{config.database}' does not exist; set NEO4J_DATABASE")
        return StoreError(f"Neo4j at {where} failed while {doing}: {code}: {_first_line(exc.message)}")
    return StoreError(f"Neo4j at {where} failed while {doing}: {type(exc).__name__}")


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0][:300] if text else ""


# --- retries -------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for a lost connection; gives up after `budget` seconds."""

    first_delay: float = 0.5
    max_delay: float = 15.0
    budget: float = 120.0


def is_retryable(exc: BaseException) -> bool:
    from neo4j import exceptions as ne

    if isinstance(exc, (ne.ServiceUnavailable, ne.SessionExpired, ne.IncompleteCommit)):
        return True  # our writes are MERGEs, so repeating a commit of unknown outcome is safe
    return isinstance(exc, (ne.Neo4jError, ne.DriverError)) and exc.is_retryable()


def with_retry(
    call: Callable[[], T],
    config: Neo4jConfig,
    *,
    what: str,
    policy: RetryPolicy | None = None,
    on_retry: Callable[[int, float, str], None] | None = None,
) -> T:
    """Call, retrying retryable driver errors with backoff; else one `StoreError`."""
    policy = policy or RetryPolicy()
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return call()
        except StoreError:
            raise
        except Exception as exc:
            attempt += 1
            delay = min(policy.first_delay * 2 ** (attempt - 1), policy.max_delay)
            spent = time.monotonic() - started
            if not is_retryable(exc) or spent + delay > policy.budget:
                raise store_error(exc, config, doing=what) from None
            if on_retry is not None:
                on_retry(attempt, delay, type(exc).__name__)
            time.sleep(delay)


# --- naming --------------------------------------------------------------------------


def relationship_type(relation: str) -> str:
    """The Neo4j type for a relation name: `has_phenotype` → `HAS_PHENOTYPE`."""
    return safe_name(relation).upper()


def quote(identifier: str) -> str:
    """Back-quote an identifier that already passed `IDENTIFIER`."""
    if not IDENTIFIER.match(identifier):
        raise ConfigError(f"{identifier!r} is not a safe Neo4j identifier (letters, digits, underscore)")
    return f"`{identifier}`"


@dataclass(frozen=True)
class GraphSchema:
    """How one graph's node types and relations appear in Neo4j, and the reverse."""

    vocabulary: Vocabulary
    labels: dict[str, str]  # node type → label
    types: dict[str, str]  # relation → relationship type

    @property
    def type_of_label(self) -> dict[str, str]:
        return {label: node_type for node_type, label in self.labels.items()}

    @property
    def relation_of_type(self) -> dict[str, str]:
        return {rel_type: relation for relation, rel_type in self.types.items()}

    def label(self, node_type: str) -> str:
        try:
            return self.labels[node_type]
        except KeyError:
            known = ", ".join(sorted(self.labels)) or "(none)"
            raise UnknownRelationError(
                f"node type '{node_type}' is not in the graph's vocabulary; known: {known}"
            ) from None

    def rel_type(self, relation: str) -> str:
        try:
            return self.types[relation]
        except KeyError:
            known = ", ".join(sorted(self.types)) or "(none)"
            raise UnknownRelationError(
                f"relation '{relation}' is not in the graph's vocabulary; known: {known}"
            ) from None


def schema_for(vocabulary: Vocabulary, node_types: Iterable[str], relations: Iterable[str]) -> GraphSchema:
    """Check every node type and relation against the vocabulary and name them for Neo4j.

    Raises before anything is sent: a type or relation the vocabulary lacks, a label
    that is not a plain identifier (or is reserved), or two names that would collide.
    """
    node_types, relations = sorted(set(node_types)), sorted(set(relations))
    missing_types = [t for t in node_types if t not in vocabulary.node_types]
    if missing_types:
        raise UnknownRelationError(
            f"node type(s) {', '.join(map(repr, missing_types))} are not in vocabulary '{vocabulary.name}' "
            f"(known: {', '.join(sorted(vocabulary.node_types)) or '(none)'}); only vocabulary types become labels"
        )
    for relation in relations:
        vocabulary.relation(relation)  # raises UnknownRelationError naming the known ones
    labels = {t: vocabulary.node_types[t].neo4j_label for t in node_types}
    for node_type, label in labels.items():
        if not IDENTIFIER.match(label) or label in _RESERVED_LABELS:
            raise ConfigError(
                f"vocabulary '{vocabulary.name}': node type '{node_type}' has Neo4j label {label!r}; a label must be "
                f"letters, digits and underscores and not one of {sorted(_RESERVED_LABELS)}. Fix kg:neo4jLabel"
            )
    types = {r: relationship_type(r) for r in relations}
    for kind, names in (("label", labels), ("relationship type", types)):
        seen: dict[str, str] = {}
        for name, target in names.items():
            if target in seen:
                raise ConfigError(
                    f"'{seen[target]}' and '{name}' would both become Neo4j {kind} {target}; "
                    "rename one in the vocabulary"
                )
            seen[target] = name
    return GraphSchema(vocabulary=vocabulary, labels=labels, types=types)


# --- the metadata node ---------------------------------------------------------------


def vocabulary_to_json(vocabulary: Vocabulary) -> str:
    """Compact JSON without raw newlines, so it also fits one CSV field of the bulk import."""
    return json.dumps(
        {
            "name": vocabulary.name,
            "relations": [asdict(r) for r in vocabulary.relations.values()],
            "node_types": [asdict(t) for t in vocabulary.node_types.values()],
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def vocabulary_from_json(text: str) -> Vocabulary:
    data = json.loads(text)
    relations = [Relation(**{**r, "domain": tuple(r["domain"]), "range": tuple(r["range"])}) for r in data["relations"]]
    return Vocabulary(
        name=data["name"],
        relations={r.name: r for r in relations},
        node_types={t["name"]: NodeType(**t) for t in data["node_types"]},
    )


def meta_properties(snapshot, schema: GraphSchema) -> dict[str, Any]:
    """What the metadata node records about a snapshot (all strings)."""
    manifest = snapshot.manifest
    return {
        "hash": snapshot.hash,
        "name": manifest.name,
        "vocabulary": vocabulary_to_json(schema.vocabulary),
        "labels": json.dumps(schema.labels, sort_keys=True),
        "types": json.dumps(schema.types, sort_keys=True),
        "source_info": manifest.source_info.model_dump_json() if manifest.source_info else "",
        "counts": manifest.counts.model_dump_json(),
    }


@dataclass(frozen=True)
class PushedSnapshot:
    """A metadata node read back."""

    hash: str
    name: str
    schema: GraphSchema
    source_info: str
    status: str
    push_id: str


def pushed_snapshots(store: Neo4jStore) -> list[PushedSnapshot]:
    rows = store.read(
        f"MATCH (m:{quote(META_LABEL)}) RETURN m.hash AS hash, m.name AS name, m.vocabulary AS vocabulary, "
        "m.labels AS labels, m.types AS types, m.source_info AS source_info, m.status AS status, "
        "m.push_id AS push_id ORDER BY hash"
    )
    found = []
    for row in rows:
        vocabulary = vocabulary_from_json(row["vocabulary"])
        found.append(
            PushedSnapshot(
                hash=row["hash"],
                name=row["name"],
                schema=GraphSchema(
                    vocabulary=vocabulary, labels=json.loads(row["labels"]), types=json.loads(row["types"])
                ),
                source_info=row["source_info"] or "",
                status=row["status"] or "",
                push_id=row["push_id"] or "",
            )
        )
    return found
