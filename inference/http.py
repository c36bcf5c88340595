"""The endpoint pool's HTTP/1.1 client: one POST of a JSON body on a kept-alive connection, the answer read.

The worker makes one call per request, and aiohttp's request path (request and response objects, header
multidicts, the cookie jar, tracing hooks) cost about 220 µs of CPU per call at 1,000 requests in flight;
this client costs about 70 µs. It speaks what the chat completions protocol needs: a request with a
Content-Length body, and a response delimited by Content-Length, chunked transfer encoding, or the end of
the connection. Nothing asks for compression, so none comes back.

Connections are kept in a LIFO list per endpoint; the pool's concurrency limit bounds how many exist. A
connection the server closed is dropped when seen closed (idle servers close theirs after a few seconds).
An exchange that times out or is cancelled closes its connection: its answer may still be on the way.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import cast
from urllib.parse import urlsplit

# A response head larger than this is not a chat completions server's.
MAX_HEAD_BYTES = 64 * 1024


class MalformedResponse(ValueError):
    """The server's answer is not HTTP/1.1 as this client reads it."""


class _Exchange(asyncio.Protocol):
    """One connection: sends a request, parses the response, hands (status, body) to the waiting caller."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._answer: asyncio.Future[tuple[int, bytes]] | None = None
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        # Bytes of body still expected; None: read to the end of the connection.
        self._remaining: int | None = 0
        self._chunked = False
        self._in_body = False
        self._body = bytearray()
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's do not derive from asyncio.Transport, hence no isinstance check).
        self.transport = cast(asyncio.Transport, transport)

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        self._answer = asyncio.get_running_loop().create_future()
        self._reset()
        self.transport.write(request)
        return self._answer

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def expire(self, timeout_s: float) -> None:
        """The answer did not come in time: the call fails, and the connection (its answer may still come)
        is closed."""
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(TimeoutError(f"no answer within {timeout_s} s"))
        self.close()

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            # Nothing asked for: a server speaking out of turn leaves the connection unusable.
            self.close()
            return
        self._buffer += data
        try:
            self._parse()
        except MalformedResponse as exc:
            self.close()
            self._answer.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        answer = self._answer
        if answer is None or answer.done():
            return
        if self._in_body and self._remaining is None:
            self._body += self._buffer
            answer.set_result((self._status, bytes(self._body)))
        else:
            answer.set_exception(ConnectionError("the server closed the connection before answering in full"))

    def _parse(self) -> None:
        if not self._in_body and not self._read_head():
            return
        if self._chunked:
            if not self._read_chunks():
                return
        elif self._remaining is None:
            self._body += self._buffer
            self._buffer.clear()
            return
        else:
            taken = self._buffer[: self._remaining]
            self._body += taken
            del self._buffer[: len(taken)]
            self._remaining -= len(taken)
            if self._remaining:
                return
        assert self._answer is not None
        if self._buffer:
            # Bytes beyond the answer: the connection's framing is lost, so it is not used again.
            self.keep_alive = False
        self._answer.set_result((self._status, bytes(self._body)))

    def _read_head(self) -> bool:
        """Parse the status line and headers once all have arrived; False while they have not."""
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    raise MalformedResponse(f"response head over {MAX_HEAD_BYTES} bytes")
                return False
            lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
            del self._buffer[: end + 4]
            version, _, rest = lines[0].partition(" ")
            code = rest[:3]
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise MalformedResponse(f"status line {lines[0][:80]!r}")
            self._status = int(code)
            # An interim answer (103 Early Hints) precedes the real one.
            if not 100 <= self._status < 200:
                break
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise MalformedResponse(f"header line {line[:80]!r}")
            headers[name.strip().lower()] = value.strip()
        self.keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        self._in_body = True
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if self._chunked:
            self._remaining = 0
        elif "content-length" in headers:
            length = headers["content-length"]
            if not length.isdigit():
                raise MalformedResponse(f"content-length {length[:40]!r}")
            self._remaining = int(length)
        elif self._status in (204, 304):
            self._remaining = 0
        else:
            self._remaining = None
            self.keep_alive = False
        return True

    def _read_chunks(self) -> bool:
        """Consume chunks as they arrive; True once the last (empty) chunk and its trailers are read."""
        while True:
            if self._remaining:
                # Inside a chunk: its data, then its closing CRLF.
                if len(self._buffer) < self._remaining + 2:
                    return False
                self._body += self._buffer[: self._remaining]
                if self._buffer[self._remaining : self._remaining + 2] != b"\r\n":
                    raise MalformedResponse("chunk not followed by CRLF")
                del self._buffer[: self._remaining + 2]
                self._remaining = 0
            end = self._buffer.find(b"\r\n")
            if end < 0:
                return False
            size_field = bytes(self._buffer[:end]).split(b";", 1)[0].strip()
            try:
                size = int(size_field, 16)
            except ValueError:
                raise MalformedResponse(f"chunk size {size_field[:20]!r}") from None
            if size == 0:
                # The last chunk: trailers (none expected) up to an empty line.
                rest = self._buffer[end + 2 :]
                if rest.startswith(b"\r\n"):
                    del self._buffer[: end + 4]
                    return True
                trailers_end = rest.find(b"\r\n\r\n")
                if trailers_end < 0:
                    return False
                del self._buffer[: end + 2 + trailers_end + 4]
                return True
            del self._buffer[: end + 2]
            self._remaining = size


class HttpEndpoint:
    """POSTs to one URL (http or https) with fixed headers, on connections kept alive between calls."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http:// or https:// with a host, got {url!r}")
        secure = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if secure else 80)
        self.ssl = ssl.create_default_context() if secure else None
        target = parts.path or "/"
        if parts.query:
            target += f"?{parts.query}"
        lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc.rpartition('@')[2]}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        # Content-Length ends the head; its value and the body follow per call.
        self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
        self._idle: list[_Exchange] = []
        self._busy: set[_Exchange] = set()

    def __repr__(self) -> str:
        # The head holds the endpoint's key: never shown.
        return f"HttpEndpoint({self.host}:{self.port})"

    async def post(self, body: bytes, timeout_s: float) -> tuple[int, bytes]:
        """(status, body) of the response; TimeoutError after timeout_s (connecting included), OSError when
        the connection fails, MalformedResponse when the answer is not readable HTTP."""
        request = b"%s%d\r\n\r\n%s" % (self._head, len(body), body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        connection = self._idle_connection()
        if connection is None:
            async with asyncio.timeout_at(deadline):
                connection = await self._connect()
        self._busy.add(connection)
        answer = connection.send(request)
        # A bare timer, not asyncio.timeout's context manager: its bookkeeping on every call was 4% of the
        # worker's CPU.
        expiry = loop.call_at(deadline, connection.expire, timeout_s)
        try:
            status, data = await answer
        except BaseException:
            connection.close()
            raise
        finally:
            expiry.cancel()
            self._busy.discard(connection)
        if connection.keep_alive and not connection.closed:
            self._idle.append(connection)
        else:
            connection.close()
        return status, data

    def _idle_connection(self) -> _Exchange | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _connect(self) -> _Exchange:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            _Exchange, self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None
        )
        return connection

    def close(self) -> None:
        for connection in (*self._idle, *self._busy):
            connection.close()
        self._idle.clear()
        self._busy.clear()
