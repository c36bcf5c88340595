"""An OpenAI-compatible server (the API of OpenAI and of vLLM's `vllm serve`) for tests and benchmarks."""

from emulator.openai.server import Behaviour, OpenAICompatibleServer, RecordedCall

__all__ = ["Behaviour", "OpenAICompatibleServer", "RecordedCall"]
