"""A small ElevenLabs-compatible text-to-speech server for the voice path: real HTTP on 127.0.0.1.

POST /v1/text-to-speech/{voice_id} (and .../stream) returns silent audio whose length grows with the text:
MPEG-1 Layer III frames for mp3_* formats, 16-bit PCM for pcm_<rate>, µ-law for ulaw_8000. GET /v1/voices
lists the configured voices. Point the `elevenlabs` client at `root_url` (its base_url has no /v1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from emulator.http import LocalHttpServer

# One silent MPEG-1 Layer III frame: 128 kbit/s, 44.1 kHz, mono, 417 bytes, 1,152 samples (26 ms).
MP3_FRAME = bytes([0xFF, 0xFB, 0x90, 0xC0]) + bytes(413)
MP3_FRAME_S = 1152 / 44_100
# Speech runs at about 15 characters a second.
SECONDS_PER_CHAR = 1 / 15
MAX_AUDIO_S = 60.0


@dataclass
class SpeechCall:
    voice_id: str
    text: str
    model_id: str | None
    output_format: str
    status: int


class ElevenLabsCompatibleServer(LocalHttpServer):
    def __init__(
        self, voices: dict[str, str] | None = None, api_key: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        # voice id -> name
        self.voices = voices if voices is not None else {"voice-luna": "Luna", "voice-helper": "Helper"}
        self.api_key = api_key
        self.calls: list[SpeechCall] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/voices", self._list_voices)
        app.router.add_post("/v1/text-to-speech/{voice_id}", self._speak)
        app.router.add_post("/v1/text-to-speech/{voice_id}/stream", self._speak)

    async def _list_voices(self, request: web.Request) -> web.Response:
        if (denied := self._check_key(request)) is not None:
            return denied
        voices = [
            {"voice_id": voice_id, "name": name, "category": "premade", "labels": {}}
            for voice_id, name in self.voices.items()
        ]
        return _json({"voices": voices})

    async def _speak(self, request: web.Request) -> web.Response:
        voice_id = request.match_info["voice_id"]
        output_format = request.query.get("output_format") or "mp3_44100_128"
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        text = body.get("text") if isinstance(body, dict) else None
        model_id = body.get("model_id") if isinstance(body, dict) else None
        response = self._check_key(request) or self._synthesise(voice_id, text, output_format)
        self.calls.append(SpeechCall(voice_id, str(text or ""), model_id, output_format, response.status))
        return response

    def _synthesise(self, voice_id: str, text: Any, output_format: str) -> web.Response:
        if voice_id not in self.voices:
            return _error(404, "voice_not_found", f"A voice with the voice_id {voice_id} was not found.")
        if not isinstance(text, str) or not text.strip():
            return _error(422, "invalid_text", "text: field required")
        audio = silent_audio(output_format, min(MAX_AUDIO_S, len(text) * SECONDS_PER_CHAR))
        if audio is None:
            return _error(422, "invalid_output_format", f"output_format: unsupported {output_format!r}")
        media = "audio/mpeg" if output_format.startswith("mp3") else "application/octet-stream"
        return web.Response(body=audio, content_type=media)

    def _check_key(self, request: web.Request) -> web.Response | None:
        if self.api_key is None or request.headers.get("xi-api-key") == self.api_key:
            return None
        return _error(401, "invalid_api_key", "Invalid API key")


def silent_audio(output_format: str, seconds: float) -> bytes | None:
    """`seconds` of silence in an ElevenLabs output format; None for a format this server does not make."""
    if output_format.startswith("mp3_"):
        return MP3_FRAME * max(1, round(seconds / MP3_FRAME_S))
    if output_format.startswith("pcm_") and output_format[4:].isdigit():
        return bytes(2 * int(int(output_format[4:]) * seconds))
    if output_format == "ulaw_8000":
        return b"\xff" * int(8000 * seconds)
    return None


def _json(payload: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _error(status: int, code: str, message: str) -> web.Response:
    return _json({"detail": {"status": code, "message": message}}, status=status)
