// A WebSocket-shaped wrapper around a plain TCP socket, so that @stomp/stompjs's `Client` (which
// only knows WebSockets) can speak STOMP over TCP with the same code as over `ws`: the stompjs
// guide's "TCP wrapper" approach. Only what stompjs uses is here: readyState, the on* handlers,
// send(), close() and terminate(). TCP has no message boundaries, so onmessage gets whatever
// chunk a read returned; stompjs's parser is a byte-at-a-time state machine and handles frames
// split across chunks or several frames in one chunk.

import net from 'node:net';

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

export class TcpWebSocket {
  static CONNECTING = CONNECTING;
  static OPEN = OPEN;
  static CLOSING = CLOSING;
  static CLOSED = CLOSED;

  /** Connects to `host:port`; handlers set before the connect completes are honoured. */
  constructor(host, port) {
    this.url = `tcp://${host}:${port}`;
    this.protocol = '';
    this.binaryType = 'arraybuffer';
    this.readyState = CONNECTING;
    this.onopen = null;
    this.onmessage = null;
    this.onerror = null;
    this.onclose = null;
    this._socket = net.connect({ host, port });
    // `ws` disables Nagle on its sockets too; without this the TCP row would batch small
    // frames that the WebSocket rows send at once, and the rows would not be the same load.
    this._socket.setNoDelay(true);
    this._socket.on('connect', () => {
      this.readyState = OPEN;
      this.onopen?.({ type: 'open' });
    });
    this._socket.on('data', (chunk) => {
      // binaryType 'arraybuffer' promises an ArrayBuffer; a Buffer may be a view into a larger
      // pooled one, so copy exactly its bytes.
      const data = chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.length);
      this.onmessage?.({ type: 'message', data });
    });
    this._socket.on('error', (error) => {
      this.onerror?.({ type: 'error', error, message: error.message });
    });
    this._socket.on('close', (hadError) => {
      this.readyState = CLOSED;
      this.onclose?.({ type: 'close', code: hadError ? 1006 : 1000, reason: '', wasClean: !hadError });
    });
  }

  /** Writes a frame (string as UTF-8, or bytes) as it is; TCP adds no framing. */
  send(data) {
    if (this.readyState !== OPEN) throw new Error(`send on a ${this.url} socket that is not open`);
    if (typeof data === 'string') {
      this._socket.write(data, 'utf8');
    } else if (data instanceof ArrayBuffer) {
      this._socket.write(new Uint8Array(data));
    } else {
      this._socket.write(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
  }

  /** Ends the connection after what was written is sent. */
  close() {
    if (this.readyState === CLOSING || this.readyState === CLOSED) return;
    this.readyState = CLOSING;
    this._socket.end();
  }

  /** Drops the connection at once. */
  terminate() {
    this.readyState = CLOSING;
    this._socket.destroy();
  }
}
