#!/usr/bin/env python3
"""An independent WebTransport client for the lockstep relay (Python, aioquic).

Proof that the relay speaks WebTransport and the lockstep protocol to an implementation other
than its own (`wtransport`): fetch `/api/config`, connect over HTTP/3 to the published URL,
pin the published certificate hash (SHA-256 of the leaf certificate's DER, as browsers do for
`serverCertificateHashes`), say `hello` on the control stream, wait for `welcome`, then measure
one clock sample with a `ping` datagram and its `pong`.

Usage: webtransport_client.py --config-url http://127.0.0.1:PORT/api/config

Exits 0 after printing one summary line; non-zero with a message on stderr on any failure.
All traffic stays on the loopback interface: a non-loopback host is refused.

Needs the `aioquic` and `msgpack` modules (`./scripts/test.sh` installs both into target/py).
"""

import argparse
import asyncio
import base64
import hashlib
import ipaddress
import json
import ssl
import struct
import sys
import time
import urllib.parse
import urllib.request

try:
    import msgpack
    from aioquic.asyncio.client import connect
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import DatagramReceived, HeadersReceived, WebTransportStreamDataReceived
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.events import ConnectionTerminated, StreamDataReceived, StreamReset
    from cryptography.hazmat.primitives.serialization import Encoding
except ImportError as e:  # pragma: no cover - reported to the Rust test
    sys.exit(
        f"missing Python module ({e}); run ./scripts/test.sh (it creates target/py with "
        "msgpack and aioquic), or: pip install msgpack aioquic"
    )

OVERALL_TIMEOUT = 20.0  # seconds, the whole run
STEP_TIMEOUT = 5.0  # seconds, any one expected answer
PING_ATTEMPTS = 5
PATH = "/lockstep"
MAX_RELAY_FRAME = 1_048_576
CLIENT = "aioquic-test/1"


class Failure(Exception):
    """A check failed; the message says which."""


def loopback_only(host: str, what: str) -> None:
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise Failure(f"{what} host {host!r} is not a loopback address; refusing to leave 127.0.0.1")


def fetch_config(url: str) -> tuple[str, int, str, bytes]:
    """(host, port, authority, pinned SHA-256) from the relay's /api/config."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "http" or not parsed.hostname:
        raise Failure(f"--config-url must be an http:// URL, got {url!r}")
    loopback_only(parsed.hostname, "config URL")
    # Never through a proxy: the relay is on loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=STEP_TIMEOUT) as response:
        config = json.load(response)
    try:
        wt_url = config["webtransport"]["url"]
        hashes = config["webtransport"]["certificate_hashes"]
    except (KeyError, TypeError) as e:
        raise Failure(f"/api/config lacks webtransport.url or certificate_hashes: {config}") from e
    if not hashes:
        raise Failure("/api/config publishes no certificate hash to pin")
    first = hashes[0]
    if first.get("algorithm", "sha-256") != "sha-256":
        raise Failure(f"unexpected hash algorithm {first.get('algorithm')!r}")
    pinned = base64.b64decode(first["value"], validate=True)
    if len(pinned) != 32:
        raise Failure(f"published hash is {len(pinned)} bytes, not a SHA-256")

    wt = urllib.parse.urlsplit(wt_url)
    if wt.scheme != "https" or not wt.hostname or not wt.port:
        raise Failure(f"webtransport.url {wt_url!r} is not https://host:port/...")
    if wt.path != PATH:
        raise Failure(f"webtransport.url path is {wt.path!r}, the protocol says {PATH!r}")
    loopback_only(wt.hostname, "WebTransport")
    return wt.hostname, wt.port, wt.netloc, pinned


def frame(message: dict) -> bytes:
    payload = msgpack.packb(message, use_bin_type=True)
    return struct.pack(">I", len(payload)) + payload


def monotonic_us() -> int:
    return time.monotonic_ns() // 1000


class Client(QuicConnectionProtocol):
    """A QUIC connection whose HTTP/3 layer starts only once the certificate is pinned."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h3: H3Connection | None = None
        self.held: list = []  # QUIC events that arrived before the pin check
        self.control_stream: int | None = None
        self.events: asyncio.Queue = asyncio.Queue()
        self.settings = asyncio.Event()

    def start_h3(self) -> None:
        self.h3 = H3Connection(self._quic, enable_webtransport=True)
        held, self.held = self.held, []
        for event in held:
            self.quic_event_received(event)
        self.transmit()

    def quic_event_received(self, event) -> None:
        if isinstance(event, ConnectionTerminated):
            self.events.put_nowait(event)
            return
        if self.h3 is None:
            self.held.append(event)
            return
        # aioquic's H3Connection does not mark a client-opened bidirectional WebTransport
        # stream as such, and would parse the relay's replies on it as HTTP/3 frames: take the
        # control stream's bytes straight from QUIC.
        if self.control_stream is not None and getattr(event, "stream_id", None) == self.control_stream:
            if isinstance(event, StreamDataReceived):
                self.events.put_nowait(("control", event.data, event.end_stream))
            elif isinstance(event, StreamReset):
                self.events.put_nowait(("control", b"", True))
            return
        for h3_event in self.h3.handle_event(event):
            self.events.put_nowait(h3_event)
        if self.h3.received_settings is not None:
            self.settings.set()

    async def next_event(self, deadline: float, waiting_for: str):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Failure(f"timed out waiting for {waiting_for}")
        try:
            event = await asyncio.wait_for(self.events.get(), remaining)
        except asyncio.TimeoutError:
            raise Failure(f"timed out waiting for {waiting_for}") from None
        if isinstance(event, ConnectionTerminated):
            raise Failure(
                f"connection closed while waiting for {waiting_for}: "
                f"code {event.error_code:#x} {event.reason_phrase!r}"
            )
        return event


