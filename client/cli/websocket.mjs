// The WebSocket of the command-line client: RFC 6455's client side over
// node:http and node:https, with the interface of the browser's WebSocket
// that zeq-e2e-client.js uses (Node.js has a global WebSocket only from
// version 22). It knows nothing of the protocol of mod_zeq_e2e: the library
// seals and opens the messages; this carries frames and tells the wire
// recorder (wire.mjs) what it sent and received.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createHash, randomBytes, randomFillSync } from 'node:crypto';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;
const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;
/** The largest message this client takes (the module's own limit is ZeqE2EMaxMessage, 1 MiB by default). */
const MAX_MESSAGE = 256 * 1024 * 1024;
/** How long to wait for the server to end the connection after the closing handshake. */
const CLOSE_WAIT_MS = 3000;
/** At most this much of a refused opening's answer is kept (module errors are short JSON). */
const REFUSAL_BODY_MAX = 4096;

const utf8 = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/** The close event: an Event with code, reason and wasClean (Node.js has no CloseEvent before 23). */
const closeEvent = (code, reason, wasClean) => Object.assign(new Event('close'), { code, reason, wasClean });

/** One frame from the client: FIN set, masked with a fresh key (RFC 6455 5.3). */
function clientFrame(opcode, payload) {
  const n = payload.length;
  const lengthBytes = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + lengthBytes + 4);
  head[0] = 0x80 | opcode;
  if (lengthBytes === 0) {
    head[1] = 0x80 | n;
  } else if (lengthBytes === 2) {
    head[1] = 0x80 | 126;
    head.writeUInt16BE(n, 2);
  } else {
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  const mask = head.subarray(2 + lengthBytes);
  randomFillSync(mask);
  const body = Buffer.from(payload);
  for (let i = 0; i < n; i++) body[i] ^= mask[i & 3];
  return Buffer.concat([head, body]);
}

/**
 * A WebSocket class for these options: `headers` (sent with every opening),
 * `wire` (told of openings, answers and frames: see wire.mjs).
 */
