"""The embedder registry and the two real providers: float32 sentence-transformers and the
int8 ONNX build of the same model, which must agree closely enough to swap one for the other
(after a re-index: their model ids differ)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.embed import (
    PACKAGED_MODEL_ID,
    PACKAGED_ONNX_MODEL_ID,
    Embedder,
    available_embedders,
    create_embedder,
)
from rag.errors import ProviderError

NEWS = [
    "The European Central Bank left interest rates unchanged on Thursday.",
    "Heavy snowfall closed schools and roads across the north of the country.",
    "The prime minister announced a cabinet reshuffle after the election defeat.",
    "Rescue teams searched the rubble for survivors after the earthquake struck at dawn.",
    "Oil prices rose after producers agreed to cut output for six months.",
    "The striker scored twice as the home side won the cup final 3-1.",
    "Health officials reported a rise in flu cases in hospitals this winter.",
    "The company said it would cut 2,000 jobs as sales of its phones fell.",
    "Protesters gathered outside parliament to oppose the new pension law.",
    "Scientists found traces of water ice beneath the surface of Mars.",
    "A ceasefire in the city allowed aid convoys to reach trapped civilians.",
    "The central bank warned that household debt had reached a record high.",
    "The airline cancelled hundreds of flights because of a pilots' strike.",
    "Police arrested three men suspected of planning an attack on a concert.",
    "The new museum of modern art opened its doors to the public on Saturday.",
    "Farmers blamed the drought for the worst wheat harvest in a decade.",
    "The president signed an executive order restricting travel from seven countries.",
    "Floods forced thousands of families to leave their homes along the river.",
    "The tech giant unveiled a smartphone with a folding screen.",
    "Negotiators reached a deal on the country's exit from the trade bloc.",
]

QUERIES = [
    ("Did the ECB change interest rates?", 0),
    ("How many jobs will the phone maker cut?", 7),
    ("What did researchers discover on Mars?", 9),
    ("Why were flights cancelled?", 12),
    ("Who was arrested over the concert plot?", 13),
]


# -- the registry and settings: no model is loaded --------------------------------------------


def test_unknown_provider_error_lists_the_available_ones() -> None:
    with pytest.raises(ProviderError) as caught:
        create_embedder(Settings(embedding_provider="no-such-embedder"))
    message = str(caught.value)
    assert "no-such-embedder" in message
    for name in ("sentence-transformers", "onnx-int8"):
        assert name in available_embedders()
        assert name in message


def test_the_two_providers_have_different_model_ids() -> None:
    fp32 = create_embedder(Settings(embedding_provider="sentence-transformers"))
    int8 = create_embedder(Settings(embedding_provider="onnx-int8"))
    assert fp32.model_id == PACKAGED_MODEL_ID
    assert int8.model_id == PACKAGED_ONNX_MODEL_ID
    assert fp32.model_id != int8.model_id
    assert isinstance(int8, Embedder)


def test_auto_is_int8_onnx_on_the_cpu_and_torch_elsewhere(tmp_path: Path) -> None:
    assert create_embedder(Settings()).model_id == PACKAGED_ONNX_MODEL_ID
    # A model directory of one's own is a sentence-transformers one: auto loads it with torch
    # (here it is empty, so loading fails, naming sentence-transformers' folder, not ONNX's).
    with pytest.raises(ProviderError) as caught:
        create_embedder(Settings(embedding_model=str(tmp_path))).embed(["x"])
    assert "model.onnx" not in str(caught.value)


def test_onnx_provider_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match=r"model\.onnx"):
        create_embedder(Settings(embedding_provider="onnx-int8", embedding_model=str(tmp_path)))
    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(ProviderError, match=r"tokenizer\.json"):
        create_embedder(Settings(embedding_provider="onnx-int8", embedding_model=str(tmp_path)))


def test_onnx_provider_loads_nothing_until_the_first_embed(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    (tmp_path / "tokenizer.json").write_text("{}", encoding="utf-8")
    embedder = create_embedder(
        Settings(embedding_provider="onnx-int8", embedding_model=str(tmp_path))
    )
    assert embedder.model_id == f"onnx:{(tmp_path / 'model.onnx').resolve()}"
    with pytest.raises(ProviderError, match="could not load ONNX embedding model"):
        embedder.embed(["a broken model fails with a clear error"])


def test_onnx_provider_refuses_a_gpu_device() -> None:
    with pytest.raises(ProviderError, match="CPU only"):
        create_embedder(Settings(embedding_provider="onnx-int8", device="cuda"))


# -- the real models ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fp32() -> Embedder:
    return create_embedder(Settings(embedding_provider="sentence-transformers"))


@pytest.fixture(scope="module")
def int8() -> Embedder:
    return create_embedder(Settings(embedding_provider="onnx-int8"))


@pytest.fixture(params=["fp32", "int8"])
def embedder(request: pytest.FixtureRequest) -> Embedder:
    result: Embedder = request.getfixturevalue(request.param)
    return result


@pytest.mark.integration
def test_shapes_unit_norm_and_determinism(embedder: Embedder) -> None:
    vectors = embedder.embed(NEWS[:12])
    assert vectors.shape == (12, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(embedder.embed(NEWS[:12]), vectors, atol=1e-6)


@pytest.mark.integration
def test_empty_input(embedder: Embedder) -> None:
    vectors = embedder.embed([])
    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


@pytest.mark.integration
def test_order_is_kept_across_batches_of_very_different_lengths() -> None:
    base = Settings(embedding_provider="onnx-int8")
    small_batches = create_embedder(base.replace(embed_batch_size=2))
    long_text = " ".join(NEWS) * 3  # far past the 256-token limit
    texts = ["Rain.", long_text, NEWS[4], "Oil.", " ".join(NEWS[:4]), NEWS[9], "", NEWS[0] * 2]
    together = small_batches.embed(texts)
    alone = np.stack([small_batches.embed([t])[0] for t in texts])
    assert together.shape == (len(texts), 384)
    similarity = together @ alone.T
    # Each row is its own text's vector (padding and int8 activation scales may move it a
    # little, never onto another text's).
    assert list(similarity.argmax(axis=1)) == list(range(len(texts)))
    assert np.diag(similarity).min() > 0.99


@pytest.mark.integration
def test_int8_vectors_are_close_to_the_float32_ones(fp32: Embedder, int8: Embedder) -> None:
    texts = [*NEWS[:12], " ".join(NEWS)]  # the last one is cut at 256 tokens by both
    cosines = np.sum(fp32.embed(texts) * int8.embed(texts), axis=1)
    assert cosines.min() > 0.97, cosines


@pytest.mark.integration
def test_int8_and_float32_rank_alike(fp32: Embedder, int8: Embedder) -> None:
    agree = 0
    corpus32, corpus8 = fp32.embed(NEWS), int8.embed(NEWS)
    queries32 = fp32.embed([q for q, _ in QUERIES])
    queries8 = int8.embed([q for q, _ in QUERIES])
    for n, (_, expected) in enumerate(QUERIES):
        top32 = int(np.argmax(corpus32 @ queries32[n]))
        top8 = int(np.argmax(corpus8 @ queries8[n]))
        assert top32 == expected  # the fixture itself is sound
        agree += top32 == top8
    assert agree >= 4


def test_cached_embedder_embeds_each_text_once_and_forgets_the_oldest() -> None:
    from rag.embed import CachedEmbedder
    from tests.conftest import HashEmbedder

    calls: list[list[str]] = []

    class Counting(HashEmbedder):
        def embed(self, texts):  # type: ignore[no-untyped-def]
            calls.append(list(texts))
            return super().embed(texts)

    cached = CachedEmbedder(Counting(), size=2)
    first = cached.embed(["a b", "c d", "a b"])
    assert calls == [["a b", "c d"]] and first.shape == (3, 64)
    assert np.array_equal(cached.embed(["c d"])[0], first[1]) and len(calls) == 1
    cached.embed(["e f"])  # "a b" is the least recently used: it goes
    cached.embed(["a b"])
    assert calls[-1] == ["a b"] and cached.model_id == "fake/hash-64"


def test_cached_embedder_answers_a_batch_larger_than_it_holds() -> None:
    from rag.embed import CachedEmbedder
    from tests.conftest import HashEmbedder

    texts = [f"text number {i}" for i in range(7)]
    got = CachedEmbedder(HashEmbedder(), size=2).embed(texts)
    assert np.array_equal(got, HashEmbedder().embed(texts))