def check_pin(client: Client, pinned: bytes) -> None:
    # aioquic keeps the server's leaf certificate (a `cryptography` x509 object) on the TLS
    # context, also with verification off (tls.Context._set_peer_certificate).
    certificate = getattr(client._quic.tls, "_peer_certificate", None)
    if certificate is None:
        raise Failure("aioquic exposes no peer certificate; cannot check the pinned hash")
    actual = hashlib.sha256(certificate.public_bytes(Encoding.DER)).digest()
    if actual != pinned:
        raise Failure(
            "certificate pinning failed: the relay's certificate has SHA-256 "
            f"{base64.b64encode(actual).decode()}, /api/config published "
            f"{base64.b64encode(pinned).decode()}"
        )


async def session(client: Client, authority: str) -> int:
    """Extended CONNECT to /lockstep; the session id once the relay answered 200."""
    deadline = time.monotonic() + STEP_TIMEOUT
    # The extended CONNECT needs the relay's SETTINGS (ENABLE_CONNECT_PROTOCOL, WebTransport).
    try:
        await asyncio.wait_for(client.settings.wait(), STEP_TIMEOUT)
    except asyncio.TimeoutError:
        raise Failure("the relay sent no HTTP/3 SETTINGS") from None
    settings = client.h3.received_settings
    # RFC 9220 ENABLE_CONNECT_PROTOCOL (0x8), RFC 9297 H3_DATAGRAM (0x33).
    for key, name in ((0x8, "ENABLE_CONNECT_PROTOCOL"), (0x33, "H3_DATAGRAM")):
        if settings.get(key) != 1:
            raise Failure(f"relay SETTINGS lack {name}=1: {settings}")

    session_id = client._quic.get_next_available_stream_id()
    client.h3.send_headers(
        session_id,
        [
            (b":method", b"CONNECT"),
            (b":protocol", b"webtransport"),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", PATH.encode()),
            (b"sec-webtransport-http3-draft", b"draft02"),
            (b"origin", f"https://{authority}".encode()),
        ],
    )
    client.transmit()
    while True:
        event = await client.next_event(deadline, "the response to the WebTransport CONNECT")
        if isinstance(event, HeadersReceived) and event.stream_id == session_id:
            headers = dict(event.headers)
            status = headers.get(b":status", b"").decode()
            if status != "200":
                raise Failure(f"WebTransport CONNECT answered {status or 'without :status'}: {headers}")
            if event.stream_ended:
                raise Failure("the relay ended the session stream in its 200 response")
            return session_id


