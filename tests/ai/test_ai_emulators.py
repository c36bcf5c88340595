"""The OpenAI- and ElevenLabs-compatible servers work with the unmodified production clients."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
from elevenlabs.client import AsyncElevenLabs
from elevenlabs.core.api_error import ApiError
from openai.types.chat import ChatCompletionMessageParam

from emulator.elevenlabs import ElevenLabsCompatibleServer
from emulator.elevenlabs.server import MP3_FRAME
from emulator.openai import Behaviour, OpenAICompatibleServer

pytestmark = pytest.mark.stack


def client(server: OpenAICompatibleServer, timeout: float = 5.0, key: str = "sk-test") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=timeout)


async def test_chat_completion_and_models() -> None:
    async with OpenAICompatibleServer(Behaviour(models=["m1", "m2"])) as server:
        api = client(server)
        completion = await api.chat.completions.create(
            model="m1", messages=[{"role": "user", "content": "hi"}], max_tokens=20, temperature=0.1
        )
        assert completion.choices[0].message.content == "echo: hi"
        assert completion.usage is not None and completion.usage.completion_tokens > 0
        models = [m.id async for m in api.models.list()]
        assert models == ["m1", "m2"]
        with pytest.raises(openai.NotFoundError):
            await api.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
        [first, second] = server.completions()
        assert (first.model, first.max_tokens, first.temperature, first.status) == ("m1", 20, 0.1, 200)
        assert first.messages == [{"role": "user", "content": "hi"}]
        assert second.status == 404


async def test_streaming_with_usage() -> None:
    async with OpenAICompatibleServer() as server:
        server.script("a scripted reply that is long enough to come in several chunks")
        stream = await client(server).chat.completions.create(
            model="test-model",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces: list[str] = []
        usage = None
        async for chunk in stream:
            pieces.extend(choice.delta.content or "" for choice in chunk.choices)
            usage = chunk.usage or usage
        assert "".join(pieces) == "a scripted reply that is long enough to come in several chunks"
        assert usage is not None and usage.total_tokens > 0


async def test_scripted_replies_then_responder() -> None:
    async with OpenAICompatibleServer(responder=lambda call: f"#{call.index} {call.model}") as server:
        server.script("one", "two")
        api = client(server)
        texts = []
        for _ in range(3):
            reply = await api.chat.completions.create(
                model="test-model", messages=[{"role": "user", "content": "x"}]
            )
            texts.append(reply.choices[0].message.content)
        assert texts == ["one", "two", "#2 test-model"]


async def test_forced_errors_latency_and_hang() -> None:
    async with OpenAICompatibleServer() as server:
        api = client(server, timeout=0.3)
        messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "x"}]
        server.configure(fail_status=429)
        with pytest.raises(openai.RateLimitError):
            await api.chat.completions.create(model="test-model", messages=messages)
        server.configure(fail_status=None, fail_next=1)
        with pytest.raises(openai.InternalServerError):
            await api.chat.completions.create(model="test-model", messages=messages)
        await api.chat.completions.create(model="test-model", messages=messages)  # fail_next used up
        server.configure(hang=True)
        with pytest.raises(openai.APITimeoutError):
            await api.chat.completions.create(model="test-model", messages=messages)
        server.configure(hang=False, latency_s=0.5)
        with pytest.raises(openai.APITimeoutError):
            await api.chat.completions.create(model="test-model", messages=messages)
        assert [call.status for call in server.completions()][:3] == [429, 500, 200]
        server.configure(latency_s=0.05)
        await asyncio.gather(
            *(api.chat.completions.create(model="test-model", messages=messages) for _ in range(5))
        )
        assert server.peak_in_flight >= 2


async def test_api_key_is_checked() -> None:
    async with OpenAICompatibleServer(Behaviour(api_key="sk-right")) as server:
        with pytest.raises(openai.AuthenticationError):
            await client(server, key="sk-wrong").chat.completions.create(
                model="test-model", messages=[{"role": "user", "content": "x"}]
            )
        reply = await client(server, key="sk-right").chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "x"}]
        )
        assert reply.choices[0].message.content == "echo: x"


async def test_control_endpoints_over_http() -> None:
    async with OpenAICompatibleServer() as server, httpx.AsyncClient(base_url=server.root_url) as http:
        assert (await http.post("/_emulator/replies", json=["scripted"])).json() == {"queued": 1}
        assert (await http.post("/_emulator/behaviour", json={"latency_s": -1})).status_code == 400
        assert (await http.post("/_emulator/behaviour", json={"models": ["x"]})).json()["models"] == ["x"]
        reply = await client(server).chat.completions.create(
            model="x", messages=[{"role": "user", "content": "q"}]
        )
        assert reply.choices[0].message.content == "scripted"
        calls = (await http.get("/_emulator/calls")).json()["calls"]
        assert [(c["model"], c["status"], c["reply"]) for c in calls] == [("x", 200, "scripted")]
        await http.post("/_emulator/reset")
        assert (await http.get("/_emulator/calls")).json()["calls"] == []


async def test_elevenlabs_client_gets_audio_and_voices() -> None:
    async with ElevenLabsCompatibleServer(api_key="xi-test") as server:
        tts = AsyncElevenLabs(base_url=server.root_url, api_key="xi-test")
        voices = await tts.voices.get_all()
        assert {voice.voice_id for voice in voices.voices} == {"voice-luna", "voice-helper"}
        short = b"".join([chunk async for chunk in tts.text_to_speech.convert("voice-luna", text="Hi!")])
        long = b"".join(
            [chunk async for chunk in tts.text_to_speech.convert("voice-luna", text="Hello everyone, " * 10)]
        )
        assert short.startswith(MP3_FRAME[:4]) and len(short) % len(MP3_FRAME) == 0
        assert len(long) > len(short)
        pcm = b"".join(
            [
                chunk
                async for chunk in tts.text_to_speech.convert(
                    "voice-luna", text="x" * 15, output_format="pcm_16000"
                )
            ]
        )
        assert len(pcm) == 2 * 16000
        with pytest.raises(ApiError) as caught:
            b"".join([chunk async for chunk in tts.text_to_speech.convert("nobody", text="hi")])
        assert caught.value.status_code == 404
        assert [(c.voice_id, c.status) for c in server.calls][-1] == ("nobody", 404)
