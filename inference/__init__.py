"""Inference workers: the priority lanes answered by a pool of OpenAI-compatible endpoints (vLLM, OpenAI),
with response cache, monthly quotas, a request ledger for at-least-once delivery, and persona fallback."""
