"""all-MiniLM-L6-v2 as an ONNX graph for onnxruntime, built from the shipped safetensors weights.

No deep-learning framework exports it: the graph is written node by node with onnx's helper API (BERT's
six layers, 384 wide, twelve heads, then mean pooling over the real tokens and L2 normalisation, exactly as
sentence-transformers computes it) and then dynamically quantized to int8 (weights per output channel,
activations per batch at run time), which is what makes it fast on a small CPU.

Inputs: `input_ids` and `attention_mask`, both int64 [batch, tokens]; output: `embeddings`, float32
[batch, hidden], unit length.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from safetensors.numpy import load_file

# Opset 17 has LayerNormalization; onnxruntime fuses the rest (GELU, skip connections) when it loads.
OPSET = 17
# Padding positions get this added to their attention scores, so no real token attends to them.
MASKED = -1e4


@dataclass
class _GraphBuilder:
    weights: dict[str, NDArray[np.float32]]
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: dict[str, onnx.TensorProto] = field(default_factory=dict)

    def const(self, name: str, value: NDArray[np.generic] | float | list[int]) -> str:
        """An initializer (integers as int64, Python floats as float32), added once under its name."""
        if name not in self.initializers:
            array = np.asarray(value)
            if array.dtype == np.float64:
                array = array.astype(np.float32)
            self.initializers[name] = numpy_helper.from_array(array, name)
        return name

    def weight(self, name: str, *, transposed: bool = False) -> str:
        array = self.weights[name]
        return self.const(name, np.ascontiguousarray(array.T) if transposed else array)

    def __call__(self, op_type: str, *inputs: str, **attributes: Any) -> str:
        """A node: the name of its output."""
        name = f"{op_type}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], name=name, **attributes))
        return name

    def linear(self, x: str, prefix: str) -> str:
        product = self("MatMul", x, self.weight(f"{prefix}.weight", transposed=True))
        return self("Add", product, self.weight(f"{prefix}.bias"))

    def layer_norm(self, x: str, prefix: str, eps: float) -> str:
        scale, bias = self.weight(f"{prefix}.weight"), self.weight(f"{prefix}.bias")
        return self("LayerNormalization", x, scale, bias, axis=-1, epsilon=eps)


def bert_graph(model_dir: Path) -> onnx.ModelProto:
    """The float32 graph of the sentence-transformers model in model_dir (config.json, model.safetensors)."""
    config = json.loads((model_dir / "config.json").read_text())
    hidden: int = config["hidden_size"]
    heads: int = config["num_attention_heads"]
    eps: float = config["layer_norm_eps"]
    head_dim = hidden // heads
    g = _GraphBuilder(load_file(str(model_dir / "model.safetensors")))

    width = g("Gather", g("Shape", "input_ids"), g.const("one", 1), axis=0)
    positions = g("Range", g.const("zero", 0), width, "one")
    words = g("Gather", g.weight("embeddings.word_embeddings.weight"), "input_ids", axis=0)
    placed = g("Gather", g.weight("embeddings.position_embeddings.weight"), positions, axis=0)
    # Every token is of type 0 (single sentences).
    segment = g.const("token_type_0", g.weights["embeddings.token_type_embeddings.weight"][0])
    x = g("Add", g("Add", words, placed), segment)
    x = g.layer_norm(x, "embeddings.LayerNorm", eps)

    mask = g("Cast", "attention_mask", to=TensorProto.FLOAT)
    padding = g("Sub", g.const("one_f", 1.0), mask)
    attention_bias = g("Unsqueeze", g("Mul", padding, g.const("masked", MASKED)), g.const("axes_1_2", [1, 2]))
    split_heads = g.const("split_heads", [0, 0, heads, head_dim])
    merge_heads = g.const("merge_heads", [0, 0, hidden])
    scale = g.const("scale", 1.0 / np.sqrt(head_dim))
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."
        q, k, v = (g.linear(x, f"{p}attention.self.{name}") for name in ("query", "key", "value"))
        q = g("Transpose", g("Reshape", q, split_heads), perm=[0, 2, 1, 3])
        k = g("Transpose", g("Reshape", k, split_heads), perm=[0, 2, 3, 1])
        v = g("Transpose", g("Reshape", v, split_heads), perm=[0, 2, 1, 3])
        scores = g("Add", g("Mul", g("MatMul", q, k), scale), attention_bias)
        context = g("MatMul", g("Softmax", scores, axis=-1), v)
        context = g("Reshape", g("Transpose", context, perm=[0, 2, 1, 3]), merge_heads)
        attended = g("Add", g.linear(context, f"{p}attention.output.dense"), x)
        x = g.layer_norm(attended, f"{p}attention.output.LayerNorm", eps)
        inner = g.linear(x, f"{p}intermediate.dense")
        # GELU in its exact (erf) form, as BERT computes it.
        erf = g("Erf", g("Div", inner, g.const("sqrt_2", np.sqrt(2.0))))
        gelu = g("Mul", g("Mul", inner, g.const("half", 0.5)), g("Add", erf, "one_f"))
        x = g.layer_norm(g("Add", g.linear(gelu, f"{p}output.dense"), x), f"{p}output.LayerNorm", eps)

    tokens_axis = g.const("axis_1", [1])
    masked_x = g("Mul", x, g("Unsqueeze", mask, g.const("axis_2", [2])))
    pooled = g("Div", g("ReduceSum", masked_x, tokens_axis, keepdims=0), g("ReduceSum", mask, tokens_axis))
    g.nodes.append(helper.make_node("LpNormalization", [pooled], ["embeddings"], axis=1, p=2))

    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", hidden])],
        list(g.initializers.values()),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model


def build_int8_graph(model_dir: Path, target: Path) -> None:
    """Write the int8 graph of the model in model_dir to target (the float32 one only passes through)."""
    float_graph = target.with_name(target.name + ".float32")
    onnx.save(bert_graph(model_dir), str(float_graph))
    # The quantizer logs advice about calibration that does not apply to dynamic quantization.
    quantizer_log = logging.getLogger()
    level = quantizer_log.level
    quantizer_log.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            float_graph,
            target,
            weight_type=QuantType.QInt8,
            # Per output channel: per-tensor weight scales cost too much accuracy (cosine to the float
            # model down to 0.90 on chat lines, against 0.98 per channel).
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            # Only products with a weight matrix: attention's activation-by-activation products stay float.
            extra_options={"MatMulConstBOnly": True},
        )
    finally:
        quantizer_log.setLevel(level)
        float_graph.unlink()
