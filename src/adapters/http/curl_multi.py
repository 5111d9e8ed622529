"""libcurl's multi-socket interface on the running event loop: the driver under ``CurlTransport``.

libcurl says which sockets it wants watched and when it wants a timer; the loop calls back when a
socket is ready or the timer is due, and libcurl carries every transfer as far as it can. This is
what ``pycurl.AsyncCurlMulti`` does too; ours is leaner on the path every request takes (about 9 %
of the worker's Python time went to that class's bookkeeping: a future callback and a bound
partial per transfer, the timer cancelled and rescheduled at every call even when already due,
a watcher state object per socket, a notification hop before completions are read; ADR 0007,
the 2 December drain addendum), which is the whole reason it exists.
"""

from __future__ import annotations

import asyncio

import pycurl

__all__ = ["CurlMulti"]

_IN, _OUT = pycurl.POLL_IN, pycurl.POLL_OUT


class CurlMulti:
    """One libcurl multi handle driven by one event loop (the running loop of the first
    ``start``). ``start`` begins a transfer and gives the future of its end."""

    def __init__(self) -> None:
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transfers: dict[pycurl.Curl, asyncio.Future[None]] = {}
        self._watched: dict[int, int] = {}  # socket → the POLL_IN / POLL_OUT bits watched
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._due_now = False  # the timer pending is a call_soon (libcurl asked for 0 ms)
        self._closed = False

    def setopt(self, option: int, value: int) -> None:
        """A multi-handle option (connection limits); the callbacks are this driver's own."""
        self._multi.setopt(option, value)

    def start(self, handle: pycurl.Curl) -> asyncio.Future[None]:
        """Start ``handle``'s transfer: the future is done when it ends (``pycurl.error``, code and
        message, if it failed). Whoever awaits it calls ``cancel(handle)`` if cancelled."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._transfers[handle] = future
        try:
            self._multi.add_handle(handle)
        except BaseException:
            del self._transfers[handle]
            raise
        return future

    def cancel(self, handle: pycurl.Curl) -> None:
        """Stop ``handle``'s transfer (not from inside a libcurl callback)."""
        if self._transfers.pop(handle, None) is not None:
            self._multi.remove_handle(handle)

    async def aclose(self) -> None:
        """Stop every transfer (their futures are cancelled) and close the handle."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for handle, future in list(self._transfers.items()):
            del self._transfers[handle]
            self._multi.remove_handle(handle)
            future.cancel()
        loop = self._loop
        if loop is not None:
            for fd, bits in self._watched.items():
                if bits & _IN:
                    loop.remove_reader(fd)
                if bits & _OUT:
                    loop.remove_writer(fd)
        self._watched.clear()
        self._multi.close()

    # --- libcurl's callbacks (called from inside socket_action / add_handle)

    def _on_socket(self, what: int, fd: int, multi: object, data: object) -> None:
        loop = self._loop
        if loop is None or self._closed:
            return
        old = self._watched.get(fd, 0)
        new = 0 if what == pycurl.POLL_REMOVE else what & (_IN | _OUT)
        if new == old:
            return
        if old & _IN and not new & _IN:
            loop.remove_reader(fd)
        if old & _OUT and not new & _OUT:
            loop.remove_writer(fd)
        if new & _IN and not old & _IN:
            loop.add_reader(fd, self._act, fd, pycurl.CSELECT_IN)
        if new & _OUT and not old & _OUT:
            loop.add_writer(fd, self._act, fd, pycurl.CSELECT_OUT)
        if new:
            self._watched[fd] = new
        else:
            del self._watched[fd]

    def _on_timer(self, milliseconds: int) -> None:
        if self._closed:
            return
        if milliseconds == 0 and self._due_now:
            return  # already due on the next turn of the loop
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._due_now = milliseconds == 0
        loop = self._loop
        if loop is None:
            return
        if milliseconds == 0:
            # call_soon, not at once: libcurl may not be re-entered from its own callback.
            self._timer = loop.call_soon(self._on_timeout)
        elif milliseconds > 0:
            self._timer = loop.call_later(milliseconds / 1000, self._on_timeout)

    # --- the loop's callbacks

    def _on_timeout(self) -> None:
        self._timer = None
        self._due_now = False
        self._act(pycurl.SOCKET_TIMEOUT, 0)

    def _act(self, fd: int, event: int) -> None:
        multi = self._multi
        try:
            multi.socket_action(fd, event)
        except pycurl.error as error:  # the multi handle itself failed: no transfer can go on
            for handle in list(self._transfers):
                self._finish(handle, error)
            return
        while True:
            queued, done, failed = multi.info_read()
            for handle in done:
                self._finish(handle, None)
            for handle, code, message in failed:
                self._finish(handle, pycurl.error(code, message))
            if not queued:
                return

    def _finish(self, handle: pycurl.Curl, error: BaseException | None) -> None:
        future = self._transfers.pop(handle, None)
        if future is None:
            return
        self._multi.remove_handle(handle)
        if future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
