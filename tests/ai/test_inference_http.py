"""The endpoint pool's HTTP/1.1 client on local sockets, under asyncio's loop and uvloop (the worker's): the
response framings (Content-Length, chunked, to the end of the connection) however the bytes are split,
connection reuse, a connection the server closed, timeouts and malformed answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
import uvloop

from inference.http import HttpEndpoint, MalformedResponse, _Exchange
from tests.waiting import wait_until

Run = Callable[[Coroutine[Any, Any, Any]], Any]
RUNNERS: dict[str, Run] = {"asyncio": asyncio.run, "uvloop": uvloop.run}


@pytest.fixture(params=sorted(RUNNERS))
def run(request: pytest.FixtureRequest) -> Run:
    return RUNNERS[request.param]


class _Transport:
    """Stands in for a socket: records what is written and whether it was closed."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True


async def _answer_fed(response: bytes, piece: int) -> tuple[tuple[int, bytes], _Exchange]:
    exchange = _Exchange()
    exchange.connection_made(_Transport())  # type: ignore[arg-type]
    answer = exchange.send(b"request")
    for start in range(0, len(response), piece):
        exchange.data_received(response[start : start + piece])
    if not answer.done():
        exchange.connection_lost(None)
    return await answer, exchange


FRAMINGS = {
    "content-length": (b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world", True),
    "chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
        True,
    ),
    "chunked, no trailers": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n",
        True,
    ),
    "interim answer first": (
        b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
        True,
    ),
    "connection close": (
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 11\r\n\r\nhello world",
        False,
    ),
    "to the end of the connection": (b"HTTP/1.1 200 OK\r\n\r\nhello world", False),
}


@pytest.mark.parametrize("piece", [1, 7, 4096])
@pytest.mark.parametrize("framing", sorted(FRAMINGS))
def test_every_framing_is_read_however_the_bytes_arrive(run: Run, framing: str, piece: int) -> None:
    response, reusable = FRAMINGS[framing]
    (status, body), exchange = run(_answer_fed(response, piece))
    assert (status, body) == (200, b"hello world")
    assert exchange.keep_alive is reusable


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (b"SMTP ready\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n", "content-length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunk size"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 20_000, "response head over"),
    ],
)
def test_a_malformed_answer_names_what_is_wrong_and_closes_the_connection(
    run: Run, response: bytes, reason: str
) -> None:
    with pytest.raises(MalformedResponse, match=reason):
        run(_answer_fed(response, 4096))


def test_a_connection_lost_mid_body_fails_the_call(run: Run) -> None:
    with pytest.raises(ConnectionError):
        run(_answer_fed(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", 4096))


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def _server(handler: Handler) -> AsyncIterator[tuple[str, list[asyncio.StreamWriter]]]:
    """A local server running `handler` per connection; yields its URL and its connections."""
    connections: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1/chat/completions", connections
    finally:
        server.close()


async def _echo_requests(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers each request with its own head and body (kept alive)."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        echoed = head + await reader.readexactly(length)
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s" % (len(echoed), echoed))
        await writer.drain()


def test_calls_reuse_one_connection_and_send_the_headers_and_body(run: Run) -> None:
    async def scenario() -> None:
        async with _server(_echo_requests) as (url, connections):
            http = HttpEndpoint(url, {"Authorization": "Bearer sk-test"})
            try:
                for body in (b'{"n": 1}', b'{"n": 22}'):
                    status, answer = await http.post(body, timeout_s=5)
                    assert status == 201
                    assert answer.startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:")
                    assert b"\r\nAuthorization: Bearer sk-test\r\n" in answer
                    assert answer.endswith(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                assert len(connections) == 1
                assert "sk-test" not in repr(http)
            finally:
                http.close()

    run(scenario())


def test_a_connection_the_server_closed_is_replaced(run: Run) -> None:
    async def scenario() -> None:
        async with _server(_echo_requests) as (url, connections):
            http = HttpEndpoint(url, {})
            try:
                await http.post(b"{}", timeout_s=5)
                # The server ends the idle connection (as servers do after their keep-alive timeout).
                connections[0].close()
                await wait_until(lambda: all(c.closed for c in http._idle), "the client to see it closed")
                status, _ = await http.post(b"{}", timeout_s=5)
                assert status == 201 and len(connections) == 2
            finally:
                http.close()

    run(scenario())


def test_a_call_past_its_timeout_fails_and_its_connection_is_closed(run: Run) -> None:
    async def scenario() -> None:
        ended = asyncio.Event()

        async def never_answer(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
            await reader.read()  # until the client closes
            ended.set()

        async with _server(never_answer) as (url, _):
            http = HttpEndpoint(url, {})
            try:
                with pytest.raises(TimeoutError):
                    await http.post(b"{}", timeout_s=0.2)
                await asyncio.wait_for(ended.wait(), timeout=5)
                assert not http._idle
            finally:
                http.close()

    run(scenario())


def test_a_refused_connection_is_an_os_error(run: Run) -> None:
    async def scenario() -> None:
        async with _server(_echo_requests) as (url, _):
            pass  # closed: nothing listens on its port any more
        http = HttpEndpoint(url, {})
        with pytest.raises(OSError):
            await http.post(b"{}", timeout_s=5)

    run(scenario())


def test_only_http_urls_with_a_host_are_taken() -> None:
    with pytest.raises(ValueError, match="url must be http"):
        HttpEndpoint("ftp://example.org/v1", {})
