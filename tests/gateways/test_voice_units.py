"""The voice pieces that need no server: RTP sealing (opened again with PyNaCl), IP discovery, the frame
schedule, close codes, track resolution and the URL rules, decoding with ffmpeg, speech, and the player
against a recording sink."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from elevenlabs.client import AsyncElevenLabs
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt

from emulator.elevenlabs import ElevenLabsCompatibleServer
from gateways.dispatch import track_end_envelope
from gateways.media import MediaRefused, media_session
from gateways.voice import protocol
from gateways.voice.pacing import FRAME_S, MAX_LATE_S, FrameSchedule
from gateways.voice.player import EndReason, Player, Playing
from gateways.voice.protocol import AfterClose
from gateways.voice.rtp import (
    DISCOVERY_PACKET_BYTES,
    SAMPLES_PER_FRAME,
    SILENCE_FRAME,
    DiscoveryError,
    Packetizer,
    discovery_answer,
    discovery_request,
)
from gateways.voice.sources import (
    PCM_FRAME_BYTES,
    AudioUrl,
    LibraryFile,
    PcmStream,
    TrackRefused,
    resolve_track,
    url_audio,
    with_volume,
)
from gateways.voice.speech import Speech, espeak_audio
from infra.stack.lifecycle import EDGE_PACKAGES, missing_edge_packages
from models.events import VOICE_TRACK_END, VoiceTrackEnd
from tests.gateways.conftest import tone

KEY = bytes(range(32))


def opened(packet: bytes, key: bytes) -> tuple[tuple[int, int, int, int, int], bytes]:
    """What a receiver does: the 12-byte header is the associated data, the nonce's counter is the last 4
    bytes."""
    header, sealed, counter = packet[:12], packet[12:-4], packet[-4:]
    nonce = counter + bytes(20)
    return struct.unpack(">BBHII", header), crypto_aead_xchacha20poly1305_ietf_decrypt(
        sealed, header, nonce, key
    )


def test_rtp_packets_open_with_the_key_and_count_sequence_timestamp_and_nonce() -> None:
    packetizer = Packetizer(ssrc=77, key=KEY)
    first, second = packetizer.packet(b"opus-1"), packetizer.packet(b"opus-2")
    (flags, kind, seq, timestamp, ssrc), opus = opened(first, KEY)
    assert (flags, kind, seq, timestamp, ssrc, opus) == (0x80, 0x78, 0, 0, 77, b"opus-1")
    (_, _, seq, timestamp, _), opus = opened(second, KEY)
    assert (seq, timestamp, opus) == (1, SAMPLES_PER_FRAME, b"opus-2")
    assert first[-4:] == b"\0\0\0\0" and second[-4:] == b"\0\0\0\1"


def test_a_tampered_header_or_a_wrong_key_does_not_open() -> None:
    packet = bytearray(Packetizer(ssrc=1, key=KEY).packet(b"opus"))
    with pytest.raises(Exception, match="Decryption failed"):
        opened(bytes(packet), bytes(32))
    packet[3] ^= 1  # the sequence number is authenticated, not encrypted
    with pytest.raises(Exception, match="Decryption failed"):
        opened(bytes(packet), KEY)


def test_rtp_counters_wrap() -> None:
    packetizer = Packetizer(ssrc=1, key=KEY, sequence=0xFFFF, timestamp=0xFFFFFFFF - 100, nonce=0xFFFFFFFF)
    packetizer.packet(b"x")
    assert (packetizer.sequence, packetizer.timestamp, packetizer.nonce) == (0, SAMPLES_PER_FRAME - 101, 0)
    (_, _, seq, _, _), opus = opened(packetizer.packet(b"y"), KEY)
    assert (seq, opus) == (0, b"y")


def test_ip_discovery_request_and_answer() -> None:
    request = discovery_request(0xABCDEF01)
    assert len(request) == DISCOVERY_PACKET_BYTES
    assert request[:8] == bytes.fromhex("00010046abcdef01") and request[8:] == bytes(66)
    answer = bytearray(DISCOVERY_PACKET_BYTES)
    struct.pack_into(">HHI", answer, 0, 2, 70, 0xABCDEF01)
    answer[8 : 8 + len(b"203.0.113.9")] = b"203.0.113.9"
    struct.pack_into(">H", answer, DISCOVERY_PACKET_BYTES - 2, 50004)
    assert discovery_answer(bytes(answer)) == ("203.0.113.9", 50004)
    with pytest.raises(DiscoveryError):
        discovery_answer(request)  # a request, not an answer
    with pytest.raises(DiscoveryError):
        discovery_answer(bytes(answer[:20]))


def test_the_schedule_does_not_drift_with_late_wakeups() -> None:
    schedule = FrameSchedule(start=100.0)
    now = 100.0
    for _ in range(500):
        now = max(now, schedule.due) + 0.004  # every sleep overshoots by 4 ms
        schedule.frame_sent(now)
    # Sent on a fixed grid: the 500 frames' schedule ends 10 s after its start, not 10 s + 500 x 4 ms.
    assert schedule.due == pytest.approx(100.0 + 500 * FRAME_S)
    assert schedule.wait_s(schedule.due - 0.015) == pytest.approx(0.015)
    assert schedule.wait_s(schedule.due + 1) == 0.0


def test_a_sender_far_behind_starts_a_new_schedule_instead_of_bursting() -> None:
    schedule = FrameSchedule(start=0.0, sent=10)
    late = schedule.due + MAX_LATE_S + 0.1
    schedule.frame_sent(late)
    assert schedule.due == pytest.approx(late + FRAME_S)
    schedule.restart(50.0)
    assert schedule.due == 50.0


@pytest.mark.parametrize(
    ("code", "after"),
    [
        (None, AfterClose.RESUME),
        (1006, AfterClose.RESUME),
        (4015, AfterClose.RESUME),
        (4006, AfterClose.REJOIN),
        (4009, AfterClose.REJOIN),
        (4014, AfterClose.REJOIN),
        (4004, AfterClose.END),
        (4016, AfterClose.END),
        (4022, AfterClose.END),
    ],
)
def test_what_a_voice_close_code_means(code: int | None, after: AfterClose) -> None:
    assert protocol.after_close(code) is after


def test_the_voice_url_takes_the_main_gateways_scheme() -> None:
    assert (
        protocol.voice_url("voice.example:443", "wss://gateway.discord.gg") == "wss://voice.example:443/?v=8"
    )
    assert protocol.voice_url("127.0.0.1:9000", "ws://127.0.0.1:8000") == "ws://127.0.0.1:9000/?v=8"


def test_identify_offers_dave_and_select_protocol_asks_for_rtpsize() -> None:
    identify = protocol.identify_payload("1", "2", "s", "t", 1)
    assert identify["d"]["max_dave_protocol_version"] == 1 and identify["op"] == 0
    selected = protocol.select_protocol_payload("203.0.113.9", 50004)
    assert selected["d"]["data"] == {"address": "203.0.113.9", "port": 50004, "mode": protocol.TRANSPORT_MODE}
    assert protocol.heartbeat_payload(7)["d"]["seq_ack"] == 7


@pytest.fixture
def library(tmp_path: Path) -> Path:
    for name in ("lofi beats.mp3", "Lofi.ogg", "rain/storm sounds.wav", "notes.txt"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return tmp_path


def test_a_track_is_a_library_title_exact_first_then_the_first_match(library: Path) -> None:
    assert resolve_track("lofi", library) == LibraryFile("Lofi", library / "Lofi.ogg")
    assert resolve_track("lofi b", library) == LibraryFile("lofi beats", library / "lofi beats.mp3")
    assert resolve_track("STORM", library) == LibraryFile(
        "storm sounds", library / "rain" / "storm sounds.wav"
    )
    with pytest.raises(TrackRefused, match="no title in the music library matches 'notes'"):
        resolve_track("notes", library)


def test_a_track_may_be_an_http_url_and_nothing_else(library: Path) -> None:
    assert resolve_track(" https://example.com/a.mp3 ", library) == AudioUrl("https://example.com/a.mp3")
    with pytest.raises(TrackRefused, match="only http"):
        resolve_track("file:///etc/passwd", library)
    with pytest.raises(TrackRefused, match="empty"):
        resolve_track("  ", library)


async def test_audio_urls_keep_the_persona_image_address_rules() -> None:
    async with media_session(allow_private=False) as media:
        for url, reason in [
            ("http://169.254.169.254/latest/audio.mp3", "track: 169.254.169.254 is not a public address"),
            ("http://localhost:9/a.mp3", "track: could not be fetched (localhost is not a public address)"),
        ]:
            with pytest.raises(MediaRefused) as refused:
                [chunk async for chunk in url_audio(media, url, allow_private=False)]
            assert str(refused.value) == reason


def test_volume_scales_samples_and_clips() -> None:
    pcm = np.array([1000, -1000, 30000, -30000], dtype=np.int16).tobytes()
    assert np.frombuffer(with_volume(pcm, 50), np.int16).tolist() == [500, -500, 15000, -15000]
    assert np.frombuffer(with_volume(pcm, 200), np.int16).tolist() == [2000, -2000, 32767, -32768]
    assert with_volume(pcm, 100) is pcm


async def frames_of(stream: PcmStream) -> list[bytes]:
    frames = []
    while (frame := await stream.read_frame()) is not None:
        frames.append(frame)
    return frames


async def test_ffmpeg_decodes_a_file_to_48khz_stereo_frames_from_a_position(tmp_path: Path) -> None:
    path = tone(tmp_path / "tone.wav", 1.0)
    frames = await frames_of(await PcmStream.open(path))
    assert len(frames) == 50 and all(len(frame) == PCM_FRAME_BYTES for frame in frames)
    samples = np.frombuffer(b"".join(frames), np.int16).reshape(-1, 2)
    spectrum = np.abs(np.fft.rfft(samples[:, 0]))
    assert round(np.argmax(spectrum) * 48_000 / len(samples)) == 440
    assert (samples[:, 0] == samples[:, 1]).all()  # mono made stereo
    later = await frames_of(await PcmStream.open(path, start_s=0.6))
    assert len(later) == 20


async def test_decoding_piped_bytes_and_failing_clearly(tmp_path: Path) -> None:
    data = tone(tmp_path / "tone.mp3", 0.5).read_bytes()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 1000):
            yield data[start : start + 1000]

    stream = await PcmStream.open(chunks())
    assert 24 <= len(await frames_of(stream)) <= 27 and stream.error is None  # MP3 pads its frames

    async def garbage() -> AsyncIterator[bytes]:
        yield b"not audio at all" * 100

    broken = await PcmStream.open(garbage())
    assert await frames_of(broken) == [] and broken.error is not None and "ffmpeg exited" in broken.error
    missing = await PcmStream.open(tmp_path / "gone.wav")
    assert await frames_of(missing) == [] and missing.error is not None


async def test_espeak_speaks_offline_and_elevenlabs_speaks_with_the_voice_id() -> None:
    wav = b"".join([chunk async for chunk in espeak_audio("-v xx Hello there")])
    assert wav.startswith(b"RIFF") and len(wav) > 10_000  # the text is spoken, never taken for options
    async with ElevenLabsCompatibleServer(api_key="xi-test") as server:
        speech = Speech(AsyncElevenLabs(base_url=server.root_url, api_key="xi-test"))
        mp3 = b"".join([chunk async for chunk in speech.audio("Hello from Luna", "voice-luna")])
        assert mp3[:2] == b"\xff\xfb"
        assert [(call.voice_id, call.text, call.status) for call in server.calls] == [
            ("voice-luna", "Hello from Luna", 200)
        ]
        with pytest.raises(MediaRefused, match="voice_id: ElevenLabs answered 404"):
            [chunk async for chunk in speech.audio("hi", "nobody")]
        offline = b"".join([chunk async for chunk in speech.audio("hi", "")])
        assert offline.startswith(b"RIFF") and len(server.calls) == 2


def test_a_track_end_is_keyed_by_guild_and_named_by_the_play_action() -> None:
    end = VoiceTrackEnd(guild_id="20", channel_id="30", track="lofi", reason="finished")
    now = datetime.now(UTC)
    first = track_end_envelope("10", end, "play-1", now)
    again = track_end_envelope("10", end, "play-1", now)
    other = track_end_envelope("10", end, "play-2", now)
    assert first.key == "20" and first.type == VOICE_TRACK_END and first.data["reason"] == "finished"
    assert first.event_id == again.event_id != other.event_id


class RecordingSink:
    """The player's side of a voice connection, recording what it is given."""

    def __init__(self) -> None:
        self.ready = True
        self.frames: list[bytes] = []
        self.speaking_changes: list[bool] = []
        self.frame_sent = asyncio.Event()

    async def wait_ready(self) -> None:
        return None

    async def speaking(self, on: bool) -> None:
        self.speaking_changes.append(on)

    def send_frame(self, opus: bytes) -> None:
        self.frames.append(opus)
        self.frame_sent.set()

    async def next_frame(self) -> None:
        self.frame_sent.clear()
        await asyncio.wait_for(self.frame_sent.wait(), 5)


