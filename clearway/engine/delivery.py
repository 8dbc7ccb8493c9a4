"""Acknowledgements and event delivery: the batch a command rides in, the ``Ticket``
a submitter waits on (blocking or ``await``), and ``Subscription`` streams of durable
commands with their events. All completion happens per batch, never per command: one
``threading.Event`` and one ``call_soon_threadsafe`` per event loop for a whole batch.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple, Sequence

from clearway.domain.commands import Command
from clearway.domain.events import Event

if TYPE_CHECKING:
    from clearway.engine.node import Node

log = logging.getLogger("clearway.engine")

END = object()
"""Pushed to a subscription to end it."""


class Batch:
    """Commands submitted between two takes of the sequencer; completed all at once.
    Internal to the engine (the node fills it; tickets and subscriptions read it)."""

    __slots__ = ("commands", "size", "events", "records", "first_seq", "ok", "error", "finished", "_gate",
                 "waiters")

    def __init__(self) -> None:
        self.commands: list[Command] = []  # as submitted, then as sequenced (first ``ok``)
        self.size = 0
        self.events: list[list[Event]] = []
        self.records: list[tuple[int, bytes, int]] = []
        self.first_seq = 0
        self.ok = 0  # commands[:ok] are sequenced and (once done) durable
        self.error: BaseException | None = None  # raised by tickets at index >= ok
        self.finished = False
        # Held from creation until ``complete``: a bare lock is a latch at a fraction of
        # the cost of a threading.Event (a Condition and a lock in Python), and the node
        # makes one per batch, thousands a second.
        self._gate = threading.Lock()
        self._gate.acquire()
        self.waiters: list | None = []  # (loop, future) of async waiters; None once done

    def wait(self, timeout: float | None = None) -> bool:
        """Block until completed; False on timeout."""
        if self.finished:
            return True
        if self._gate.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            self._gate.release()  # let the next waiter through
            return True
        return self.finished

    def complete(self) -> None:
        with _WAITERS_LOCK:
            if self.finished:
                return
            self.finished = True
            waiters, self.waiters = self.waiters, None
        self._gate.release()
        if waiters:
            by_loop: dict[Any, list] = {}
            for loop, future in waiters:
                by_loop.setdefault(loop, []).append(future)
            for loop, futures in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_wake_futures, futures)
                except RuntimeError:  # the loop was closed meanwhile
                    pass


_WAITERS_LOCK = threading.Lock()


class _Callback:
    """A waiter of ``Batch.waiters`` that calls a function instead of resolving a Future
    (``_wake_futures`` sees the Future methods it uses)."""

    __slots__ = ("fn",)

    def __init__(self, fn) -> None:
        self.fn = fn

    def done(self) -> bool:
        return False

    def set_result(self, _value) -> None:
        try:
            self.fn()
        except Exception:  # one waiter's failure must not leave the others of its batch waiting
            log.exception("an acknowledgement callback failed")


def _wake_futures(futures: list) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


class Ticket:
    """The pending acknowledgement of one submitted command (a light future).

    ``result()`` blocks until the command is durable and returns its events; in asyncio,
    ``await ticket`` does the same without blocking the loop. Raises NodeFailed if the
    node stopped before the command became durable (its outcome is then unknown until
    the node recovers).
    """

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: Batch, index: int) -> None:
        self._batch = batch
        self._index = index

    def done(self) -> bool:
        return self._batch.finished

    def wait(self, timeout: float | None = None) -> bool:
        """Block until acknowledged or failed; False on timeout."""
        return self._batch.wait(timeout)

    def result(self, timeout: float | None = None) -> list[Event]:
        """The command's events once it is durable. Raises TimeoutError or NodeFailed."""
        batch = self._batch
        if not batch.wait(timeout):
            raise TimeoutError("command not acknowledged yet")
        if self._index >= batch.ok:
            raise batch.error  # type: ignore[misc]
        return batch.events[self._index]

    @property
    def seq(self) -> int:
        """The assigned sequence number (once done; 0 if the command failed)."""
        batch = self._batch
        return batch.first_seq + self._index if batch.finished and self._index < batch.ok else 0

    @property
    def command(self) -> Command:
        """The command as sequenced, with its seq and ts (once done and not failed)."""
        self.result(0)
        return self._batch.commands[self._index]

    def call_when_done(self, loop: asyncio.AbstractEventLoop, callback) -> bool:
        """Arrange ``callback()`` to run on ``loop`` once this ticket (its whole batch) is
        done, with no Future or Task in between; False (and no call) if it is done
        already. For a transport answering many tickets from one callback."""
        batch = self._batch
        with _WAITERS_LOCK:
            if batch.waiters is None:
                return False
            batch.waiters.append((loop, _Callback(callback)))
        return True

    def __await__(self):
        return self._result_async().__await__()

    async def _result_async(self) -> list[Event]:
        batch = self._batch
        if not batch.finished:
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            with _WAITERS_LOCK:
                pending = batch.waiters is not None
                if pending:
                    batch.waiters.append((loop, future))
            if pending:
                await future
        return self.result(0)


