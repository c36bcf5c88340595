"""Cost estimate of a completion from a price table per model (USD per million tokens, input and output)."""

from __future__ import annotations

# Published list prices; self-hosted models cost GPU time, not tokens, and estimate as 0 unless listed here.
PRICES_PER_MILLION: dict[str, tuple[float, float]] = {
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-4": (30.00, 60.00),
    "gpt-3.5-turbo": (0.50, 1.50),
}


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    input_price, output_price = PRICES_PER_MILLION.get(model, (0.0, 0.0))
    return (prompt_tokens * input_price + completion_tokens * output_price) / 1_000_000
