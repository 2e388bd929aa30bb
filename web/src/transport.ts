/**
 * The two ways to reach a relay (PROTOCOL.md §2): WebTransport (a control stream plus
 * datagrams) and the WebSocket fallback. Both present the same small interface so the session
 * above never cares which one it has.
 */
import {
  type ClientMessage,
  type RelayMessage,
  type TransportKind,
  DecodeError,
  FrameReader,
  MAX_DATAGRAM_PAYLOAD,
  decodeMessage,
  encodeMessage,
  frame,
  isDatagramClass,
} from './protocol';

/** Where the relay is, as `GET /api/config` publishes it. */
export interface RelayConfig {
  protocol_version: number;
  relay_id?: string;
  webtransport?: { url: string; certificate_hashes: { algorithm: string; value: string }[] };
  websocket: { url: string };
  /** The other relays sharing this one's rooms (through Redis): where to go when it is gone. */
  relays?: PeerRelay[];
}

/** Another relay, as a relay lists it. */
export interface PeerRelay {
  id: string;
  webtransport?: { url: string; certificate_hashes: { algorithm: string; value: string }[] };
  websocket: { url: string };
}

/** An open connection to the relay. */
export interface Transport {
  readonly kind: TransportKind;
  /** Sends one message: datagram-class ones as datagrams where the transport has them. */
  send(message: ClientMessage): void;
  /** Closes the connection; `onClose` still fires once. */
  close(reason?: string): void;
}

/** What a transport reports upwards. */
export interface TransportHandlers {
  onMessage(message: RelayMessage): void;
  /** The connection ended (by either side); `reason` is for people and logs. */
  onClose(reason: string): void;
  /** A relay message that did not decode and was dropped. */
  onDropped?(error: string): void;
}

/**
 * Bytes a transport may have queued and unsent before it counts as stuck: a relay that stops
 * reading must not make the page buffer without bound.
 */
const MAX_BUFFERED_BYTES = 1 << 20;

function base64ToBytes(value: string): Uint8Array<ArrayBuffer> {
  const raw = atob(value);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) out[i] = raw.charCodeAt(i);
  return out;
}