class Ends:
    def __init__(self) -> None:
        self.seen: list[tuple[str, EndReason]] = []
        self.changed = asyncio.Event()

    def __call__(self, playing: Playing, reason: EndReason) -> None:
        self.seen.append((playing.track, reason))
        self.changed.set()

    async def wait_for(self, count: int) -> None:
        while len(self.seen) < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 10)


async def test_the_player_sends_every_frame_then_five_silences_and_reports_the_end(tmp_path: Path) -> None:
    sink, ends = RecordingSink(), Ends()
    player = Player(sink, ends)
    player.start()
    await player.play(Playing("p1", "tone", await PcmStream.open(tone(tmp_path / "t.wav", 0.2))))
    await ends.wait_for(1)
    while sink.speaking_changes != [True, False]:
        await sink.next_frame()
    assert ends.seen == [("tone", "finished")]
    assert len(sink.frames) == 10 + 5 and sink.frames[-5:] == [SILENCE_FRAME] * 5
    assert all(frame != SILENCE_FRAME for frame in sink.frames[:10])
    await player.close("stopped")


async def test_pause_stops_frames_resume_goes_on_skip_and_speech_over_music(tmp_path: Path) -> None:
    sink, ends = RecordingSink(), Ends()
    player = Player(sink, ends)
    player.start()
    music = tone(tmp_path / "long.wav", 30)
    await player.play(Playing("p1", "long", await PcmStream.open(music)))
    await sink.next_frame()
    player.pause()
    while sink.speaking_changes[-1:] != [False]:
        await sink.next_frame()
    paused_at = len(sink.frames)
    position = player.track.position_s if player.track else -1
    player.resume()
    await sink.next_frame()
    assert len(sink.frames) > paused_at and sink.speaking_changes[-1] is True
    # A speech holds the track where it is, then the track goes on.
    spoken = await PcmStream.open(tone(tmp_path / "speech.wav", 0.1, 880))
    await player.say(Playing("s1", "speech:s1", spoken))
    await ends.wait_for(1)
    assert ends.seen == [("speech:s1", "finished")]
    assert player.track is not None and player.track.position_s >= position
    await player.skip()
    await ends.wait_for(2)
    assert ends.seen[1] == ("long", "skipped") and player.track is None
    await player.play(Playing("p2", "again", await PcmStream.open(music)))
    await sink.next_frame()
    await player.close("stopped")
    assert ends.seen[2] == ("again", "stopped")


async def test_a_track_that_cannot_be_decoded_ends_as_failed(tmp_path: Path) -> None:
    sink, ends = RecordingSink(), Ends()
    player = Player(sink, ends)
    player.start()
    await player.play(Playing("p1", "gone", await PcmStream.open(tmp_path / "gone.mp3")))
    await ends.wait_for(1)
    assert ends.seen == [("gone", "failed")] and sink.frames == []
    await player.close(None)


async def test_a_moving_bot_closes_its_player_without_reporting_an_end(tmp_path: Path) -> None:
    sink, ends = RecordingSink(), Ends()
    player = Player(sink, ends)
    player.start()
    await player.play(Playing("p1", "long", await PcmStream.open(tone(tmp_path / "l.wav", 30))))
    await sink.next_frame()
    await player.close(None)
    assert ends.seen == []


def test_the_stack_installs_what_voice_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(EDGE_PACKAGES) == {"ffmpeg", "espeak-ng", "libopus0"}
    monkeypatch.setattr("shutil.which", lambda name: None if name == "espeak-ng" else f"/usr/bin/{name}")
    assert missing_edge_packages() == ["espeak-ng"]
