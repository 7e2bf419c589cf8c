"""One typed settings object, built once at the edge and passed down.

``Settings.from_env(os.environ)`` reads ``RAG_*`` variables; the CLI then overrides fields
from its flags with ``settings.replace(...)``. Nothing below ``cli.py``/``app.py`` reads the
environment. Validation happens here, so a bad value fails at start-up with a message naming it.
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
    "RAG_RETRIEVAL": "retrieval",
    "RAG_MIN_EVIDENCE": "min_evidence",
    "RAG_SENTENCES_EMBEDDED": "sentences_embedded",
    "RAG_JUDGE": "judge",
    "RAG_JUDGE_CANDIDATES": "judge_candidates",
    "RAG_JUDGE_THRESHOLD": "judge_threshold",
    "RAG_ANSWER_EXTRA_RATIO": "answer_extra_ratio",
    "RAG_MAX_QUESTION_CHARS": "max_question_chars",
    "RAG_ANSWERER": "answerer",
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
}

RETRIEVAL_MODES = ("hybrid", "dense", "lexical")
FUSIONS = ("scores", "rrf")
ANSWERERS = ("extractive", "heuristic", "llm")


@dataclass(frozen=True, slots=True)
class Settings:
    """Every tunable of the pipeline, with offline defaults."""

    data_dir: Path = field(default_factory=lambda: Path(".rag"))
    corpus_dir: Path = field(default_factory=lambda: Path("corpus"))  # what `rag ingest` reads
    collection: str = "articles"
    # A Chroma server (``chroma run``) shared by several processes or machines; "" keeps the
    # index in a local persistent Chroma under data_dir.
    chroma_url: str = ""
    # How often a serving process checks whether another process changed the index.
    refresh_interval_s: float = 2.0
    # Embeddings: provider name from the registry in rag.embed; "" means the packaged model.
    embedding_provider: str = "sentence-transformers"
    embedding_model: str = ""
    device: str = "cpu"
    embed_batch_size: int = 32
    # Chunking: target size in characters; chunks end on sentence boundaries.
    chunk_chars: int = 900
    chunk_overlap_sentences: int = 1
    # Retrieval: passages handed to the answerer, and candidates per retriever before fusion.
    top_k: int = 5
    candidates: int = 30
    # Fusion of the two rankings (rag.fuse): "scores" mixes min-max normalised scores with
    # dense_weight for the dense one (1 - dense_weight for BM25); "rrf" is reciprocal rank
    # fusion with rrf_k. Chosen by train/fusion_sweep.py (squad-train and news known-item
    # questions over the archive; table in the README).
    fusion: str = "scores"
    dense_weight: float = 0.35
    rrf_k: int = 60
    retrieval: str = "hybrid"
    # Fact questions: the fused top this-many passages are reordered by the answer judge's best
    # sentence in each (rag.rerank) before the top_k go to the answerer; 0 turns it off.
    rerank_depth: int = 20
    # Answering.
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
    # Chat model for answerer "llm": provider name from the registry in rag.llm. The key is
    # only ever read from the environment (RAG_LLM_API_KEY) and is kept out of repr().
    llm_provider: str = "openai"
    llm_base_url: str = ""  # an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1
    llm_model: str = ""  # model name sent to the endpoint ("" sends none)
    llm_api_key: str = field(default="", repr=False)
    llm_model_path: str = ""  # a local GGUF file, for provider "llamacpp"
    llm_timeout_s: float = 60.0
    llm_retries: int = 1
    llm_max_tokens: int = 400
    llm_temperature: float = 0.0
    # Serving.
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

    def __post_init__(self) -> None:
        for name in ("data_dir", "corpus_dir"):
            if not isinstance(getattr(self, name), Path):
                object.__setattr__(self, name, Path(getattr(self, name)))
        _positive(self, "embed_batch_size", "chunk_chars", "top_k", "candidates", "rrf_k")
        _positive(self, "max_answer_sentences", "max_question_chars", "port")
        _positive(self, "sentences_embedded", "judge_candidates")
        for name in ("judge_threshold", "answer_extra_ratio", "dense_weight"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SettingsError(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if self.chunk_chars < 200:
            raise SettingsError(f"chunk_chars must be at least 200, got {self.chunk_chars}")
        if self.chunk_overlap_sentences < 0:
            raise SettingsError(
                f"chunk_overlap_sentences must be >= 0, got {self.chunk_overlap_sentences}"
            )
        if self.max_history_turns < 0:
            raise SettingsError(f"max_history_turns must be >= 0, got {self.max_history_turns}")
        if self.candidates < self.top_k:
            raise SettingsError(
                f"candidates ({self.candidates}) must be at least top_k ({self.top_k})"
            )
        if self.rerank_depth < 0:
            raise SettingsError(f"rerank_depth must be >= 0 (0: off), got {self.rerank_depth}")
        if self.fusion not in FUSIONS:
            raise SettingsError(f"fusion must be one of {', '.join(FUSIONS)}, got {self.fusion!r}")
        if self.retrieval not in RETRIEVAL_MODES:
            raise SettingsError(
                f"retrieval must be one of {', '.join(RETRIEVAL_MODES)}, got {self.retrieval!r}"
            )
        if self.answerer not in ANSWERERS:
            raise SettingsError(
                f"answerer must be one of {', '.join(ANSWERERS)}, got {self.answerer!r}"
            )
        _positive(self, "llm_timeout_s", "llm_max_tokens")
        if self.llm_retries < 0:
            raise SettingsError(f"llm_retries must be >= 0, got {self.llm_retries}")
        if not 0.0 <= self.llm_temperature <= 2.0:
            raise SettingsError(
                f"llm_temperature must be between 0 and 2, got {self.llm_temperature}"
            )
        if self.chroma_url:
            _check_url("chroma_url", self.chroma_url)
        if self.refresh_interval_s < 0:
            raise SettingsError(f"refresh_interval_s must be >= 0, got {self.refresh_interval_s}")
        if not 0.0 <= self.min_evidence <= 1.0:
            raise SettingsError(f"min_evidence must be between 0 and 1, got {self.min_evidence}")
        _positive(self, "max_body_bytes", "max_upload_bytes")
        for origin in self.cors_origin_list:
            if origin != "*":
                _check_origin("cors_origins", origin)
        if not self.frame_ancestor_list:
            raise SettingsError("frame_ancestors must name at least one source, e.g. 'self'")
        for source in self.frame_ancestor_list:
            if not _CSP_SOURCE.fullmatch(source):
                raise SettingsError(f"frame_ancestors has a bad source: {source!r}")
        if not 3 <= len(self.collection) <= 512 or not all(
            ch.isalnum() or ch in "._-" for ch in self.collection
        ):
            raise SettingsError(
                f"collection must be 3-512 characters of letters, digits, '.', '_' or '-',"
                f" got {self.collection!r}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Defaults overridden by the ``RAG_*`` variables present in ``environ``."""
        values = {name: environ[var] for var, name in ENV_VARS.items() if environ.get(var)}
        return cls().replace(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied; strings are converted to each field's type.

        ``None`` values are ignored, so CLI flags that were not given change nothing.
        """
        types = {f.name: f.type for f in dataclasses.fields(self)}
        converted: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in types:
                raise SettingsError(f"unknown setting {name!r}")
            if value is None:
                continue
            converted[name] = _convert(name, str(types[name]), value)
        return dataclasses.replace(self, **converted)

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

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return tuple(o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip())

    @property
    def frame_ancestor_list(self) -> tuple[str, ...]:
        return tuple(self.frame_ancestors.replace(",", " ").split())


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
        raise SettingsError(f"{name} must list origins such as https://cms.example, got {origin!r}")


def _check_url(name: str, url: str) -> None:
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise SettingsError(f"{name} must be an http(s)://host:port URL, got {url!r}")
    try:
        parsed.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise SettingsError(f"{name} has a bad port: {url!r}") from None


def _positive(settings: Settings, *names: str) -> None:
    for name in names:
        value = getattr(settings, name)
        if value <= 0:
            raise SettingsError(f"{name} must be greater than 0, got {value}")


def _convert(name: str, type_name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        if type_name == "int":
            return int(value)
        if type_name == "float":
            return float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {value!r}") from None
    if type_name == "Path":
        return Path(value).expanduser()
    return value
