"""The embedder against reference vectors of the float model: the graph built from the weights computes
sentence-transformers' embeddings, and its int8 form stays close enough to rank memories the same way."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from infra.stack.embedding_graph import bert_graph
from infra.stack.weaviate import embedding_model_dir
from memory.embedding import Embedder
from models.memory import EMBEDDING_DIMENSIONS
from settings import Settings

# The model and its graph are installed by the stack's Weaviate step.
pytestmark = pytest.mark.stack

REFERENCE = json.loads((Path(__file__).with_name("minilm_reference.json")).read_text())["vectors"]
TEXTS = list(REFERENCE)
EXPECTED = np.array([REFERENCE[text] for text in TEXTS], dtype=np.float32)


@pytest.fixture(scope="module")
def embedder(stack_up: Settings) -> Embedder:
    return Embedder.from_settings(stack_up)


def test_the_float_graph_computes_the_reference_vectors(stack_up: Settings) -> None:
    model_dir = embedding_model_dir(stack_up)
    session = onnxruntime.InferenceSession(
        bert_graph(model_dir).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    embedder = Embedder.from_settings(stack_up)
    encodings = embedder.tokenizer.encode_batch(TEXTS)
    for text, encoding, expected in zip(TEXTS, encodings, EXPECTED, strict=True):
        ids = np.array([encoding.ids], dtype=np.int64)
        (vector,) = session.run(["embeddings"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
        assert float(vector @ expected) > 0.9999, text


def test_int8_vectors_stay_close_to_the_reference(embedder: Embedder) -> None:
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (len(TEXTS), EMBEDDING_DIMENSIONS)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    cosines = (vectors * EXPECTED).sum(axis=1)
    assert cosines.min() > 0.97, dict(zip(TEXTS, cosines.round(4), strict=True))
    # What recall ranks by: the similarities between texts stay within 0.03 of the reference's, so a neighbour
    # the reference prefers by more than 0.06 stays preferred. (Nearer than that, two texts unrelated to a
    # third are a tie: the reference's 0.1015 and 0.0998 for the market crash swap places on some CPUs, whose
    # int8 kernels round differently.)
    np.testing.assert_allclose(vectors @ vectors.T, EXPECTED @ EXPECTED.T, atol=0.03)


def test_a_texts_vector_barely_depends_on_its_batch(embedder: Embedder) -> None:
    """Activations are quantized per batch: companions of other lengths shift a vector only a little."""
    alone = embedder.embed([TEXTS[0]])[0]
    among = embedder.embed(TEXTS)[0]
    assert float(alone @ among) > 0.98
