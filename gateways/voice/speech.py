"""Text to encoded speech audio, as it is made: ElevenLabs for an owner's chosen voice, espeak-ng (offline,
no model download) otherwise. The player decodes it like any track (gateways/voice/sources.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from elevenlabs.client import AsyncElevenLabs
from elevenlabs.core.api_error import ApiError

from gateways.media import MediaRefused

# MP3 is what every ElevenLabs tier can ask for; ffmpeg decodes it.
ELEVENLABS_FORMAT = "mp3_44100_128"
ESPEAK_CHUNK = 16 * 1024


class Speech:
    """One ElevenLabs client for the runner; `None` when no key is configured (then only espeak speaks)."""

    def __init__(self, elevenlabs: AsyncElevenLabs | None) -> None:
        self._elevenlabs = elevenlabs

    @classmethod
    def from_settings(cls, url: str, api_key: str) -> Speech:
        return cls(AsyncElevenLabs(base_url=url, api_key=api_key) if api_key else None)

    def audio(self, text: str, voice_id: str) -> AsyncIterator[bytes]:
        """The text spoken in `voice_id` (ElevenLabs) or, without one, by espeak-ng. A failure of ElevenLabs
        raises MediaRefused as the audio is read; an ElevenLabs voice without a configured key falls back to
        espeak-ng rather than staying silent."""
        if voice_id and self._elevenlabs is not None:
            return self._elevenlabs_audio(self._elevenlabs, text, voice_id)
        return espeak_audio(text)

    @staticmethod
    async def _elevenlabs_audio(client: AsyncElevenLabs, text: str, voice_id: str) -> AsyncIterator[bytes]:
        try:
            async for chunk in client.text_to_speech.stream(
                voice_id, text=text, output_format=ELEVENLABS_FORMAT
            ):
                yield chunk
        except ApiError as exc:
            raise MediaRefused(f"voice_id: ElevenLabs answered {exc.status_code}") from None


async def espeak_audio(text: str) -> AsyncIterator[bytes]:
    """espeak-ng's WAV of `text`, given on stdin so no text is ever taken for an option."""
    process = await asyncio.create_subprocess_exec(
        "espeak-ng",
        "--stdout",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(text.encode())
        process.stdin.close()
        while chunk := await process.stdout.read(ESPEAK_CHUNK):
            yield chunk
    except BaseException:
        # Cut short (the speech was skipped, or the reader went): the process goes with it.
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    if await process.wait() != 0:
        raise MediaRefused(f"text: espeak-ng exited with {process.returncode}")
