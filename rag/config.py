"""One typed settings object in five frozen sections, built once at the edge and passed down.

``Settings.from_env(os.environ)`` reads ``RAG_*`` variables; the CLI then overrides fields
from its flags with ``settings.replace(...)``; both name a field by its own name (``top_k``),
and every field belongs to exactly one section: ``index``, ``retrieval``, ``answer``, ``llm``,
``serve``. ``Assistant.open`` hands each component its own section. A section validates itself
when it is made, so a bad value fails at start-up, before any component is built, in one line
naming the field and its variable (``top_k (RAG_TOP_K) must be greater than 0, got 0``).

Nothing below ``cli.py``/``app.py`` reads the environment, and no component is handed the
whole ``Settings``: reading a field through it by its flat name (``settings.data_dir``) is for
the edges (the CLI, the UI, scripts and tests).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rag.errors import SettingsError

# Environment variable -> field name. Every field a user may set from the environment is here.
ENV_VARS: dict[str, str] = {
    "RAG_DATA_DIR": "data_dir",
    "RAG_CORPUS_DIR": "corpus_dir",
    "RAG_COLLECTION": "collection",
    "RAG_CHROMA_URL": "chroma_url",
    "RAG_REFRESH_INTERVAL_S": "refresh_interval_s",
    "RAG_EMBEDDING_PROVIDER": "embedding_provider",
    "RAG_EMBEDDING_MODEL": "embedding_model",
    "RAG_DEVICE": "device",
    "RAG_EMBED_BATCH_SIZE": "embed_batch_size",
    "RAG_CHUNK_CHARS": "chunk_chars",
    "RAG_TOP_K": "top_k",
    "RAG_CANDIDATES": "candidates",
    "RAG_RERANK_DEPTH": "rerank_depth",
    "RAG_FUSION": "fusion",
    "RAG_DENSE_WEIGHT": "dense_weight",
    "RAG_SAME_ARTICLE_DECAY": "same_article_decay",
    "RAG_RETRIEVAL": "retrieval",
    "RAG_LEXICAL": "lexical",
    "RAG_FTS_SEGMENT": "fts_segment",
    "RAG_STORE": "store",
    "RAG_MIN_EVIDENCE": "min_evidence",
    "RAG_SENTENCES_EMBEDDED": "sentences_embedded",
    "RAG_JUDGE": "judge",
    "RAG_JUDGE_CANDIDATES": "judge_candidates",
    "RAG_JUDGE_THRESHOLD": "judge_threshold",
    "RAG_ANSWER_EXTRA_RATIO": "answer_extra_ratio",
    "RAG_MAX_QUESTION_CHARS": "max_question_chars",
    "RAG_ANSWERER": "answerer",
    "RAG_LLM": "llm",
    "RAG_LLM_PROVIDER": "llm_provider",
    "RAG_LLM_BASE_URL": "llm_base_url",
    "RAG_LLM_MODEL": "llm_model",
    "RAG_LLM_API_KEY": "llm_api_key",
    "RAG_LLM_MODEL_PATH": "llm_model_path",
    "RAG_LLM_TIMEOUT_S": "llm_timeout_s",
    "RAG_LLM_RETRIES": "llm_retries",
    "RAG_LLM_MAX_TOKENS": "llm_max_tokens",
    "RAG_LLM_TEMPERATURE": "llm_temperature",
    "RAG_HOST": "host",
    "RAG_PORT": "port",
    "RAG_API_KEYS": "api_keys",
    "RAG_API_KEYS_FILE": "api_keys_file",
    "RAG_CORS_ORIGINS": "cors_origins",
    "RAG_FRAME_ANCESTORS": "frame_ancestors",
    "RAG_MAX_BODY_BYTES": "max_body_bytes",
    "RAG_MAX_UPLOAD_BYTES": "max_upload_bytes",
    "RAG_MAX_CONCURRENT_ASKS": "max_concurrent_asks",
    "RAG_MAX_QUEUED_ASKS": "max_queued_asks",
    "RAG_ASYNC_INGEST_CHARS": "async_ingest_chars",
}

RETRIEVAL_MODES = ("hybrid", "dense", "lexical")
FUSIONS = ("scores", "rrf")
ANSWERERS = ("extractive", "heuristic", "llm")
# Field name -> its environment variable, for messages that say what to change.
_VARIABLE = {name: var for var, name in ENV_VARS.items()}


def _named(name: str) -> str:
    """``top_k (RAG_TOP_K)``: a field as a message names it."""
    var = _VARIABLE.get(name)
    return f"{name} ({var})" if var else name


@dataclass(frozen=True, slots=True)
class IndexSettings:
    """Where the index lives and how articles become chunks, vectors and BM25 terms: the
    embedder, the store, the lexical index and the indexer read this section."""

    data_dir: Path = field(default_factory=lambda: Path(".rag"))
    corpus_dir: Path = field(default_factory=lambda: Path("corpus"))  # what `rag ingest` reads
    collection: str = "articles"
    # A Chroma server (``chroma run``) shared by several processes or machines; "" keeps the
    # index in a local persistent Chroma under data_dir.
    chroma_url: str = ""
    # How often a serving process checks whether another process changed the index.
    refresh_interval_s: float = 2.0
    # Embeddings: provider name from the registry in rag.embed; "" means the packaged model.
    # They are the index's, and a question is embedded with the same model.
    embedding_provider: str = "auto"  # int8 ONNX on the CPU, else sentence-transformers
    embedding_model: str = ""
    device: str = "cpu"
    embed_batch_size: int = 32
    # Chunking: target size in characters; chunks end on sentence boundaries.
    chunk_chars: int = 900
    chunk_overlap_sentences: int = 1
    lexical: str = "fts5"  # the BM25 backend, by name in rag.lexical's registry: fts5, bm25s
    # fts5's numpy segment (rag.lexical_segment): "auto" builds it in the background as the
    # archive grows, "manual" only on FtsIndex.build_segment(), "off" ranks with FTS5 alone.
    fts_segment: str = "auto"
    store: str = "chroma"  # the vector store, by name in rag.store's registry

    def __post_init__(self) -> None:
        for name in ("data_dir", "corpus_dir"):
            if not isinstance(getattr(self, name), Path):
                object.__setattr__(self, name, Path(getattr(self, name)))
        _positive(self, "embed_batch_size", "chunk_chars")
        if self.chunk_chars < 200:
            raise SettingsError(
                f"{_named('chunk_chars')} must be at least 200, got {self.chunk_chars}"
            )
        _at_least_zero(self, "chunk_overlap_sentences", "refresh_interval_s")
        if self.fts_segment not in ("auto", "manual", "off"):
            raise SettingsError(
                f"{_named('fts_segment')} must be auto, manual or off, got {self.fts_segment!r}"
            )
        if self.chroma_url:
            _check_url("chroma_url", self.chroma_url)
        if not 3 <= len(self.collection) <= 512 or not all(
            ch.isalnum() or ch in "._-" for ch in self.collection
        ):
            raise SettingsError(
                f"{_named('collection')} must be 3-512 characters of letters, digits, '.', '_'"
                f" or '-', got {self.collection!r}"
            )

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def lexical_dir(self) -> Path:
        return self.data_dir / "lexical"

    @property
    def vectors_path(self) -> Path:
        return self.data_dir / "vectors.sqlite"

    @property
    def lock_path(self) -> Path:
        return self.data_dir / "write.lock"


@dataclass(frozen=True, slots=True)
class RetrievalSettings:
    """How passages are found and ranked: the hybrid retriever and the reranking read this."""

    # Passages handed to the answerer, and candidates per retriever before fusion.
    top_k: int = 5
    candidates: int = 30
    # Fusion of the two rankings (rag.fuse): "scores" mixes min-max normalised scores with
    # dense_weight for the dense one (1 - dense_weight for BM25); "rrf" is reciprocal rank
    # fusion with rrf_k. Chosen by train/fusion_sweep.py (squad-train and news known-item
    # questions over the archive; table in the README).
    fusion: str = "scores"
    dense_weight: float = 0.35
    rrf_k: int = 60
    # Each chunk's fused score times this once per chunk of its article ranked above it, so
    # that more articles reach the top (1 turns it off). Chosen by the same sweep; it applies
    # to what search returns (the LangChain retriever, digests, metadata questions), not to
    # the pool a fact question's answer is chosen from (``HybridRetriever.search(spread=
    # False)``), where it cost squad questions whose evidence is spread over one article.
    same_article_decay: float = 0.7
    retrieval: str = "hybrid"  # the mode: hybrid, dense or lexical
    # Fact questions: the fused top this-many passages are reordered by the answer judge's best
    # sentence in each (rag.rerank) before the top_k go to the answerer; 0 turns it off.
    rerank_depth: int = 20

    def __post_init__(self) -> None:
        _positive(self, "top_k", "candidates", "rrf_k")
        _fraction(self, "dense_weight")
        if not 0.0 < self.same_article_decay <= 1.0:
            raise SettingsError(
                f"{_named('same_article_decay')} must be greater than 0 and at most 1,"
                f" got {self.same_article_decay}"
            )
        if self.candidates < self.top_k:
            raise SettingsError(
                f"{_named('candidates')} must be at least {_named('top_k')},"
                f" got {self.candidates} < {self.top_k}"
            )
        _at_least_zero(self, "rerank_depth")
        _one_of(self, "fusion", FUSIONS)
        _one_of(self, "retrieval", RETRIEVAL_MODES)


@dataclass(frozen=True, slots=True)
class AnswerSettings:
    """How an answer is chosen from the passages: the answerers, the answer judge and the
    question checks read this section."""

    answerer: str = "extractive"
    min_evidence: float = 0.42
    max_answer_sentences: int = 3
    # Candidate sentences embedded per question (by shared words and passage strength first):
    # embedding them is most of the answer time; 8 chose the same lead as all ~23 on 120 news
    # headlines and the same eval scores (bench/README.md).
    sentences_embedded: int = 8
    # The trained answer judge (rag.judge) scores this many candidate sentences per question,
    # the most promising by shared words and passage strength.
    judge_candidates: int = 20
    judge: str = "trained"  # the answer judge's name in the rag.judge registry
    # A sentence counts as answering at or above this judge probability; 0 uses the threshold
    # calibrated on the dev articles and stored with the model (judge.json).
    judge_threshold: float = 0.0
    # Sentences after the first are quoted when they score at least this share of its score.
    answer_extra_ratio: float = 0.6
    max_question_chars: int = 1000
    max_history_turns: int = 6

    def __post_init__(self) -> None:
        _positive(self, "max_answer_sentences", "max_question_chars")
        _positive(self, "sentences_embedded", "judge_candidates")
        _fraction(self, "judge_threshold", "answer_extra_ratio", "min_evidence")
        _at_least_zero(self, "max_history_turns")
        _one_of(self, "answerer", ANSWERERS)


@dataclass(frozen=True, slots=True)
class LlmSettings:
    """The chat model of answerer "llm" (rag.chat_models reads this section)."""

    # Chat model for answerer "llm" (rag.chat_models): "provider:model" as LangChain's
    # init_chat_model writes it (openai:gpt-4o-mini, llamacpp:/models/q.gguf), or the provider
    # and model apart; llm wins when set. The key is only ever read from the environment
    # (RAG_LLM_API_KEY) and is kept out of repr(). Timeouts and retries are the model's own.
    llm: str = ""
    llm_provider: str = "openai"
    llm_base_url: str = ""  # an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1
    llm_model: str = ""  # the provider's model name ("" for openai: ChatOpenAI's default)
    llm_api_key: str = field(default="", repr=False)
    llm_model_path: str = ""  # a local GGUF file, for provider "llamacpp"
    llm_timeout_s: float = 60.0
    llm_retries: int = 1
    llm_max_tokens: int = 400
    llm_temperature: float = 0.0

    def __post_init__(self) -> None:
        _positive(self, "llm_timeout_s", "llm_max_tokens")
        _at_least_zero(self, "llm_retries")
        if not 0.0 <= self.llm_temperature <= 2.0:
            raise SettingsError(
                f"{_named('llm_temperature')} must be between 0 and 2, got {self.llm_temperature}"
            )
        provider, sep, model = self.llm.partition(":")
        if self.llm and not (sep and provider.strip() and model.strip()):
            raise SettingsError(
                f"{_named('llm')} must be provider:model (e.g. openai:gpt-4o-mini),"
                f" got {self.llm!r}"
            )
        if not self.llm_provider.strip():
            raise SettingsError(f"{_named('llm_provider')} must name a provider, e.g. openai")
        if self.llm_base_url:
            _check_url("llm_base_url", self.llm_base_url)


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """Where ``rag serve`` listens and who may use it: the HTTP API reads this section."""

    host: str = "127.0.0.1"
    port: int = 7860
    # HTTP API access. Keys are comma-separated and, like the LLM key, kept out of repr();
    # a keys file holds one per line (# comments). Writes need a key; with keys set, reads too.
    api_keys: str = field(default="", repr=False)
    api_keys_file: str = ""
    # Origins allowed to call the API from a browser (CORS), comma-separated; none by default.
    cors_origins: str = ""
    # Who may frame the chat: CSP frame-ancestors sources, separated by spaces or commas.
    frame_ancestors: str = "'self'"
    max_body_bytes: int = 2 * 1024 * 1024  # JSON bodies
    max_upload_bytes: int = 20 * 1024 * 1024  # article files posted as multipart uploads
    # Questions answered at once; more wait (up to max_queued_asks of them, for a few seconds)
    # and beyond that are refused with 503 and Retry-After rather than slowing everyone down.
    max_concurrent_asks: int = 8
    max_queued_asks: int = 32
    # An article write with more text than this runs in the background (202, /v1/jobs/{id}).
    async_ingest_chars: int = 100_000

    def __post_init__(self) -> None:
        _positive(self, "port", "max_body_bytes", "max_upload_bytes")
        _positive(self, "max_concurrent_asks", "max_queued_asks", "async_ingest_chars")
        for origin in self.cors_origin_list:
            if origin != "*":
                _check_origin("cors_origins", origin)
        if not self.frame_ancestor_list:
            raise SettingsError(
                f"{_named('frame_ancestors')} must name at least one source, e.g. 'self'"
            )
        for source in self.frame_ancestor_list:
            if not _CSP_SOURCE.fullmatch(source):
                raise SettingsError(f"{_named('frame_ancestors')} has a bad source: {source!r}")

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return tuple(o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip())

    @property
    def frame_ancestor_list(self) -> tuple[str, ...]:
        return tuple(self.frame_ancestors.replace(",", " ").split())


Section = IndexSettings | RetrievalSettings | AnswerSettings | LlmSettings | ServeSettings
# The sections by their attribute name on Settings, in order.
SECTIONS: dict[str, type[Section]] = {
    "index": IndexSettings,
    "retrieval": RetrievalSettings,
    "answer": AnswerSettings,
    "llm": LlmSettings,
    "serve": ServeSettings,
}
# Every field, and every derived property, by the section that holds it; a name is in one only.
_SECTION_OF: dict[str, str] = {
    f.name: section for section, kind in SECTIONS.items() for f in dataclasses.fields(kind)
}
_FIELD_TYPE: dict[str, str] = {
    f.name: str(f.type) for kind in SECTIONS.values() for f in dataclasses.fields(kind)
}
_DERIVED_OF: dict[str, str] = {
    name: section
    for section, kind in SECTIONS.items()
    for name, value in vars(kind).items()
    if isinstance(value, property)
}


@dataclass(frozen=True, init=False)
class Settings:
    """Every tunable of the pipeline, with offline defaults, in five frozen sections.

    ``Settings(top_k=3, data_dir=...)`` names fields by their own names (each belongs to one
    section); a whole section may be given under its name instead
    (``Settings(retrieval=RetrievalSettings(top_k=3))``). ``settings.top_k`` reads a field
    through its section, for the edges; ``settings.retrieval`` is the section itself, so the
    mode is ``settings.retrieval.retrieval``, as ``settings.llm.llm`` is the model spec.
    """

    index: IndexSettings
    retrieval: RetrievalSettings
    answer: AnswerSettings
    llm: LlmSettings
    serve: ServeSettings

    def __init__(self, **values: Any) -> None:
        sections: dict[str, Section] = {}
        changes: dict[str, dict[str, Any]] = {}
        for name, value in values.items():
            kind = SECTIONS.get(name)
            if kind is not None and isinstance(value, kind):
                sections[name] = value
            elif name in _SECTION_OF:
                changes.setdefault(_SECTION_OF[name], {})[name] = value
            else:
                raise SettingsError(f"unknown setting {name!r}")
        for name, kind in SECTIONS.items():
            section = sections.get(name) or kind()
            if name in changes:
                section = dataclasses.replace(section, **changes[name])
            object.__setattr__(self, name, section)

    def __getattr__(self, name: str) -> Any:
        """A field or derived path by its flat name (``settings.top_k``), from its section."""
        section = _SECTION_OF.get(name) or _DERIVED_OF.get(name)
        if section is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(object.__getattribute__(self, section), name)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Defaults overridden by the ``RAG_*`` variables present in ``environ``."""
        values = {name: environ[var] for var, name in ENV_VARS.items() if environ.get(var)}
        return cls().replace(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (by field name) applied; strings are converted to each
        field's type, and the sections changed are validated again.

        ``None`` values are ignored, so CLI flags that were not given change nothing.
        """
        grouped: dict[str, dict[str, Any]] = {}
        for name, value in changes.items():
            section = _SECTION_OF.get(name)
            if section is None:
                raise SettingsError(f"unknown setting {name!r}")
            if value is not None:
                grouped.setdefault(section, {})[name] = _convert(name, _FIELD_TYPE[name], value)
        sections = {
            name: dataclasses.replace(getattr(self, name), **grouped[name])
            if name in grouped
            else getattr(self, name)
            for name in SECTIONS
        }
        return Settings(**sections)


# A CSP source expression: a quoted keyword, a scheme ("https:") or a host source, with no
# character that could end the directive or the header.
_CSP_SOURCE = re.compile(
    r"'(self|none)'"  # keywords
    r"|\*"  # any origin
    r"|[a-z][a-z0-9+.-]*:(//[^\s;,'\"]+)?"  # a scheme, or scheme://host[:port]
    r"|[^\s;,'\":]+(:\d+)?"  # host[:port], e.g. *.example.com
)


def _check_origin(name: str, origin: str) -> None:
    parsed = urlsplit(origin)
    if (
        parsed.scheme not in ("http", "https")
        or not parsed.hostname
        or parsed.path
        or parsed.query
        or parsed.fragment
    ):
        raise SettingsError(
            f"{_named(name)} must list origins such as https://cms.example, got {origin!r}"
        )


def _check_url(name: str, url: str) -> None:
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise SettingsError(f"{_named(name)} must be an http(s)://host:port URL, got {url!r}")
    try:
        parsed.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise SettingsError(f"{_named(name)} has a bad port: {url!r}") from None


def _positive(section: object, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        if value <= 0:
            raise SettingsError(f"{_named(name)} must be greater than 0, got {value}")


def _at_least_zero(section: object, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        if value < 0:
            raise SettingsError(f"{_named(name)} must be >= 0, got {value}")


def _fraction(section: object, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        if not 0.0 <= value <= 1.0:
            raise SettingsError(f"{_named(name)} must be between 0 and 1, got {value}")


def _one_of(section: object, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(section, name)
    if value not in choices:
        raise SettingsError(f"{_named(name)} must be one of {', '.join(choices)}, got {value!r}")


def _convert(name: str, type_name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        if type_name == "int":
            return int(value)
        if type_name == "float":
            return float(value)
    except ValueError:
        raise SettingsError(f"{_named(name)} must be a number, got {value!r}") from None
    if type_name == "Path":
        return Path(value).expanduser()
    return value
