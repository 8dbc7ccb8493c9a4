"""uvicorn's sans-I/O WebSocket protocol (``websockets-sansio``) with coalesced writes.

uvicorn writes every outgoing message to the socket as soon as the application sends it
(one ``write`` system call per message). When one acknowledgement batch of the node
answers many orders at once, those answers leave here in one ``write`` per event-loop
iteration instead: the frames are serialised at once (``ServerProtocol.send_text``
queues their bytes) and flushed by a callback scheduled with ``call_soon``. Anything
else uvicorn writes (pings, pongs, close) goes through ``data_to_send()`` first, so the
order of the bytes on the wire is unchanged.

Incoming text messages can be handed to the application straight from ``data_received``
(``text_handler``), without uvicorn's per-message queue, task wake-up and pause/resume of
reading.

Tied to uvicorn's ``WebSocketsSansIOProtocol`` internals (``conn``, ``transport``,
``writable``, ``handshake_complete``, ``close_sent``, ``initial_response``,
``disconnected``, ``frames``, ``curr_msg_data_type``, ``queue``) as of uvicorn 0.54;
``server.py`` falls back to the plain class if they are missing.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState

from clearway.engine.idlepoll import wake_parked

try:
    from uvicorn.protocols.utils import ClientDisconnected
except ImportError:  # pragma: no cover
    ClientDisconnected = OSError  # type: ignore[assignment,misc]

_NEEDED = ("conn", "transport", "writable", "handshake_complete", "close_sent", "initial_response",
           "disconnected", "loop")
_NEEDED_RECEIVE = ("frames", "curr_msg_data_type", "close_sent", "queue", "put_nowait")


class CoalescingWebSocketProtocol(WebSocketsSansIOProtocol):
    """See the module docstring."""

    _flush_scheduled = False
    text_handler = None
    """Set by the application (server.Connection) while it reads this connection: a
    callable taking each complete text message (``str``), called right here in
    ``data_received`` instead of queueing an ASGI ``websocket.receive`` for the
    application's task — no queue, no task wake-up and no pause/resume of reading per
    message (uvicorn pauses reading after each queued message until the application
    takes it). Only while the ASGI queue is empty, so messages keep their order; binary
    messages, closes and disconnects take uvicorn's way."""

    messages_done = None
    """Set with ``text_handler``: called after the messages of one read were handed over
    (the application releases the commands they submitted: service.Api.release_held)."""

    def data_received(self, data: bytes) -> None:
        wake_parked()  # adaptive idle polling (engine/idlepoll.py): the CPUs poll through this request's round trip
        super().data_received(data)
        done = self.messages_done
        if done is not None:
            done()

    def send_receive_event_to_app(self) -> None:
        handler = self.text_handler
        if handler is None or self.curr_msg_data_type != "text" or self.close_sent or not self.queue.empty():
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        try:
            text = data.decode()
        except UnicodeDecodeError:
            self.logger.exception("Invalid UTF-8 sequence received from client.")
            self.conn.send_close(1007)
            self.handle_parser_exception()
            return
        handler(text)

    async def send(self, message) -> None:  # type: ignore[override]
        if (message["type"] != "websocket.send" or not self.handshake_complete or self.close_sent
                or self.initial_response is not None):
            self._flush()
            await super().send(message)
            return
        await self.writable.wait()  # uvicorn's flow control: paused while the socket buffer is full
        if self.disconnected:
            raise ClientDisconnected()
        try:
            data = message.get("bytes")
            if data is not None:
                self.conn.send_binary(data)
            else:
                self.conn.send_text(message["text"].encode())
        except InvalidState:
            raise ClientDisconnected() from None
        self._schedule_flush()

    def send_text_now(self, data: bytes) -> bool:
        """Queue one text frame (UTF-8 ``data``) without a coroutine, for a caller on the
        loop whose own queue is empty; it leaves with the next flush (``flush_now``, or
        the one scheduled here). False, and nothing queued, unless the connection is open
        and not paused by flow control (the caller then goes through ``send``)."""
        if (not self.handshake_complete or self.close_sent or self.initial_response is not None
                or self.disconnected or not self.writable.is_set()):
            return False
        try:
            self.conn.send_text(data)
        except InvalidState:
            return False
        self._schedule_flush()
        return True

    def flush_now(self) -> None:
        """Write what is queued now (e.g. after a burst of ``send_text_now``), before
        anything else the loop has scheduled runs (such as another connection's requests)."""
        self._flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        output = self.conn.data_to_send()
        if output and not self.transport.is_closing():
            self.transport.write(b"".join(output))


def protocol_class() -> type:
    """The coalescing class if this uvicorn has the internals it relies on, else uvicorn's."""
    probe = WebSocketsSansIOProtocol.__init__.__code__.co_names + WebSocketsSansIOProtocol.send.__code__.co_names
    receive = WebSocketsSansIOProtocol.send_receive_event_to_app.__code__.co_names
    if all(name in probe for name in _NEEDED) and all(name in receive for name in _NEEDED_RECEIVE):
        return CoalescingWebSocketProtocol
    return WebSocketsSansIOProtocol  # pragma: no cover
