"""A TCP proxy on loopback that a test puts between the services and a server it must not stop
(the machine's shared S3 server, say), so it can make that server unreachable and reachable
again without touching it.

While the proxy is cut, every open connection is reset and every new one is reset as soon as
it is accepted: to the services the server looks gone, exactly as when its port is closed.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.support.nats import free_port

_BUFFER = 256 * 1024


@dataclass(eq=False)
class _Pair:
    """One client connection and its connection to the upstream server."""

    downstream: socket.socket
    upstream: socket.socket
    closed: threading.Event = field(default_factory=threading.Event)
    directions_done: int = 0
    """Directions that ended cleanly (a half-close each); at two the pair is finished."""

    def reset(self) -> None:
        """Close both ends at once with a TCP reset, so neither side waits for more."""
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.downstream, self.upstream):
            _reset(sock)


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``upstream_host:upstream_port``; :meth:`cut` and
    :meth:`restore` make the upstream unreachable and reachable again."""

    def __init__(self, upstream_host: str, upstream_port: int, port: int | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port or free_port()
        self.accepted = 0
        """Connections accepted since start, refused ones included."""
        self.refused = 0
        """Connections reset on arrival because the proxy was cut."""
        self._cut = threading.Event()
        self._stopping = threading.Event()
        self._pairs: set[_Pair] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None

    @classmethod
    def to(cls, endpoint: str) -> TcpProxy:
        """A proxy to ``host:port``."""
        host, _, port = endpoint.rpartition(":")
        return cls(host, int(port))

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:port``: where clients connect instead of the upstream server."""
        return f"127.0.0.1:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    def start(self) -> None:
        """Listen and forward (in daemon threads) until :meth:`stop`."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.settimeout(0.2)
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, name=f"tcp-proxy-{self.port}", daemon=True)
        self._acceptor.start()

    def cut(self) -> None:
        """Reset every open connection and every new one until :meth:`restore`."""
        self._cut.set()
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            pair.reset()

    def restore(self) -> None:
        """Forward new connections again."""
        self._cut.clear()

    def stop(self) -> None:
        """Stop listening and reset every connection."""
        self._stopping.set()
        self.cut()
        if self._acceptor is not None:
            self._acceptor.join(5)
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()

    def __enter__(self) -> TcpProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """The upstream is unreachable inside the block."""
        self.cut()
        try:
            yield
        finally:
            self.restore()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                downstream, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            if self._cut.is_set():
                self.refused += 1
                _reset(downstream)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _reset(downstream)
                continue
            for sock in (downstream, upstream):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = _Pair(downstream, upstream)
            with self._lock:
                self._pairs.add(pair)
            for source, target in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(pair, source, target), daemon=True).start()

    def _pump(self, pair: _Pair, source: socket.socket, target: socket.socket) -> None:
        try:
            while not pair.closed.is_set():
                data = source.recv(_BUFFER)
                if not data:
                    # A clean end of one direction: pass the half-close on.
                    with contextlib.suppress(OSError):
                        target.shutdown(socket.SHUT_WR)
                    self._direction_done(pair)
                    return
                target.sendall(data)
        except OSError:
            pair.reset()
        with self._lock:
            self._pairs.discard(pair)

    def _direction_done(self, pair: _Pair) -> None:
        with self._lock:
            pair.directions_done += 1
            if pair.directions_done < 2:
                return
            self._pairs.discard(pair)
        pair.closed.set()
        for sock in (pair.downstream, pair.upstream):
            with contextlib.suppress(OSError):
                sock.close()
