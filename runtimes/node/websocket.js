'use strict';
// WebSockets in a function (docs/protocol.md, "Protocol switches").
//
// The gateway passes a WebSocket handshake on as a REQUEST with the UPGRADE
// flag. Once the function accepts it, the stream carries the connection's
// bytes both ways: WebSocket frames exactly as on the wire. Two styles:
//
// - Node style: the runtime emits 'upgrade' with (req, socket, head) as
//   http.Server does, and `socket` is an UpgradeSocket: what the code writes
//   to it (the 101 head, then frames) goes to the client, what the client
//   sends arrives as its data. `ws`'s handleUpgrade works on it unchanged.
// - Fetch style: upgradeWebSocket(request) returns { socket, response };
//   the handler returns `response` (status 101) and talks through `socket`,
//   a server-side WebSocket (send, close, and open/message/close/error
//   events) whose frames this file encodes and decodes.
//
// A stream link (made by instance.js from a protocol stream) is:
//   sendHead(status, headerPairs)  the RESPONSE head, without END
//   write(buf) -> Promise or undefined  DATA, under the stream's window
//                                  (undefined: sent at once)
//   end()                          DATA with END: our side is done
//   fail(error)                    ERROR (before the head) or END
//   onData = (chunk, end) => ...   set by the socket: bytes from the client
//   consumed()                     grant back what was taken
//   onCancel = () => ...           set by the socket: the gateway gave up

const crypto = require('node:crypto');
const { Duplex } = require('node:stream');

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const EMPTY = Buffer.alloc(0);

function acceptKey(key) {
  return crypto.createHash('sha1').update(key + GUID).digest('base64');
}

// ---- Node style --------------------------------------------------------------

// Parses the HTTP response head the code writes first (as ws does:
// "HTTP/1.1 101 Switching Protocols\r\n...\r\n\r\n"); every byte after it
// goes to the client as it is.
class UpgradeSocket extends Duplex {
  constructor(link, parseHead) {
    super({ allowHalfOpen: true });
    this.link = link;
    this.parseHead = parseHead;
    this.headBuf = EMPTY;
    this.headSent = false;
    this.remoteAddress = '127.0.0.1';
    this.remotePort = 0;
    this.encrypted = false;
    link.onData = (chunk, end) => {
      if (chunk.length && this.push(chunk)) link.consumed();
      if (end) this.push(null);
    };
    link.onCancel = () => this.destroy();
  }
  setTimeout() { return this; }
  setNoDelay() { return this; }
  setKeepAlive() { return this; }
  ref() { return this; }
  unref() { return this; }
  _read() { this.link.consumed(); }
  _write(chunk, enc, cb) {
    let data = typeof chunk === 'string' ? Buffer.from(chunk, enc) : chunk;
    if (!this.headSent) {
      this.headBuf = this.headBuf.length ? Buffer.concat([this.headBuf, data]) : data;
      const end = this.headBuf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (this.headBuf.length > 64 << 10) return cb(new Error('the response head written to the socket is over 64 KiB'));
        return cb();
      }
      const head = this.parseHead(this.headBuf.subarray(0, end).toString('latin1'));
      data = this.headBuf.subarray(end + 4);
      this.headBuf = EMPTY;
      this.headSent = true;
      this.link.sendHead(head.status, head.headers);
    }
    if (!data.length) return cb();
    const pending = this.link.write(data);
    if (!pending) return cb();
    pending.then(() => cb(), cb);
  }
  // What the code wrote while corked (ws writes a frame's header and its
  // payload so) goes out as one DATA frame.
  _writev(chunks, cb) {
    if (chunks.length === 1) return this._write(chunks[0].chunk, chunks[0].encoding, cb);
    const bufs = chunks.map(({ chunk, encoding }) => (typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk));
    this._write(Buffer.concat(bufs), 'buffer', cb);
  }
  _final(cb) {
    if (!this.headSent) this.link.fail(new Error('the upgrade handler ended the socket without answering'));
    else this.link.end();
    cb();
    // The stream is over both ways: nothing more arrives.
    this.push(null);
  }
  _destroy(err, cb) {
    if (!this.headSent) this.link.fail(err || new Error('the upgrade handler destroyed the socket without answering'));
    else this.link.end();
    cb(err);
  }
}

// ---- Fetch style -------------------------------------------------------------

const CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3;
const upgrades = new WeakMap();  // response -> { socket, headers }

function eventOf(type, props) {
  const e = new Event(type);
  for (const [k, v] of Object.entries(props)) Object.defineProperty(e, k, { value: v, enumerable: true });
  return e;
}

