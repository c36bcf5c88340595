"""An ElevenLabs-compatible text-to-speech server for tests of the voice path."""

from emulator.elevenlabs.server import ElevenLabsCompatibleServer, SpeechCall, silent_audio

__all__ = ["ElevenLabsCompatibleServer", "SpeechCall", "silent_audio"]