class Tickets(Sequence[Ticket]):
    """The tickets of one ``Node.submit_many`` call, made on access (a caller that only
    waits for the group pays for no per-command object). The commands share one batch:
    ``done``, ``wait`` and ``await`` apply to all of them at once."""

    __slots__ = ("_batch", "_start", "_stop")

    def __init__(self, batch: Batch, start: int, stop: int) -> None:
        self._batch = batch
        self._start = start
        self._stop = stop

    def __len__(self) -> int:
        return self._stop - self._start

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [Ticket(self._batch, i) for i in range(self._start, self._stop)[index]]
        return Ticket(self._batch, range(self._start, self._stop)[index])

    def done(self) -> bool:
        return self._batch.finished

    def wait(self, timeout: float | None = None) -> bool:
        """Block until all are acknowledged or failed; False on timeout."""
        return self._batch.wait(timeout)

    def results(self, timeout: float | None = None) -> list[list[Event]]:
        """The events of each command once durable. Raises TimeoutError or NodeFailed."""
        if not self._batch.wait(timeout):
            raise TimeoutError("commands not acknowledged yet")
        return [Ticket(self._batch, i).result(0) for i in range(self._start, self._stop)]

    def __await__(self):
        return self[-1].__await__() if len(self) else _nothing().__await__()


async def _nothing() -> None:
    return None


class Published(NamedTuple):
    """One durable command and its events, as delivered to subscribers."""

    seq: int
    command: Command
    events: list[Event]


class Subscription:
    """A stream of ``Published`` items in sequence order, starting with the first command
    made durable after ``Node.subscribe``. Fed by the committer thread; read by one
    consumer. If the consumer falls ``max_backlog`` batches behind, the subscription
    ends with ``overflowed = True`` (the node never waits for a subscriber)."""

    def __init__(self, node: "Node", max_backlog: int) -> None:
        self._node = node
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._max_backlog = max_backlog
        self._current: Batch | None = None
        self._pos = 0
        self.closed = False
        self.overflowed = False

    def _push(self, batch: Any) -> bool:
        """Called by the node; False if the subscription is over (overflow)."""
        if batch is not END and self._queue.qsize() >= self._max_backlog:
            self.overflowed = True
            self._queue.put(END)
            return False
        self._queue.put(batch)
        return True

    def get(self, timeout: float | None = None) -> Published | None:
        """The next item; None once the subscription has ended. Raises TimeoutError."""
        while True:
            batch = self._current
            if batch is not None and self._pos < batch.ok:
                i = self._pos
                self._pos = i + 1
                return Published(batch.first_seq + i, batch.commands[i], batch.events[i])
            if self.closed:
                return None
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError("no event yet") from None
            if item is END:
                self.closed = True
                self._current = None
                return None
            self._current, self._pos = item, 0

    def __iter__(self) -> Iterator[Published]:
        while (item := self.get()) is not None:
            yield item

    def close(self) -> None:
        self._node._unsubscribe(self)
        self._queue.put(END)


class LoopSubscription:
    """Durable commands delivered straight onto an asyncio event loop: the committer
    thread queues each batch and, if no delivery is pending, schedules one with
    ``loop.call_soon_threadsafe``; on the loop, ``callback(items)`` receives the
    ``Published`` items of every batch queued since, in sequence order (at most
    ``chunk`` items per call; the rest follow in a later loop iteration, so other
    callbacks get a turn).

    Unlike :class:`Subscription`, no thread sits between the node and the loop: one
    cross-thread wake-up per delivery instead of two (committer → reader thread → loop),
    and nothing else competes for the GIL while the loop answers the acknowledged
    requests (Node.subscribe_loop).

    Ending: ``callback([], ended=True)`` once, after ``close()``, the node's close, or an
    overflow (more than ``max_backlog`` batches waiting for the loop; ``overflowed`` is
    then True and the consumer should re-synchronise). The node never waits for it.
    """

    def __init__(self, node: "Node", loop: asyncio.AbstractEventLoop, callback, max_backlog: int,
                 chunk: int = 2_000) -> None:
        self._node = node
        self._loop = loop
        self._callback = callback
        self._max_backlog = max_backlog
        self._chunk = chunk
        self._lock = threading.Lock()
        self._pending: collections.deque = collections.deque()  # batches, maybe END last
        self._scheduled = False
        self._current: Batch | None = None  # partly delivered batch
        self._pos = 0
        self.closed = False
        self.overflowed = False

    def _push(self, batch: Any) -> bool:
        """Called by the node (committer thread); False if the subscription is over."""
        with self._lock:
            if self.closed or (self._pending and self._pending[-1] is END):
                return False
            if batch is not END and len(self._pending) >= self._max_backlog:
                self.overflowed = True
                batch = END
            self._pending.append(batch)
            schedule = not self._scheduled
            self._scheduled = True
        if schedule:
            try:
                self._loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                self.closed = True
                return False
        return batch is not END

    def _deliver(self) -> None:
        """On the loop: hand over up to ``chunk`` items; reschedule if more are waiting."""
        if self.closed:
            return
        items: list[Published] = []
        chunk = self._chunk
        ended = False
        while len(items) < chunk:
            batch = self._current
            if batch is not None:
                stop = min(batch.ok, self._pos + chunk - len(items))
                first, commands, events = batch.first_seq, batch.commands, batch.events
                items.extend(Published(first + i, commands[i], events[i]) for i in range(self._pos, stop))
                self._pos = stop
                if stop >= batch.ok:
                    self._current = None
                continue
            with self._lock:
                if not self._pending:
                    self._scheduled = False
                    break
                nxt = self._pending.popleft()
            if nxt is END:
                ended = True
                break
            self._current, self._pos = nxt, 0
        more = not ended and (self._current is not None or self._scheduled)
        if ended:
            self.closed = True
        try:
            if items or ended:
                self._callback(items, ended)
        finally:  # a consumer that raised still gets the rest (and the end)
            if more and not self.closed:
                self._loop.call_soon(self._deliver)

    def close(self) -> None:
        """Stop delivering (from the loop's thread or any other)."""
        self._node._unsubscribe(self)
        self._push(END)
