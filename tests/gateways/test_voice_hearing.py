"""Listening's pure parts: utterances cut on packet gaps, the grammar, recognition of espeak speech, the
SSRC of a speaker and a member's packet opened."""

from __future__ import annotations

import numpy as np
import pytest

from bench.listen import spoken
from gateways.voice import protocol
from gateways.voice.hearing import Recognizer, Utterances, grammar
from gateways.voice.rtp import Packetizer, ReceivedPacket, open_packet


def _frame(value: int) -> np.ndarray:
    return np.full((960, 2), value, dtype=np.int16)


def test_an_utterance_ends_when_its_speakers_packets_stop_for_the_gap() -> None:
    utterances = Utterances(gap_s=0.5, max_s=10.0)
    assert utterances.add("1", _frame(1), now_s=0.0) == []
    assert utterances.add("2", _frame(2), now_s=0.35) == []
    assert utterances.add("1", _frame(3), now_s=0.3) == []
    assert utterances.due(now_s=0.7) == []
    (ended,) = utterances.due(now_s=0.8)
    assert ended.user_id == "1"
    assert ended.pcm.shape == (1920, 2) and ended.pcm[0, 0] == 1 and ended.pcm[-1, 0] == 3
    (other,) = utterances.due(now_s=0.9)
    assert other.user_id == "2"
    assert utterances.due(now_s=5.0) == []


def test_a_long_utterance_is_cut_at_its_maximum() -> None:
    utterances = Utterances(gap_s=0.5, max_s=1.0)
    cut = [u for i in range(60) for u in utterances.add("1", _frame(i), now_s=i * 0.02)]
    assert [len(u.pcm) for u in cut] == [48_000]
    assert len(utterances.due(now_s=10.0)[0].pcm) == 960 * 10


def test_segmentation_bounds_are_validated() -> None:
    with pytest.raises(ValueError, match="gap_s"):
        Utterances(gap_s=1.0, max_s=0.5)


def test_the_grammar_frames_phrases_with_the_agents_names() -> None:
    text = grammar(["Luna", "Dr. Who"], ["what time is it"])
    assert "<name> = luna;" in text
    assert "[<name>] ( what time is it ) [<name>] | <name>;" in text
    assert "public <utterance> = stop;" in grammar([], ["stop"])


def test_espeak_speech_through_opus_is_recognized_with_the_name() -> None:
    recognizer = Recognizer(grammar(["Luna"]))
    assert recognizer.recognize(spoken("luna what time is it")) == "luna what time is it"
    assert recognizer.recognize(np.zeros((48_000, 2), dtype=np.int16)) == ""


def test_op_5_maps_an_ssrc_to_its_speaker() -> None:
    assert protocol.speaker({"user_id": "42", "ssrc": 7, "speaking": 1}) == (7, "42")
    assert protocol.speaker({"ssrc": 7, "speaking": 1}) is None  # the bot's own op 5 echo names no user
    assert protocol.speaker({"user_id": "42", "ssrc": True}) is None


def test_a_members_packet_opens_with_the_key_and_not_without_it() -> None:
    key = bytes(range(32))
    sent = Packetizer(ssrc=9, key=key, sequence=5)
    packet = sent.packet(b"opus-frame")
    assert open_packet(key, packet) == ReceivedPacket(ssrc=9, sequence=5, payload=b"opus-frame")
    assert open_packet(bytes(32), packet) is None
    assert open_packet(key, packet[:10]) is None
