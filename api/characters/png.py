"""PNG text chunks, read and written by hand (struct + zlib): where character cards keep their JSON."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"


class PngError(ValueError):
    pass


@dataclass(frozen=True)
class Chunk:
    kind: bytes
    data: bytes

    def encode(self) -> bytes:
        crc = zlib.crc32(self.kind + self.data) & 0xFFFFFFFF
        return struct.pack(">I", len(self.data)) + self.kind + self.data + struct.pack(">I", crc)


def read_chunks(png: bytes) -> list[Chunk]:
    if not png.startswith(SIGNATURE):
        raise PngError("not a PNG file (bad signature)")
    chunks = []
    offset = len(SIGNATURE)
    while offset < len(png):
        if offset + 8 > len(png):
            raise PngError("truncated chunk header")
        (length,) = struct.unpack_from(">I", png, offset)
        kind = png[offset + 4 : offset + 8]
        end = offset + 12 + length
        if end > len(png):
            raise PngError(f"truncated {kind.decode('latin-1')} chunk")
        data = png[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack_from(">I", png, end - 4)
        if crc != zlib.crc32(kind + data) & 0xFFFFFFFF:
            raise PngError(f"bad CRC in {kind.decode('latin-1')} chunk")
        chunks.append(Chunk(kind, data))
        offset = end
        if kind == b"IEND":
            break
    if not chunks or chunks[0].kind != b"IHDR" or chunks[-1].kind != b"IEND":
        raise PngError("a PNG starts with IHDR and ends with IEND")
    return chunks


def text_chunks(png: bytes) -> dict[str, str]:
    """tEXt chunks by keyword (latin-1, as the PNG spec says); the first of a keyword wins."""
    texts: dict[str, str] = {}
    for chunk in read_chunks(png):
        if chunk.kind == b"tEXt":
            keyword, sep, text = chunk.data.partition(b"\x00")
            if sep:
                texts.setdefault(keyword.decode("latin-1"), text.decode("latin-1"))
    return texts


def with_text_chunks(png: bytes, texts: dict[str, str], drop: frozenset[str] = frozenset()) -> bytes:
    """The image with tEXt chunks of `texts`' keywords and of `drop` removed, `texts` added before IEND;
    every other chunk is kept as it was."""
    removed = drop | texts.keys()
    kept = [
        chunk
        for chunk in read_chunks(png)
        if not (chunk.kind == b"tEXt" and chunk.data.partition(b"\x00")[0].decode("latin-1") in removed)
    ]
    added = [
        Chunk(b"tEXt", key.encode("latin-1") + b"\x00" + text.encode("latin-1"))
        for key, text in texts.items()
    ]
    return SIGNATURE + b"".join(chunk.encode() for chunk in [*kept[:-1], *added, kept[-1]])


def blank_png() -> bytes:
    """A 1x1 transparent image, for cards exported without an image of their own."""
    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + b"\x00\x00\x00\x00")
    chunks = [Chunk(b"IHDR", header), Chunk(b"IDAT", pixels), Chunk(b"IEND", b"")]
    return SIGNATURE + b"".join(chunk.encode() for chunk in chunks)