/** Whether this browser has WebTransport at all. */
export function hasWebTransport(): boolean {
  return typeof (globalThis as { WebTransport?: unknown }).WebTransport === 'function';
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/**
 * Opens a WebTransport session and its one control stream. `certificateHashes` pins a
 * self-signed relay certificate (PROTOCOL.md §2.1); empty means the system's trusted roots.
 */
export async function openWebTransport(
  url: string,
  certificateHashes: { algorithm: string; value: string }[],
  timeoutMs: number,
  handlers: TransportHandlers,
): Promise<Transport> {
  const options: WebTransportOptions = {};
  if (certificateHashes.length > 0) {
    options.serverCertificateHashes = certificateHashes.map((h) => ({
      algorithm: h.algorithm,
      value: base64ToBytes(h.value),
    }));
  }
  const wt = new WebTransport(url, options);
  // A rejected `closed` must never surface as an unhandled rejection.
  wt.closed.catch(() => undefined);
  try {
    await withTimeout(wt.ready, timeoutMs, 'WebTransport handshake');
  } catch (e) {
    try {
      wt.close();
    } catch {
      // already failed
    }
    throw e;
  }
  const stream = await withTimeout(wt.createBidirectionalStream(), timeoutMs, 'opening the control stream');
  const controlWriter = stream.writable.getWriter();
  const datagramWriter = wt.datagrams.writable.getWriter();
  let closed = false;

  const finish = (reason: string): void => {
    if (closed) return;
    closed = true;
    try {
      wt.close({ closeCode: 0, reason: reason.slice(0, 100) });
    } catch {
      // already closed
    }
    handlers.onClose(reason);
  };

  const deliver = (bytes: Uint8Array): void => {
    let message: RelayMessage | undefined;
    try {
      message = decodeMessage(bytes);
    } catch (e) {
      if (e instanceof DecodeError) handlers.onDropped?.(e.message);
      return;
    }
    if (message && !closed) handlers.onMessage(message);
  };

  void (async () => {
    const reader = stream.readable.getReader();
    const frames = new FrameReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const { frames: payloads, skipped } = frames.push(value);
        if (skipped > 0) handlers.onDropped?.(`${skipped} bad frame(s) skipped`);
        for (const p of payloads) deliver(p);
      }
      finish('the relay closed the control stream');
    } catch (e) {
      finish(`control stream failed: ${(e as Error).message}`);
    }
  })();

  void (async () => {
    const reader = wt.datagrams.readable.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        // Datagrams carry only datagram-class messages (§2.1); anything else is dropped.
        if (value.byteLength > MAX_DATAGRAM_PAYLOAD + 100) continue;
        let message: RelayMessage | undefined;
        try {
          message = decodeMessage(value);
        } catch {
          continue;
        }
        if (message && isDatagramClass(message.type) && !closed) handlers.onMessage(message);
      }
    } catch {
      // the session ends; `closed` reports it
    }
  })();

  wt.closed.then(
    (info) => finish(`WebTransport closed${info?.reason ? `: ${info.reason}` : ''}`),
    (e: Error) => finish(`WebTransport failed: ${e.message}`),
  );

  return {
    kind: 'webtransport',
    send(message: ClientMessage): void {
      if (closed) return;
      const bytes = encodeMessage(message);
      if (isDatagramClass(message.type) && bytes.byteLength <= MAX_DATAGRAM_PAYLOAD) {
        // Replaceable: when the datagram queue is full, this one is simply lost.
        if ((datagramWriter.desiredSize ?? 1) > 0) {
          datagramWriter.write(bytes).catch(() => undefined);
        }
        return;
      }
      if ((controlWriter.desiredSize ?? 0) < -MAX_BUFFERED_BYTES) {
        finish('the relay is not reading the control stream');
        return;
      }
      controlWriter.write(frame(bytes)).catch((e: Error) => finish(`write failed: ${e.message}`));
    },
    close(reason = 'closed by the client'): void {
      finish(reason);
    },
  };
}

/** Opens the WebSocket fallback (MessagePack in binary messages). */
export function openWebSocket(
  url: string,
  timeoutMs: number,
  handlers: TransportHandlers,
): Promise<Transport> {
  return new Promise<Transport>((resolve, reject) => {
    let ws: WebSocket;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      reject(e);
      return;
    }
    ws.binaryType = 'arraybuffer';
    let opened = false;
    let closed = false;
    const finish = (reason: string): void => {
      if (closed) return;
      closed = true;
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
      if (opened) handlers.onClose(reason);
      else reject(new Error(reason));
    };
    const timer = setTimeout(() => finish(`WebSocket did not open within ${timeoutMs} ms`), timeoutMs);
    ws.onopen = () => {
      clearTimeout(timer);
      opened = true;
      resolve({
        kind: 'websocket',
        send(message: ClientMessage): void {
          if (closed) return;
          if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
            if (isDatagramClass(message.type)) return;
            finish('the relay is not reading the WebSocket');
            return;
          }
          ws.send(encodeMessage(message));
        },
        close(reason = 'closed by the client'): void {
          finish(reason);
        },
      });
    };
    ws.onmessage = (event: MessageEvent) => {
      const data = event.data;
      let message: RelayMessage | undefined;
      try {
        message = decodeMessage(typeof data === 'string' ? data : new Uint8Array(data as ArrayBuffer));
      } catch (e) {
        if (e instanceof DecodeError) handlers.onDropped?.(e.message);
        return;
      }
      if (message && !closed) handlers.onMessage(message);
    };
    ws.onerror = () => {
      clearTimeout(timer);
      finish('WebSocket error');
    };
    ws.onclose = (event: CloseEvent) => {
      clearTimeout(timer);
      finish(`WebSocket closed (${event.code}${event.reason ? `: ${event.reason}` : ''})`);
    };
  });
}