async def handshake(client: Client, session_id: int) -> dict:
    """Opens the control stream, sends hello, returns the welcome."""
    stream = client.h3.create_webtransport_stream(session_id, is_unidirectional=False)
    client.control_stream = stream
    hello = {"type": "hello", "version": 1, "client": CLIENT, "features": [], "name": "Py"}
    client._quic.send_stream_data(stream, frame(hello))
    client.transmit()

    deadline = time.monotonic() + STEP_TIMEOUT
    buffer = b""
    while True:
        event = await client.next_event(deadline, "welcome")
        if isinstance(event, WebTransportStreamDataReceived) and event.stream_id == stream:
            # Only if a future aioquic routes the stream itself.
            data, ended = event.data, event.stream_ended
        elif isinstance(event, tuple) and event[0] == "control":
            _, data, ended = event
        else:
            continue
        buffer += data
        while len(buffer) >= 4:
            (length,) = struct.unpack(">I", buffer[:4])
            if length == 0 or length > MAX_RELAY_FRAME:
                raise Failure(f"bad frame length {length} on the control stream")
            if len(buffer) < 4 + length:
                break
            payload, buffer = buffer[4 : 4 + length], buffer[4 + length :]
            message = msgpack.unpackb(payload, raw=False)
            if not isinstance(message, dict):
                raise Failure(f"control frame is not a map: {message!r}")
            kind = message.get("type")
            if kind == "error":
                raise Failure(f"relay answered hello with an error: {message}")
            if kind == "welcome":
                if message.get("version") != 1:
                    raise Failure(f"welcome.version is {message.get('version')!r}, not 1")
                you = message.get("you")
                if not isinstance(you, int) or isinstance(you, bool):
                    raise Failure(f"welcome.you is not an integer: {message}")
                return message
        if ended:
            raise Failure("the relay ended the control stream before welcome")


async def clock_ping(client: Client, session_id: int) -> float:
    """Sends ping datagrams until a matching pong arrives; the round trip in ms."""
    deadline = time.monotonic() + STEP_TIMEOUT
    per_attempt = STEP_TIMEOUT / PING_ATTEMPTS
    sent: dict[int, int] = {}
    for attempt in range(PING_ATTEMPTS):
        seq = 1 + attempt
        t0 = monotonic_us()
        sent[seq] = t0
        payload = msgpack.packb({"type": "ping", "seq": seq, "t0": t0}, use_bin_type=True)
        client.h3.send_datagram(session_id, payload)
        client.transmit()
        attempt_deadline = min(deadline, time.monotonic() + per_attempt)
        while time.monotonic() < attempt_deadline:
            try:
                event = await client.next_event(attempt_deadline, "pong")
            except Failure as e:
                if "timed out" in str(e):
                    break
                raise
            if not isinstance(event, DatagramReceived):
                continue
            if event.stream_id != session_id:
                raise Failure(f"datagram for stream {event.stream_id}, the session is {session_id}")
            t3 = monotonic_us()
            try:
                message = msgpack.unpackb(event.data, raw=False)
            except Exception as e:  # a datagram that does not decode
                raise Failure(f"undecodable datagram from the relay: {event.data.hex()} ({e})") from e
            if not isinstance(message, dict) or message.get("type") != "pong":
                continue
            seq_back = message.get("seq")
            if seq_back not in sent:
                continue
            if message.get("t0") != sent[seq_back]:
                raise Failure(f"pong.t0 {message.get('t0')} does not echo ping.t0 {sent[seq_back]}")
            t1, t2 = message.get("t1"), message.get("t2")
            if not isinstance(t1, int) or not isinstance(t2, int) or t1 > t2:
                raise Failure(f"pong needs integers t1 <= t2: {message}")
            return (t3 - sent[seq_back]) / 1000.0
    raise Failure(f"no pong after {PING_ATTEMPTS} ping datagrams")


async def run(config_url: str) -> str:
    host, port, authority, pinned = fetch_config(config_url)
    configuration = QuicConfiguration(
        is_client=True,
        alpn_protocols=H3_ALPN,
        max_datagram_frame_size=65536,
        # No CA check (the certificate is self-signed); the hash is pinned below instead.
        verify_mode=ssl.CERT_NONE,
        server_name=host,
    )
    try:
        async with connect(host, port, configuration=configuration, create_protocol=Client) as client:
            check_pin(client, pinned)
            client.start_h3()
            session_id = await session(client, authority)
            welcome = await handshake(client, session_id)
            rtt_ms = await clock_ping(client, session_id)
    except ConnectionError as e:
        raise Failure(f"QUIC connection to {host}:{port} failed: {e!r}") from e
    return (
        f"handshake ok, welcome you={welcome['you']}, pong rtt={rtt_ms:.2f} ms, "
        "pinned sha-256 OK"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-url", required=True, help="http://127.0.0.1:PORT/api/config")
    args = parser.parse_args()
    try:
        summary = asyncio.run(asyncio.wait_for(run(args.config_url), OVERALL_TIMEOUT))
    except asyncio.TimeoutError:
        print(f"webtransport_client: FAILED: no result within {OVERALL_TIMEOUT:.0f} s", file=sys.stderr)
        return 1
    except Failure as e:
        print(f"webtransport_client: FAILED: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # anything unexpected is a failure too, with its type
        print(f"webtransport_client: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