// One WebSocket frame as the server sends it (never masked).
function encodeFrame(opcode, payload) {
  const n = payload.length;
  const head = Buffer.allocUnsafe(n < 126 ? 2 : n < 65536 ? 4 : 10);
  head[0] = 0x80 | opcode;
  if (n < 126) {
    head[1] = n;
  } else if (n < 65536) {
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, payload]);
}

function closePayload(code, reason) {
  if (code === undefined) return EMPTY;
  const r = Buffer.from(String(reason || ''));
  const p = Buffer.allocUnsafe(2 + r.length);
  p.writeUInt16BE(code, 0);
  r.copy(p, 2);
  return p;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

class ServerWebSocket extends EventTarget {
  constructor(url, protocol) {
    super();
    this.url = url;
    this.protocol = protocol;
    this.extensions = '';
    this.readyState = CONNECTING;
    this.binaryType = 'arraybuffer';
    this.bufferedAmount = 0;
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
    this._link = null;
    this._in = [];  // the client's bytes not yet taken as frames
    this._inLen = 0;
    this._parts = [];
    this._partsOpcode = 0;
    this._closeTimer = null;
  }
  get CONNECTING() { return CONNECTING; }
  get OPEN() { return OPEN; }
  get CLOSING() { return CLOSING; }
  get CLOSED() { return CLOSED; }

  dispatchEvent(e) {
    const h = this[`on${e.type}`];
    if (typeof h === 'function') {
      try { h.call(this, e); } catch (err) { process.nextTick(() => { throw err; }); }
    }
    return super.dispatchEvent(e);
  }

  send(data) {
    if (this.readyState === CONNECTING) throw new DOMException('the WebSocket is not open yet', 'InvalidStateError');
    if (this.readyState !== OPEN) return;
    let opcode = 2;
    let bytes;
    if (typeof data === 'string') {
      opcode = 1;
      bytes = Buffer.from(data);
    } else if (data instanceof ArrayBuffer) {
      bytes = Buffer.from(data);
    } else if (ArrayBuffer.isView(data)) {
      bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    } else {
      opcode = 1;
      bytes = Buffer.from(String(data));
    }
    this._write(encodeFrame(opcode, bytes));
  }

  close(code, reason) {
    if (code !== undefined && code !== 1000 && (code < 3000 || code > 4999)) {
      throw new DOMException(`close code ${code} is not 1000 or 3000-4999`, 'InvalidAccessError');
    }
    if (reason !== undefined && Buffer.byteLength(String(reason)) > 123) {
      throw new DOMException('the close reason is longer than 123 bytes', 'SyntaxError');
    }
    if (this.readyState === CLOSING || this.readyState === CLOSED) return;
    if (this.readyState === CONNECTING) {
      this._finish(1006, '', false);
      return;
    }
    this.readyState = CLOSING;
    this._write(encodeFrame(8, closePayload(code, reason)));
    // The client answers with its close frame; one that does not is cut off.
    this._closeTimer = setTimeout(() => this._finish(1006, '', false), 5000);
    this._closeTimer.unref();
  }

  _write(frame) {
    const pending = this._link.write(frame);
    if (!pending) return;
    this.bufferedAmount += frame.length;
    pending.then(() => { this.bufferedAmount -= frame.length; }, () => {});
  }

  _attach(link) {
    this._link = link;
    link.onData = (chunk, end) => {
      if (chunk.length) this._receive(chunk);
      link.consumed();
      if (end && this.readyState !== CLOSED) this._finish(1006, '', false);
    };
    link.onCancel = () => this._finish(1006, '', false, /*cancelled=*/true);
    this.readyState = OPEN;
    queueMicrotask(() => this.dispatchEvent(new Event('open')));
  }

  // The client's bytes are kept as a list of chunks and joined only for a
  // whole frame (joining on every chunk would copy a 16 MiB frame that
  // arrives in 64 KiB pieces some 2 GiB over).
  _receive(chunk) {
    this._in.push(chunk);
    this._inLen += chunk.length;
    while (this.readyState !== CLOSED) {
      if (this._inLen < 2) return;
      const b = this._peek(Math.min(this._inLen, 14));
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      const mask = masked ? off : -1;
      if (masked) off += 4;
      if (this._inLen < off + len) return;
      const frame = this._take(off + len);
      const payload = Buffer.from(frame.subarray(off));
      if (masked) for (let i = 0; i < payload.length; i++) payload[i] ^= frame[mask + (i & 3)];
      this._frame(fin, opcode, payload);
    }
  }

  // The first `n` bytes kept (fewer if fewer are there), without taking them.
  _peek(n) {
    const first = this._in[0];
    if (first.length >= n) return first;
    return Buffer.concat(this._in, Math.min(n, this._inLen));
  }

  // Takes the first `n` bytes kept: one copy at most.
  _take(n) {
    let out;
    if (this._in[0].length >= n) {
      out = this._in[0].subarray(0, n);
    } else {
      out = Buffer.allocUnsafe(n);
      let at = 0;
      for (const c of this._in) {
        const k = Math.min(c.length, n - at);
        c.copy(out, at, 0, k);
        at += k;
        if (at === n) break;
      }
    }
    let left = n;
    while (left > 0) {
      const c = this._in[0];
      if (c.length <= left) {
        this._in.shift();
        left -= c.length;
      } else {
        this._in[0] = c.subarray(left);
        left = 0;
      }
    }
    this._inLen -= n;
    return out;
  }

  _frame(fin, opcode, payload) {
    if (opcode === 9) {  // ping: pong with its payload
      if (this.readyState === OPEN) this._write(encodeFrame(10, payload));
      return;
    }
    if (opcode === 10) return;
    if (opcode === 8) {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      const reason = payload.length > 2 ? payload.subarray(2).toString() : '';
      if (this.readyState === OPEN) this._write(encodeFrame(8, payload.length >= 2 ? payload.subarray(0, 2) : EMPTY));
      this._finish(code, reason, true);
      return;
    }
    if (opcode !== 0) {
      this._parts = [];
      this._partsOpcode = opcode;
    }
    this._parts.push(payload);
    if (!fin) return;
    const whole = this._parts.length === 1 ? this._parts[0] : Buffer.concat(this._parts);
    this._parts = [];
    let data;
    if (this._partsOpcode === 1) {
      try {
        data = utf8.decode(whole);
      } catch {
        this._write(encodeFrame(8, closePayload(1007, 'a text message that is not UTF-8')));
        this._finish(1007, 'a text message that is not UTF-8', false);
        return;
      }
    } else if (this.binaryType === 'nodebuffer') {
      data = whole;
    } else if (this.binaryType === 'blob') {
      data = new Blob([whole]);
    } else {
      data = whole.buffer.slice(whole.byteOffset, whole.byteOffset + whole.byteLength);
    }
    if (this.readyState === OPEN) this.dispatchEvent(new MessageEvent('message', { data }));
  }

  _finish(code, reason, wasClean, cancelled) {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    if (this._closeTimer) clearTimeout(this._closeTimer);
    if (this._link && !cancelled) this._link.end();
    if (!wasClean && code === 1006) this.dispatchEvent(new Event('error'));
    this.dispatchEvent(eventOf('close', { code, reason, wasClean }));
  }
}

// The fetch-style handshake: checks that `request` asks for a WebSocket
// and returns the socket and the 101 response the handler must return.
// `options.protocol`: the subprotocol chosen among those the client offered.
function upgradeWebSocket(request, options = {}) {
  const h = request.headers;
  if (!/\bwebsocket\b/i.test(h.get('upgrade') || '')) {
    throw new TypeError('upgradeWebSocket: the request does not ask for a WebSocket (no "Upgrade: websocket")');
  }
  const key = h.get('sec-websocket-key');
  if (!key || h.get('sec-websocket-version') !== '13') {
    throw new TypeError('upgradeWebSocket: the request lacks Sec-WebSocket-Key or is not version 13');
  }
  const offered = (h.get('sec-websocket-protocol') || '').split(',').map((s) => s.trim()).filter(Boolean);
  const protocol = options.protocol || '';
  if (protocol && !offered.includes(protocol)) {
    throw new TypeError(`upgradeWebSocket: the client did not offer the subprotocol "${protocol}"`);
  }
  const socket = new ServerWebSocket(request.url, protocol);
  const response = new Response(null, { status: 200, headers: options.headers });
  Object.defineProperty(response, 'status', { value: 101 });
  const headers = [['sec-websocket-accept', acceptKey(key)]];
  if (protocol) headers.push(['sec-websocket-protocol', protocol]);
  upgrades.set(response, { socket, headers });
  return { socket, response };
}

// The socket a response from upgradeWebSocket() is for, and its headers.
function upgradeOf(response) {
  return upgrades.get(response);
}

module.exports = { UpgradeSocket, upgradeWebSocket, upgradeOf };