export function webSocketClass({ headers = [], wire = null } = {}) {
  return class NodeWebSocket extends EventTarget {
    static CONNECTING = CONNECTING;
    static OPEN = OPEN;
    static CLOSING = CLOSING;
    static CLOSED = CLOSED;

    #readyState = CONNECTING;
    #request = null;
    #socket = null;
    #buffer = Buffer.alloc(0);
    #fragments = null;
    #fragmentOpcode = 0;
    #fragmentSize = 0;
    #closeSent = false;
    #closeReceived = null;
    #closeTimer = null;
    #ended = false;
    #record = null;
    protocol = '';
    extensions = '';
    binaryType = 'blob';

    constructor(url, protocols) {
      super();
      const u = new URL(String(url));
      if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
        throw new DOMException(`The URL's scheme must be 'ws' or 'wss', not '${u.protocol}'.`, 'SyntaxError');
      }
      this.url = u.href;
      const offered = protocols === undefined ? [] : typeof protocols === 'string' ? [protocols] : [...protocols];
      const key = randomBytes(16).toString('base64');
      const requestHeaders = {};
      for (const [name, value] of headers) requestHeaders[name] = value;
      Object.assign(requestHeaders, {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Key': key,
        'Sec-WebSocket-Version': '13',
      });
      if (offered.length) requestHeaders['Sec-WebSocket-Protocol'] = offered.join(', ');
      this.#record = wire ? wire.webSocketOpening(u.href, requestHeaders) : null;
      const send = u.protocol === 'wss:' ? httpsRequest : httpRequest;
      const req = send({
        host: u.hostname.replace(/^\[|\]$/g, ''),
        port: u.port || (u.protocol === 'wss:' ? 443 : 80),
        path: u.pathname + u.search,
        method: 'GET',
        headers: requestHeaders,
        servername: u.protocol === 'wss:' ? u.hostname : undefined,
      });
      this.#request = req;
      req.on('upgrade', (res, socket, head) => this.#upgraded(res, socket, head, key, offered));
      req.on('response', (res) => this.#refused(res));
      req.on('error', (e) => {
        if (this.#record) this.#record.failed(e);
        this.#fail(null, e);
      });
      req.end();
    }

    get readyState() { return this.#readyState; }
    get bufferedAmount() { return this.#socket ? this.#socket.writableLength : 0; }

    /** The answer to the opening was not 101: error, then close 1006. */
    #refused(res) {
      const chunks = [];
      let size = 0;
      res.on('data', (d) => {
        if (size < REFUSAL_BODY_MAX) chunks.push(d.subarray(0, REFUSAL_BODY_MAX - size));
        size += d.length;
      });
      res.on('end', () => {
        if (this.#record) this.#record.answered(res.statusCode, res.statusMessage, res.rawHeaders, Buffer.concat(chunks));
        this.#fail(null);
      });
      res.on('error', () => this.#fail(null));
    }

    #upgraded(res, socket, head, key, offered) {
      if (this.#record) this.#record.answered(res.statusCode, res.statusMessage, res.rawHeaders, null);
      const expected = createHash('sha1').update(key + GUID).digest('base64');
      const protocol = res.headers['sec-websocket-protocol'] || '';
      let why = null;
      if (res.statusCode !== 101) why = `the opening was answered ${res.statusCode}`;
      else if ((res.headers.upgrade || '').toLowerCase() !== 'websocket') why = 'the answer has no Upgrade: websocket';
      else if (res.headers['sec-websocket-accept'] !== expected) why = 'Sec-WebSocket-Accept does not match the key';
      else if (res.headers['sec-websocket-extensions']) why = 'the server chose an extension that was not offered';
      else if (protocol && !offered.includes(protocol)) why = `the server chose the subprotocol ${protocol}, not offered`;
      this.#socket = socket;
      socket.on('data', (d) => this.#data(d));
      socket.on('close', () => this.#socketClosed());
      socket.on('error', () => { /* 'close' follows */ });
      if (why) {
        this.#fail(null, new Error(why));
        return;
      }
      socket.setNoDelay(true);
      this.protocol = protocol;
      if (this.#readyState === CONNECTING) {
        this.#readyState = OPEN;
        this.dispatchEvent(new Event('open'));
      }
      if (head && head.length) this.#data(head);
    }

    #data(chunk) {
      this.#buffer = this.#buffer.length ? Buffer.concat([this.#buffer, chunk]) : chunk;
      while (!this.#ended) {
        const frame = this.#nextFrame();
        if (!frame) break;
        this.#frame(frame);
      }
    }

    /** The next whole frame of the buffer, or null; fails the socket for a frame a server must not send. */
    #nextFrame() {
      const b = this.#buffer;
      if (b.length < 2) return null;
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      if (b[0] & 0x70) return this.#protocolError('a frame with reserved bits (no extension was agreed)');
      if (b[1] & 0x80) return this.#protocolError('a masked frame from the server');
      let length = b[1] & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (b.length < 4) return null;
        length = b.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (b.length < 10) return null;
        const big = b.readBigUInt64BE(2);
        if (big > BigInt(MAX_MESSAGE)) return this.#fail(1009, new Error('a frame larger than this client takes'));
        length = Number(big);
        offset = 10;
      }
      if (opcode >= 0x8 && (!fin || length > 125)) return this.#protocolError('a fragmented or long control frame');
      if (b.length < offset + length) return null;
      const payload = b.subarray(offset, offset + length);
      this.#buffer = b.subarray(offset + length);
      return { fin, opcode, payload };
    }

    #protocolError(why) {
      this.#fail(1002, new Error(why));
      return null;
    }

    #frame({ fin, opcode, payload }) {
      if (opcode === OP_PING) {
        if (!this.#closeSent) this.#write(clientFrame(OP_PONG, payload));
        return;
      }
      if (opcode === OP_PONG) return;
      if (opcode === OP_CLOSE) {
        this.#closing(payload);
        return;
      }
      if (opcode === OP_CONTINUATION) {
        if (!this.#fragments) return this.#protocolError('a continuation frame without a message');
      } else if (opcode === OP_TEXT || opcode === OP_BINARY) {
        if (this.#fragments) return this.#protocolError('a new message before the last one ended');
        this.#fragments = [];
        this.#fragmentOpcode = opcode;
        this.#fragmentSize = 0;
      } else {
        return this.#protocolError(`a frame of the unknown opcode ${opcode}`);
      }
      this.#fragmentSize += payload.length;
      if (this.#fragmentSize > MAX_MESSAGE) return this.#fail(1009, new Error('a message larger than this client takes'));
      this.#fragments.push(Buffer.from(payload));
      if (!fin) return undefined;
      const data = Buffer.concat(this.#fragments);
      const type = this.#fragmentOpcode;
      this.#fragments = null;
      if (this.#record) this.#record.frame('in', type === OP_TEXT ? 'text' : 'binary', data);
      if (this.#readyState !== OPEN) return undefined; // closing: dropped, as by WebSocket
      let value;
      if (type === OP_TEXT) {
        try {
          value = utf8.decode(data);
        } catch {
          return this.#fail(1007, new Error('a text message that is not UTF-8'));
        }
      } else {
        const bytes = data.buffer.slice(data.byteOffset, data.byteOffset + data.length);
        value = this.binaryType === 'arraybuffer' ? bytes : new Blob([bytes]);
      }
      this.dispatchEvent(new MessageEvent('message', { data: value, origin: new URL(this.url).origin }));
      return undefined;
    }

    /** The server's close frame: answered with one (if none was sent), then the server ends the connection. */
    #closing(payload) {
      let code = 1005;
      let reason = '';
      if (payload.length === 1) return this.#protocolError('a close frame of one byte');
      if (payload.length >= 2) {
        code = payload.readUInt16BE(0);
        try {
          reason = utf8.decode(payload.subarray(2));
        } catch {
          return this.#fail(1007, new Error('a close reason that is not UTF-8'));
        }
      }
      if (this.#record) this.#record.closeFrame('in', code, reason);
      this.#closeReceived = { code, reason };
      if (this.#readyState === OPEN) this.#readyState = CLOSING;
      if (!this.#closeSent) this.#sendClose(code === 1005 ? null : code, '');
      this.#ended = true;
      // The server ends the TCP connection first (RFC 6455 7.1.1); end ours if it waits.
      this.#socket.end();
      if (this.#closeTimer) clearTimeout(this.#closeTimer);
      this.#closeTimer = setTimeout(() => this.#socket.destroy(), CLOSE_WAIT_MS);
      this.#closeTimer.unref();
      return undefined;
    }

    #sendClose(code, reason) {
      this.#closeSent = true;
      let payload = Buffer.alloc(0);
      if (code !== null && code !== undefined) {
        const r = Buffer.from(encoder.encode(reason || ''));
        payload = Buffer.alloc(2 + r.length);
        payload.writeUInt16BE(code, 0);
        r.copy(payload, 2);
      }
      if (this.#record) this.#record.closeFrame('out', code === null || code === undefined ? 1005 : code, reason || '');
      this.#write(clientFrame(OP_CLOSE, payload));
    }

    #write(bytes) {
      if (this.#socket && !this.#socket.destroyed && this.#socket.writable) this.#socket.write(bytes);
    }

    #socketClosed() {
      if (this.#closeTimer) clearTimeout(this.#closeTimer);
      this.#ended = true;
      if (this.#readyState === CLOSED) return;
      this.#readyState = CLOSED;
      const clean = this.#closeSent && this.#closeReceived !== null;
      const { code, reason } = this.#closeReceived || { code: 1006, reason: '' };
      this.dispatchEvent(closeEvent(clean ? code : 1006, clean ? reason : '', clean));
    }

    /**
     * Fails the connection (RFC 6455 7.1.7): a close frame with `code` when
     * one may still be sent, the connection dropped, error, then close 1006.
     */
    #fail(code, error) {
      if (this.#readyState === CLOSED) return null;
      if (this.#record && error) this.#record.note(`the WebSocket failed: ${error.message}`);
      if (code !== null && this.#socket && !this.#closeSent) this.#sendClose(code, '');
      this.#ended = true;
      if (this.#request && !this.#socket) this.#request.destroy();
      if (this.#socket) this.#socket.destroy();
      this.#readyState = CLOSED;
      const ev = new Event('error');
      if (error) Object.defineProperty(ev, 'error', { value: error, enumerable: true });
      this.dispatchEvent(ev);
      this.dispatchEvent(closeEvent(1006, '', false));
      return null;
    }

    send(data) {
      if (this.#readyState === CONNECTING) {
        throw new DOMException("Failed to execute 'send' on 'WebSocket': Still in CONNECTING state.", 'InvalidStateError');
      }
      if (this.#readyState !== OPEN) return;
      let opcode = OP_BINARY;
      let bytes;
      if (typeof data === 'string') {
        opcode = OP_TEXT;
        bytes = encoder.encode(data);
      } else if (data instanceof ArrayBuffer) {
        bytes = new Uint8Array(data);
      } else if (ArrayBuffer.isView(data)) {
        bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      } else {
        throw new TypeError('this WebSocket sends strings, ArrayBuffers and typed arrays');
      }
      if (this.#record) this.#record.frame('out', opcode === OP_TEXT ? 'text' : 'binary', bytes);
      this.#write(clientFrame(opcode, bytes));
    }

    close(code, reason) {
      if (code !== undefined && code !== 1000 && !(code >= 3000 && code <= 4999)) {
        throw new DOMException(`The close code must be either 1000, or between 3000 and 4999. ${code} is neither.`,
          'InvalidAccessError');
      }
      if (this.#readyState >= CLOSING) return;
      if (this.#readyState === CONNECTING) {
        this.#fail(null, new Error('closed before the opening completed'));
        return;
      }
      this.#readyState = CLOSING;
      // A reason without a code is sent with 1000, as by WebSocket.
      this.#sendClose(code === undefined ? (reason === undefined ? null : 1000) : code, reason);
      // The server answers with its close frame and ends the connection.
      this.#closeTimer = setTimeout(() => this.#socket.destroy(), CLOSE_WAIT_MS);
      this.#closeTimer.unref();
    }
  };
}
