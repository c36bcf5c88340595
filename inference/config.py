"""Configuration of the inference workers: the endpoint pool and the worker's limits.

The pool is described by one string (proposed env var INFERENCE_ENDPOINTS), entries separated by ";":

    name=url|models|max_concurrency

`models` is a comma-separated list of model names or glob patterns ("gpt-*", "*" for any), as the endpoint
serves them (`vllm serve <model> --served-model-name ...`). `max_concurrency` is how many requests the
worker keeps in flight on that endpoint (match vLLM's --max-num-seqs). Example:

    vllm-a=http://vllm-a:8000/v1|meta-llama/Llama-3.1-8B-Instruct|256;vllm-b=http://vllm-b:8000/v1|*|256

OpenAI (or any other OpenAI-compatible provider) is one more endpoint, built from OPENAI_BASE_URL and
OPENAI_API_KEY. With neither of those nor INFERENCE_ENDPOINTS, the pool is the embedded model server that
`deep stack up` starts (DEEP_LOCAL_MODEL, on by default), serving every model name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.inference import LOCAL_MODEL_NAME
from settings import Settings

OPENAI_API_URL = "https://api.openai.com/v1"
DEFAULT_OPENAI_CONCURRENCY = 64
# The embedded server generates one reply at a time; the pool queues the others in priority order.
LOCAL_MODEL_CONCURRENCY = 1
LOCAL_ENDPOINT_NAME = "local"


@dataclass(frozen=True)
class EndpointConfig:
    name: str
    base_url: str
    models: tuple[str, ...]
    max_concurrency: int
    api_key: str = field(default="", repr=False)
    # The one model the endpoint serves, named in every request to it in place of the model asked for, so
    # that results (and their cost) carry the model that really answered.
    served_model: str = ""


@dataclass(frozen=True)
class InferenceConfig:
    endpoints: tuple[EndpointConfig, ...]
    # Per attempt; a request gets up to max_attempts, each on another endpoint where there is one.
    request_timeout_s: float = 30.0
    max_attempts: int = 3
    backoff_base_s: float = 0.2
    breaker_failures: int = 3
    breaker_cooldown_s: float = 15.0
    # Longest a request waits for a free endpoint slot before it is answered by the persona fallback.
    queue_timeout_s: float = 60.0
    # Consumption of a lane pauses while this many of its requests are in the worker.
    max_in_flight_per_lane: int = 1024
    cache_ttl_s: int = 3600
    # How long an answered request id is remembered (with its result) so a redelivery is not called again.
    result_ttl_s: int = 3600
    key_prefix: str = "deep:inference:"
    # Static group membership: a worker restarted under the same id gets its lanes' partitions back at
    # once. One id per worker; None joins dynamically.
    instance_id: str | None = None


def parse_endpoints(
    spec: str, api_key: str = "", source: str = "INFERENCE_ENDPOINTS"
) -> list[EndpointConfig]:
    """Endpoints from `name=url|models|max_concurrency;...`; errors name the entry and the field."""
    endpoints: list[EndpointConfig] = []
    for index, entry in enumerate(part.strip() for part in spec.split(";")):
        if not entry:
            continue
        where = f"{source} entry {index + 1}"
        name, sep, rest = entry.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"{where}: expected name=url|models|max_concurrency, got {entry!r}")
        where = f"{where} ({name})"
        fields = [f.strip() for f in rest.split("|")]
        if len(fields) != 3:
            raise ValueError(f"{where}: expected url|models|max_concurrency, got {rest!r}")
        url, models, concurrency = fields
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{where}: url must start with http:// or https://, got {url!r}")
        patterns = tuple(m.strip() for m in models.split(",") if m.strip())
        if not patterns:
            raise ValueError(f"{where}: models must name at least one model or '*'")
        if not concurrency.isdigit() or int(concurrency) < 1:
            raise ValueError(f"{where}: max_concurrency must be a positive integer, got {concurrency!r}")
        if any(e.name == name for e in endpoints):
            raise ValueError(f"{where}: duplicate endpoint name")
        endpoints.append(EndpointConfig(name, url.rstrip("/"), patterns, int(concurrency), api_key))
    return endpoints


def openai_endpoint(base_url: str, api_key: str, models: str = "*") -> EndpointConfig | None:
    """The OpenAI endpoint, configured when a base URL or an API key is set."""
    if not base_url and not api_key:
        return None
    patterns = tuple(m.strip() for m in models.split(",") if m.strip()) or ("*",)
    return EndpointConfig(
        "openai", (base_url or OPENAI_API_URL).rstrip("/"), patterns, DEFAULT_OPENAI_CONCURRENCY, api_key
    )


def local_endpoint(base_url: str) -> EndpointConfig:
    """The embedded model server, answering whatever model an agent names."""
    return EndpointConfig(
        LOCAL_ENDPOINT_NAME, base_url, ("*",), LOCAL_MODEL_CONCURRENCY, served_model=LOCAL_MODEL_NAME
    )


def inference_config(
    settings: Settings, endpoints: str = "", endpoint_api_key: str = "", **limits: Any
) -> InferenceConfig:
    """The pool from `endpoints` (INFERENCE_ENDPOINTS syntax) plus OpenAI when OPENAI_BASE_URL or
    OPENAI_API_KEY is set; with neither, the embedded model server unless DEEP_LOCAL_MODEL is off. An empty
    pool is valid: every request is answered by the persona fallback."""
    pool = parse_endpoints(endpoints, api_key=endpoint_api_key)
    openai = openai_endpoint(settings.openai_base_url, settings.openai_api_key)
    if openai is not None:
        pool.append(openai)
    if not pool and settings.local_model:
        pool.append(local_endpoint(settings.local_model_url))
    return InferenceConfig(endpoints=tuple(pool), **limits)
