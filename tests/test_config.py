"""Tests for ``rag.config.Settings``: defaults, environment, overrides, the five sections, and
validation that names the bad value and its variable."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from rag.config import (
    ENV_VARS,
    RETRIEVAL_MODES,
    SECTIONS,
    AnswerSettings,
    IndexSettings,
    LlmSettings,
    RetrievalSettings,
    ServeSettings,
    Settings,
)
from rag.errors import RagError, SettingsError


def test_defaults_are_offline_and_valid() -> None:
    s = Settings()
    assert s.data_dir == Path(".rag")
    assert s.corpus_dir == Path("corpus")
    assert s.collection == "articles"
    assert s.embedding_provider == "auto"
    assert s.embedding_model == ""
    assert s.device == "cpu"
    assert s.chunk_chars == 900
    assert s.chunk_overlap_sentences == 1
    assert (s.top_k, s.candidates, s.rrf_k) == (5, 30, 60)
    assert s.retrieval.retrieval == "hybrid"
    assert s.answerer == "extractive"
    assert s.min_evidence == 0.42
    assert (s.host, s.port) == ("127.0.0.1", 7860)
    assert (s.api_keys, s.api_keys_file, s.cors_origin_list) == ("", "", ())
    assert s.frame_ancestor_list == ("'self'",)
    assert (s.max_body_bytes, s.max_upload_bytes) == (2 * 1024 * 1024, 20 * 1024 * 1024)


def test_derived_paths_live_under_data_dir(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    assert s.chroma_dir == tmp_path / "chroma"
    assert s.lexical_dir == tmp_path / "lexical"
    assert s.lock_path == tmp_path / "write.lock"


def test_string_paths_become_paths() -> None:
    s = Settings(data_dir="idx", corpus_dir="articles")  # type: ignore[arg-type]
    assert s.data_dir == Path("idx") and isinstance(s.data_dir, Path)
    assert s.corpus_dir == Path("articles") and isinstance(s.corpus_dir, Path)


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().top_k = 3  # type: ignore[misc]


def test_from_env_of_an_empty_environment_gives_the_defaults() -> None:
    assert Settings.from_env({}) == Settings()


def test_from_env_reads_rag_variables_and_converts_types(tmp_path: Path) -> None:
    env = {
        "RAG_DATA_DIR": str(tmp_path / "index"),
        "RAG_CORPUS_DIR": str(tmp_path / "articles"),
        "RAG_COLLECTION": "news_2025",
        "RAG_CHROMA_URL": "http://127.0.0.1:8000",
        "RAG_REFRESH_INTERVAL_S": "0.5",
        "RAG_EMBEDDING_PROVIDER": "fake-hash",
        "RAG_EMBEDDING_MODEL": "some/model",
        "RAG_DEVICE": "cuda",
        "RAG_EMBED_BATCH_SIZE": "64",
        "RAG_CHUNK_CHARS": "1200",
        "RAG_TOP_K": "8",
        "RAG_CANDIDATES": "40",
        "RAG_RERANK_DEPTH": "30",
        "RAG_FUSION": "rrf",
        "RAG_DENSE_WEIGHT": "0.5",
        "RAG_SAME_ARTICLE_DECAY": "0.9",
        "RAG_RETRIEVAL": "lexical",
        "RAG_MIN_EVIDENCE": "0.5",
        "RAG_SENTENCES_EMBEDDED": "20",
        "RAG_MAX_QUESTION_CHARS": "500",
        "RAG_ANSWERER": "llm",
        "RAG_LLM_PROVIDER": "llamacpp",
        "RAG_LLM_BASE_URL": "http://127.0.0.1:8080/v1",
        "RAG_LLM_MODEL": "qwen2.5",
        "RAG_LLM_API_KEY": "sk-test",
        "RAG_LLM_MODEL_PATH": "/models/qwen.gguf",
        "RAG_LLM_TIMEOUT_S": "2.5",
        "RAG_LLM_RETRIES": "0",
        "RAG_LLM_MAX_TOKENS": "200",
        "RAG_LLM_TEMPERATURE": "0.2",
        "RAG_HOST": "0.0.0.0",
        "RAG_PORT": "8080",
        "RAG_API_KEYS": "key-one, key-two",
        "RAG_API_KEYS_FILE": "/etc/rag/keys",
        "RAG_CORS_ORIGINS": "https://cms.example, http://127.0.0.1:8000",
        "RAG_FRAME_ANCESTORS": "'self' https://cms.example",
        "RAG_MAX_BODY_BYTES": "1000",
        "RAG_MAX_UPLOAD_BYTES": "5000",
        "RAG_JUDGE": "trained",
        "RAG_JUDGE_CANDIDATES": "12",
        "RAG_JUDGE_THRESHOLD": "0.5",
        "RAG_ANSWER_EXTRA_RATIO": "0.7",
        "RAG_LEXICAL": "bm25s",
        "RAG_FTS_SEGMENT": "off",
        "RAG_STORE": "chroma",
        "RAG_LLM": "openai:gpt-4o-mini",
        "RAG_MAX_CONCURRENT_ASKS": "4",
        "RAG_MAX_QUEUED_ASKS": "16",
        "RAG_ASYNC_INGEST_CHARS": "5000",
    }
    assert set(env) == set(ENV_VARS)  # every documented variable is exercised
    s = Settings.from_env(env)
    assert s.data_dir == tmp_path / "index"
    assert s.corpus_dir == tmp_path / "articles"
    assert s.collection == "news_2025"
    assert s.chroma_url == "http://127.0.0.1:8000" and s.refresh_interval_s == 0.5
    assert s.embedding_provider == "fake-hash"
    assert s.embedding_model == "some/model"
    assert s.device == "cuda"
    assert s.embed_batch_size == 64
    assert s.chunk_chars == 1200
    assert s.top_k == 8
    assert s.candidates == 40
    assert s.rerank_depth == 30
    assert (s.fusion, s.dense_weight, s.same_article_decay) == ("rrf", 0.5, 0.9)
    assert s.retrieval.retrieval == "lexical"
    assert s.lexical == "bm25s" and s.store == "chroma" and s.fts_segment == "off"
    assert s.llm.llm == "openai:gpt-4o-mini"
    assert s.min_evidence == 0.5
    assert s.sentences_embedded == 20
    assert s.max_question_chars == 500
    assert s.answerer == "llm"
    assert (s.llm_provider, s.llm_base_url, s.llm_model) == (
        "llamacpp",
        "http://127.0.0.1:8080/v1",
        "qwen2.5",
    )
    assert (s.llm_api_key, s.llm_model_path) == ("sk-test", "/models/qwen.gguf")
    assert (s.llm_timeout_s, s.llm_retries, s.llm_max_tokens) == (2.5, 0, 200)
    assert s.llm_temperature == 0.2
    assert "sk-test" not in repr(s)  # the key never shows in a repr or a log line
    assert s.host == "0.0.0.0"
    assert s.port == 8080
    assert (s.api_keys, s.api_keys_file) == ("key-one, key-two", "/etc/rag/keys")
    assert "key-one" not in repr(s)
    assert s.cors_origin_list == ("https://cms.example", "http://127.0.0.1:8000")
    assert s.frame_ancestor_list == ("'self'", "https://cms.example")
    assert (s.max_body_bytes, s.max_upload_bytes) == (1000, 5000)
    assert (s.max_concurrent_asks, s.max_queued_asks, s.async_ingest_chars) == (4, 16, 5000)
    for name in ("embed_batch_size", "chunk_chars", "top_k", "candidates", "port"):
        assert type(getattr(s, name)) is int
    assert type(s.min_evidence) is float
    assert isinstance(s.data_dir, Path)


def test_from_env_expands_a_home_directory() -> None:
    s = Settings.from_env({"RAG_DATA_DIR": "~/rag-index"})
    assert s.data_dir == Path("~/rag-index").expanduser()


def test_from_env_ignores_empty_and_unrelated_variables() -> None:
    env = {"RAG_TOP_K": "", "HOME": "/somewhere", "PATH": "/bin", "RAG_NOT_A_SETTING": "1"}
    assert Settings.from_env(env) == Settings()


def test_replace_converts_strings_and_keeps_other_fields() -> None:
    base = Settings(top_k=3)
    s = base.replace(candidates="12", min_evidence="0.25", data_dir="elsewhere")
    assert (s.candidates, s.min_evidence, s.data_dir) == (12, 0.25, Path("elsewhere"))
    assert s.top_k == 3
    assert base.candidates == 30  # the original is unchanged


def test_replace_ignores_none() -> None:
    base = Settings(top_k=7, retrieval="dense")
    assert base.replace(top_k=None, retrieval=None, data_dir=None) == base


def test_replace_with_nothing_is_equal() -> None:
    assert Settings().replace() == Settings()


def test_replace_accepts_already_typed_values() -> None:
    s = Settings().replace(top_k=2, min_evidence=0.1, data_dir=Path("x"))
    assert (s.top_k, s.min_evidence, s.data_dir) == (2, 0.1, Path("x"))


@pytest.mark.parametrize(
    ("changes", "in_message"),
    [
        ({"top_k": 0}, "0"),
        ({"top_k": -1}, "-1"),
        ({"chunk_chars": 199}, "199"),
        ({"embed_batch_size": 0}, "0"),
        ({"port": 0}, "0"),
        ({"chunk_overlap_sentences": -1}, "-1"),
        ({"max_history_turns": -2}, "-2"),
        ({"retrieval": "fuzzy"}, "'fuzzy'"),
        ({"answerer": "oracle"}, "'oracle'"),
        ({"llm_timeout_s": 0}, "0"),
        ({"llm_retries": -1}, "-1"),
        ({"llm_max_tokens": 0}, "0"),
        ({"llm_temperature": 3}, "3"),
        ({"min_evidence": 2}, "2"),
        ({"min_evidence": -0.1}, "-0.1"),
        ({"collection": "x"}, "'x'"),
        ({"max_body_bytes": 0}, "0"),
        ({"max_upload_bytes": -1}, "-1"),
        ({"cors_origins": "cms.example"}, "'cms.example'"),
        ({"cors_origins": "https://cms.example/path"}, "/path"),
        ({"frame_ancestors": "'self'; script-src *"}, "'self';"),
        ({"frame_ancestors": " "}, "frame_ancestors"),
        ({"collection": "has space"}, "'has space'"),
        ({"collection": "a" * 513}, "a" * 513),
        ({"fts_segment": "sometimes"}, "'sometimes'"),
        ({"same_article_decay": 0}, "0"),
        ({"same_article_decay": 1.5}, "1.5"),
    ],
)
def test_bad_values_raise_settings_error_naming_the_value(
    changes: dict[str, Any], in_message: str
) -> None:
    (name,) = changes
    with pytest.raises(SettingsError) as raised:
        Settings(**changes)
    assert name in str(raised.value)
    assert in_message in str(raised.value)
    with pytest.raises(SettingsError):
        Settings().replace(**changes)


def test_every_retrieval_mode_is_accepted() -> None:
    for mode in RETRIEVAL_MODES:
        assert Settings(retrieval=mode).retrieval.retrieval == mode


@pytest.mark.parametrize("collection", ["abc", "news_2025", "a.b-c", "x" * 512])
def test_valid_collection_names_are_accepted(collection: str) -> None:
    assert Settings(collection=collection).collection == collection


@pytest.mark.parametrize("min_evidence", [0.0, 1.0, 0.42])
def test_min_evidence_bounds_are_inclusive(min_evidence: float) -> None:
    assert Settings(min_evidence=min_evidence).min_evidence == min_evidence


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("RAG_TOP_K", "many"),
        ("RAG_TOP_K", "3.5"),
        ("RAG_PORT", "http"),
        ("RAG_MIN_EVIDENCE", "high"),
        ("RAG_CHUNK_CHARS", "0"),
        ("RAG_RETRIEVAL", "fuzzy"),
        ("RAG_COLLECTION", "x"),
    ],
)
def test_bad_environment_values_raise_settings_error_naming_them(var: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({var: value})
    assert ENV_VARS[var] in str(raised.value)
    assert value in str(raised.value)


def test_a_non_number_names_the_setting_and_the_value() -> None:
    with pytest.raises(SettingsError, match=r"top_k \(RAG_TOP_K\) must be a number, got 'many'"):
        Settings.from_env({"RAG_TOP_K": "many"})


def test_an_unknown_setting_name_is_rejected() -> None:
    with pytest.raises(SettingsError, match="'top_kk'"):
        Settings().replace(top_kk=3)


def test_an_unknown_setting_is_rejected_even_when_none() -> None:
    with pytest.raises(SettingsError, match="'colour'"):
        Settings().replace(colour=None)


def test_candidates_fewer_than_top_k_are_rejected() -> None:
    with pytest.raises(
        SettingsError,
        match=r"candidates \(RAG_CANDIDATES\) must be at least top_k \(RAG_TOP_K\), got 4 < 5",
    ):
        Settings(candidates=4)
    with pytest.raises(SettingsError):
        Settings.from_env({"RAG_TOP_K": "50"})  # above the default 30 candidates
    assert Settings(top_k=5, candidates=5).candidates == 5


def test_settings_error_is_a_rag_error() -> None:
    assert issubclass(SettingsError, RagError)


@pytest.mark.parametrize("url", ["localhost:8000", "ftp://host:1", "http://", "http://h:notaport"])
def test_a_bad_chroma_url_is_refused_with_the_value(url: str) -> None:
    with pytest.raises(SettingsError, match="chroma_url"):
        Settings(chroma_url=url)


# -- the sections --------------------------------------------------------------------------------


def test_every_field_and_variable_belongs_to_exactly_one_section() -> None:
    owners: dict[str, str] = {}
    for section, kind in SECTIONS.items():
        for f in dataclasses.fields(kind):
            assert f.name not in owners, f"{f.name} is in {owners[f.name]} and {section}"
            owners[f.name] = section
    assert set(ENV_VARS.values()) <= set(owners)
    assert [f.name for f in dataclasses.fields(Settings)] == list(SECTIONS)


def test_flat_names_build_the_sections_and_read_through_them(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, top_k=3, answerer="heuristic", llm_model="m", port=9000)
    assert isinstance(s.index, IndexSettings) and s.index.data_dir == tmp_path
    assert isinstance(s.retrieval, RetrievalSettings) and s.retrieval.top_k == 3
    assert isinstance(s.answer, AnswerSettings) and s.answer.answerer == "heuristic"
    assert isinstance(s.llm, LlmSettings) and s.llm.llm_model == "m"
    assert isinstance(s.serve, ServeSettings) and s.serve.port == 9000
    assert (s.top_k, s.data_dir, s.chroma_dir, s.port) == (3, tmp_path, tmp_path / "chroma", 9000)
    with pytest.raises(AttributeError, match="'colour'"):
        s.colour  # noqa: B018


def test_a_whole_section_can_be_given_and_replace_keeps_the_others() -> None:
    retrieval = RetrievalSettings(top_k=2, retrieval="dense")
    s = Settings(retrieval=retrieval, answerer="heuristic")
    assert s.retrieval is retrieval and s.answer.answerer == "heuristic"
    changed = s.replace(top_k="4")
    assert changed.retrieval == RetrievalSettings(top_k=4, retrieval="dense")
    assert changed.index is s.index and changed.answer is s.answer  # untouched sections
    assert dataclasses.replace(s, top_k=6).retrieval.top_k == 6
    assert Settings(llm="openai:gpt-4o-mini").llm.llm == "openai:gpt-4o-mini"  # a field


def test_sections_are_frozen_and_hashable() -> None:
    for kind in SECTIONS.values():
        section = kind()
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(section, dataclasses.fields(kind)[0].name, None)
        assert hash(section) == hash(kind())
    assert hash(Settings(top_k=3)) == hash(Settings(top_k=3))


def test_a_section_validates_itself_with_the_variable_in_the_message() -> None:
    with pytest.raises(SettingsError, match=r"^top_k \(RAG_TOP_K\) must be greater than 0, got 0$"):
        RetrievalSettings(top_k=0)
    with pytest.raises(SettingsError, match=r"^port \(RAG_PORT\) must be greater than 0"):
        ServeSettings(port=0)
    with pytest.raises(SettingsError, match=r"^answerer \(RAG_ANSWERER\) must be one of"):
        AnswerSettings(answerer="oracle")
    with pytest.raises(SettingsError, match=r"^llm_retries \(RAG_LLM_RETRIES\) must be >= 0"):
        LlmSettings(llm_retries=-1)
    with pytest.raises(SettingsError, match=r"^chunk_chars \(RAG_CHUNK_CHARS\) must be at least"):
        IndexSettings(chunk_chars=10)
    # A field with no variable is named alone.
    with pytest.raises(SettingsError, match=r"^rrf_k must be greater than 0, got 0$"):
        RetrievalSettings(rrf_k=0)


# One bad value per variable that is checked: each is one line naming the variable.
BAD_ENVIRONMENT = {
    "RAG_COLLECTION": "x",
    "RAG_CHROMA_URL": "localhost:8000",
    "RAG_REFRESH_INTERVAL_S": "-1",
    "RAG_EMBED_BATCH_SIZE": "0",
    "RAG_CHUNK_CHARS": "150",
    "RAG_TOP_K": "0",
    "RAG_CANDIDATES": "2",
    "RAG_RERANK_DEPTH": "-1",
    "RAG_FUSION": "max",
    "RAG_DENSE_WEIGHT": "1.5",
    "RAG_SAME_ARTICLE_DECAY": "0",
    "RAG_RETRIEVAL": "fuzzy",
    "RAG_MIN_EVIDENCE": "2",
    "RAG_SENTENCES_EMBEDDED": "0",
    "RAG_JUDGE_CANDIDATES": "0",
    "RAG_JUDGE_THRESHOLD": "1.5",
    "RAG_ANSWER_EXTRA_RATIO": "-0.1",
    "RAG_MAX_QUESTION_CHARS": "0",
    "RAG_ANSWERER": "oracle",
    "RAG_LLM": "gpt-4o-mini",
    "RAG_LLM_PROVIDER": " ",
    "RAG_LLM_BASE_URL": "127.0.0.1:8080",
    "RAG_LLM_TIMEOUT_S": "0",
    "RAG_LLM_RETRIES": "-1",
    "RAG_LLM_MAX_TOKENS": "0",
    "RAG_LLM_TEMPERATURE": "3",
    "RAG_PORT": "0",
    "RAG_CORS_ORIGINS": "cms.example",
    "RAG_FRAME_ANCESTORS": "'self';",
    "RAG_MAX_BODY_BYTES": "0",
    "RAG_MAX_UPLOAD_BYTES": "-1",
    "RAG_MAX_CONCURRENT_ASKS": "0",
    "RAG_MAX_QUEUED_ASKS": "0",
    "RAG_ASYNC_INGEST_CHARS": "0",
}


@pytest.mark.parametrize(("var", "value"), sorted(BAD_ENVIRONMENT.items()))
def test_each_bad_variable_is_one_line_naming_it(var: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({var: value})
    message = str(raised.value)
    assert f"{ENV_VARS[var]} ({var})" in message and "\n" not in message
    assert value.strip() in message or var == "RAG_LLM_PROVIDER"


def test_a_non_number_in_any_numeric_variable_names_it() -> None:
    types = {f.name: str(f.type) for kind in SECTIONS.values() for f in dataclasses.fields(kind)}
    numeric = [var for var, name in ENV_VARS.items() if types[name] in ("int", "float")]
    assert len(numeric) >= 15
    for var in numeric:
        with pytest.raises(SettingsError, match=rf"\({var}\) must be a number, got 'lots'"):
            Settings.from_env({var: "lots"})


def test_assistant_open_hands_each_component_its_own_section(settings: Settings) -> None:
    from rag.assistant import Assistant

    assistant = Assistant.open(settings.replace(top_k=4, max_answer_sentences=2))
    assert assistant.retriever().settings is assistant.settings.retrieval
    assert assistant.retriever().settings.top_k == 4
    assert assistant.parts.settings is assistant.settings.answer
    assert assistant.answerer().settings is assistant.settings.answer  # type: ignore[attr-defined]
    assert assistant._indexer().settings is assistant.settings.index
    for part in (assistant.retriever(), assistant.parts, assistant._indexer()):
        assert not isinstance(part.settings, Settings)
