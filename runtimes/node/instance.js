'use strict';
// The JavaScript side of the nubo instance protocol (docs/protocol.md).
//
// Started as a generic "stem": it connects on the inherited descriptor
// NUBO_FD, says HELLO, and waits. SPECIALIZE names a deployment's folder and
// entry; the module is loaded once, then REQUEST frames are served
// concurrently, each on its own stream id, with bodies streamed both ways
// under credit-based flow control (WINDOW frames).
//
// Handler styles (the entry's default export, CommonJS or ESM):
//   { fetch(request, env, ctx) }  -> web Request/Response
//   (req, res) => ...             -> Node's IncomingMessage/ServerResponse

const net = require('node:net');
const http = require('node:http');
const { Duplex } = require('node:stream');
const { pathToFileURL } = require('node:url');
const path = require('node:path');
const os = require('node:os');
const { AsyncLocalStorage } = require('node:async_hooks');
const { Response: FastResponse, wholeBody, lazyHead, lazyStatus, lazyType } = require('./fast_response.js');
const { lazyRequest, abortRequest } = require('./fast_request.js');
const { UpgradeSocket, upgradeWebSocket, upgradeOf } = require('./websocket.js');

// Functions build responses with the runtime's Response (same API, no stream
// for a body made of a string or bytes).
globalThis.Response = FastResponse;

const T = { HELLO: 1, SPECIALIZE: 2, READY: 3, REQUEST: 10, DATA: 11, RESPONSE: 20, CANCEL: 30, ERROR: 31,
            WINDOW: 40, WAIT_UNTIL: 50 };
const END = 1;
const UPGRADE = 2;  // on REQUEST: a WebSocket handshake
const INITIAL_WINDOW = 1 << 20;
const MAX_DATA = 256 << 10;
const EMPTY = Buffer.alloc(0);

const fd = Number(process.env.NUBO_FD || 3);
delete process.env.NUBO_FD;
const sock = new net.Socket({ fd, readable: true, writable: true });
sock.setNoDelay && sock.setNoDelay(true);

// ---- framing ----------------------------------------------------------------

let outQueue = [];
let outScheduled = false;
let warming = true;  // until HELLO: frames of the warm-up's own requests go nowhere
function send(buf) {
  if (warming) return;
  outQueue.push(buf);
  if (!outScheduled) {
    outScheduled = true;
    process.nextTick(flushOut);
  }
}
function flushOut() {
  outScheduled = false;
  if (outQueue.length === 0) return;
  const bufs = outQueue;
  outQueue = [];
  sock.write(bufs.length === 1 ? bufs[0] : Buffer.concat(bufs));
}

function frame(type, flags, stream, payload) {
  const p = payload || EMPTY;
  const b = Buffer.allocUnsafe(10 + p.length);
  b.writeUInt32BE(p.length, 0);
  b[4] = type;
  b[5] = flags;
  b.writeUInt32BE(stream, 6);
  p.copy(b, 10);
  return b;
}

// REQUEST/RESPONSE frames carry a binary head (docs/protocol.md).
function headFrame(type, flags, stream, head, body) {
  const bl = body ? body.length : 0;
  const b = Buffer.allocUnsafe(14 + head.length + bl);
  b.writeUInt32BE(4 + head.length + bl, 0);
  b[4] = type;
  b[5] = flags;
  b.writeUInt32BE(stream, 6);
  b.writeUInt32BE(head.length, 10);
  head.copy(b, 14);
  if (bl) body.copy(b, 14 + head.length);
  return b;
}

// Response head: u16 status, u16 count, count x (str16 name, str32 value).
// Header names and values are byte strings (latin1), as in Node's http.
function responseHead(status, pairs) {
  let size = 4;
  for (const [k, v] of pairs) size += 6 + k.length + v.length;
  const b = Buffer.allocUnsafe(size);
  b.writeUInt16BE(status, 0);
  b.writeUInt16BE(pairs.length, 2);
  let o = 4;
  for (const [k, v] of pairs) {
    b.writeUInt16BE(k.length, o);
    o = 2 + o + b.write(k, o + 2, 'latin1');
    b.writeUInt32BE(v.length, o);
    o = 4 + o + b.write(v, o + 4, 'latin1');
  }
  return b;
}

// The encoded head of a response with only a status and a content type
// (or none), made once for each pair seen.
const simpleHeads = new Map();
function simpleHead(status, type) {
  const key = type === null ? status : `${status} ${type}`;
  let h = simpleHeads.get(key);
  if (h === undefined) {
    h = responseHead(status, type === null ? [] : [['content-type', type]]);
    if (simpleHeads.size < 64) simpleHeads.set(key, h);
  }
  return h;
}

// Request head: str16 method, str16 path, str16 url, str16 id, u16 count, pairs.
// The header pairs are decoded only when asked for (requestHeaders()).
function parseRequestHead(b, o, end) {
  const s16 = () => {
    const n = b.readUInt16BE(o);
    const v = b.latin1Slice(o + 2, o + 2 + n);
    o += 2 + n;
    return v;
  };
  const m = s16();
  const p = s16();
  const u = s16();
  const id = s16();
  const count = b.readUInt16BE(o);
  if (o + 2 > end) throw new Error('request head overruns its frame');
  return { m, p, u, id, b, o: o + 2, end, count };
}

// The header pairs of a parsed head: [lowercased name, value].
function requestHeaders(head) {
  const { b, end, count } = head;
  let o = head.o;
  const h = new Array(count);
  for (let i = 0; i < count; i++) {
    const kn = b.readUInt16BE(o);
    const k = b.latin1Slice(o + 2, o + 2 + kn).toLowerCase();
    o += 2 + kn;
    const n = b.readUInt32BE(o);
    h[i] = [k, b.latin1Slice(o + 4, o + 4 + n)];
    o += 4 + n;
  }
  if (o > end) throw new Error('request head overruns its frame');
  return h;
}

function sendJson(type, stream, obj) { send(frame(type, 0, stream, Buffer.from(JSON.stringify(obj)))); }
function grant(stream, n) {
  const p = Buffer.allocUnsafe(4);
  p.writeUInt32BE(n, 0);
  send(frame(T.WINDOW, 0, stream, p));
}

// Incoming bytes: kept as a list of chunks, joined only for a whole frame.
let chunks = [];
let have = 0;
function take(n) {
  if (chunks[0].length >= n) {
    const c = chunks[0];
    if (c.length === n) chunks.shift(); else chunks[0] = c.subarray(n);
    have -= n;
    return c.subarray(0, n);
  }
  const out = Buffer.allocUnsafe(n);
  let off = 0;
  while (off < n) {
    const c = chunks[0];
    const k = Math.min(c.length, n - off);
    c.copy(out, off, 0, k);
    off += k;
    if (k === c.length) chunks.shift(); else chunks[0] = c.subarray(k);
  }
  have -= n;
  return out;
}
function peekHeader() {
  if (chunks[0].length >= 10) return chunks[0];
  const saved = take(10);
  chunks.unshift(saved);
  have += 10;
  return saved;
}
sock.on('data', (c) => {
  chunks.push(c);
  have += c.length;
  while (have >= 10) {
    const h = peekHeader();
    const len = h.readUInt32BE(0);
    if (have < 10 + len) return;
    const f = take(10 + len);
    try {
      onFrame(f[4], f[5], f.readUInt32BE(6), f.subarray(10));
    } catch (e) {
      process.stderr.write(`nubo instance: ${e && e.stack || e}\n`);
    }
  }
});
// The gateway closing the socket is the signal to go.
sock.on('end', () => process.exit(0));
sock.on('error', () => process.exit(0));

// ---- logs -------------------------------------------------------------------

// What a handler writes while serving a request is tagged with the request
// id: each line starts with \x1e<id>\x1f, which the gateway strips.
const requestContext = new AsyncLocalStorage();
for (const stream of [process.stdout, process.stderr]) {
  const write = stream.write.bind(stream);
  stream.write = (chunk, encoding, cb) => {
    const id = requestContext.getStore();
    if (id === undefined) return write(chunk, encoding, cb);
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
    return write(text.replace(/^(?=.)/gm, `\x1e${id}\x1f`), typeof encoding === 'function' ? encoding : undefined,
                 typeof encoding === 'function' ? encoding : cb);
  };
}

// ---- specialization ---------------------------------------------------------

let handler = null;
let env = Object.freeze({});
let pendingWaitUntil = 0;

// Loads the entry synchronously with require() (CommonJS, and ES modules
// without top-level await): no file read goes through libuv's thread pool,
// so loading costs CPU time only. Modules with top-level await use import().
async function load(entry) {
  try {
    return require(entry);
  } catch (e) {
    if (e && (e.code === 'ERR_REQUIRE_ASYNC_MODULE' || e.code === 'ERR_REQUIRE_ESM')) {
      return import(pathToFileURL(entry).href);
    }
    throw e;
  }
}

// Code that starts its own server (`app.listen(3000)`, as Express, Koa,
// Fastify and Hono's node server do) gets it: each server it starts
// listens on a unix socket of its own in /tmp instead (this sandbox has no
// TCP ports to give), so its callbacks and 'listening' run as usual, and the
// first HTTP one (http or https: it takes 'request' events) takes the
// requests when the module exports no handler.
const startedServers = [];
let listenSeq = 0;
function captureListen() {
  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function (...args) {
    const [first] = args;
    const port = typeof first === 'object' && first !== null ? first.port ?? first.path : first;
    startedServers.push({ server: this, port });
    const cb = args.find((a) => typeof a === 'function');
    return listen.call(this, path.join(os.tmpdir(), `nubo-listen-${process.pid}-${++listenSeq}.sock`), cb);
  };
}

// The first server started that serves HTTP; an error naming the port and
// the fix when only other kinds were started.
function startedHttpServer(entry) {
  const found = startedServers.find((s) => s.server.listenerCount('request') > 0);
  if (found || startedServers.length === 0) return found && found.server;
  throw new Error(`${entry} listens on port ${startedServers[0].port} with a server that does not take HTTP ` +
                  'requests (net.createServer?), which nubo cannot send requests to: start an http.Server ' +
                  '(app.listen(PORT)), export a (req, res) handler or { fetch }, or deploy the program as ' +
                  `{"runtime": "exec", "entry": "node ${entry}"} serving HTTP on $PORT`);
}

async function specialize(info) {
  const t0 = performance.now();
  try {
    for (const [k, v] of Object.entries(info.env || {})) process.env[k] = String(v);
    env = Object.freeze({ ...(info.env || {}) });
    process.chdir(info.dir);
    const entry = path.resolve(info.dir, info.entry);
    captureListen();
    const mod = await load(entry);
    const exp = mod.default !== undefined ? mod.default : mod;
    if (exp && typeof exp === 'object' && typeof exp.fetch === 'function') {
      handler = { kind: 'fetch', obj: exp };
    } else if (typeof exp === 'function') {
      // WebSockets: `export function upgrade(req, socket, head)` beside it.
      const upgrade = [mod.upgrade, exp.upgrade].find((f) => typeof f === 'function');
      handler = { kind: 'node', fn: exp, upgrade };
    } else if (typeof mod.fetch === 'function') {
      handler = { kind: 'fetch', obj: mod };
    } else if (startedHttpServer(info.entry)) {
      const server = startedHttpServer(info.entry);
      handler = { kind: 'node', fn: (req, res) => server.emit('request', req, res), server };
    } else {
      throw new Error(`${info.entry} must export default { fetch(request, env, ctx) } or a (req, res) function, ` +
                      'or start an HTTP server (app.listen(PORT)), which nubo then sends the requests to');
    }
    sendJson(T.READY, 0, { ok: true, load_ms: performance.now() - t0 });
  } catch (e) {
    // The gateway ends this instance; requests sent ahead are never served.
    backlog = [];
    sendJson(T.READY, 0, { ok: false, error: loadError(e) });
    return;
  }
  finishLoading();
}

// Why the code did not load, as its author needs it: the stack without the
// frames of Node's module loader and of this runtime.
function loadError(e) {
  const text = String(e && e.stack || e);
  const ours = (line) => /^\s+at /.test(line) && (line.includes('node:internal/') || line.includes(__dirname + '/'));
  return text.split('\n').filter((line) => !ours(line)).join('\n');
}

// Serves the requests that arrived while the code loaded.
function finishLoading() {
  // READY goes out now: a request sent ahead may block the event loop.
  flushOut();
  loading = false;
  const waiting = backlog;
  backlog = [];
  for (const f of waiting) {
    try {
      onFrame(...f);
    } catch (e) {
      process.stderr.write(`nubo instance: ${e && e.stack || e}\n`);
    }
  }
}

// ---- streams ----------------------------------------------------------------

// Request-body flow control: bytes received are granted back to the gateway
// once the handler has taken them (when its stream asks for more).
// Grants go back in batches (well under the window, so the sender never
// waits on bytes taken but not yet granted): one WINDOW per 64 KiB, not one
// per small message.
const GRANT_BATCH = 64 << 10;
class BodyCredit {
  constructor(id) { this.id = id; this.pending = 0; this.ended = false; }
  received(n, end) { this.pending += n; if (end) this.ended = true; }
  consumed() {
    if (this.ended || this.pending < GRANT_BATCH) return;
    grant(this.id, this.pending);
    this.pending = 0;
  }
}

const streams = new Map();

class Stream {
  constructor(id) {
    this.id = id;
    this.window = INITIAL_WINDOW;  // bytes we may still send
    this.windowWaiters = [];
    this.cancelled = false;
    this.onBody = null;            // (chunk, end) for the request body
    this.onCancel = null;
    this.started = false;          // response head sent
    this.done = false;
  }
  async sendData(buf, end) {
    let off = 0;
    do {
      while (this.window <= 0 && !this.cancelled) await new Promise((r) => this.windowWaiters.push(r));
      if (this.cancelled) return;
      const n = Math.min(buf.length - off, MAX_DATA, this.window);
      const last = end && off + n >= buf.length;
      send(frame(T.DATA, last ? END : 0, this.id, buf.subarray(off, off + n)));
      this.window -= n;
      off += n;
    } while (off < buf.length);
  }
  finish() {
    if (this.done) return;
    this.done = true;
    streams.delete(this.id);
  }
  fail(e) {
    if (this.done) return;
    if (!this.cancelled) sendJson(T.ERROR, this.id, { message: String(e && e.stack || e) });
    this.finish();
  }
}

// Request frames that arrive while the code loads wait here, in order.
let loading = false;
let backlog = [];

function onFrame(type, flags, id, payload) {
  if (loading && id !== 0) {
    backlog.push([type, flags, id, payload]);
    return;
  }
  switch (type) {
    case T.SPECIALIZE:
      loading = true;
      specialize(JSON.parse(payload.toString()));
      return;
    case T.REQUEST: {
      const headLen = payload.readUInt32BE(0);
      const head = parseRequestHead(payload, 4, 4 + headLen);
      const body = payload.subarray(4 + headLen);
      const st = new Stream(id);
      streams.set(id, st);
      if (!handler) return st.fail(new Error('instance is not specialized'));
      const end = (flags & END) !== 0;
      st.upgrade = (flags & UPGRADE) !== 0;
      requestContext.run(head.id, () => {
        const upgrade = st.upgrade && upgradeTarget();
        if (upgrade) serveUpgrade(st, head, upgrade);
        else if (handler.kind === 'fetch') serveFetch(st, head, body, end);
        else serveNode(st, head, body, end);
      });
      return;
    }
    case T.DATA: {
      const st = streams.get(id);
      if (st && st.onBody) st.onBody(payload, (flags & END) !== 0);
      return;
    }
    case T.WINDOW: {
      const st = streams.get(id);
      if (!st) return;
      st.window += payload.readUInt32BE(0);
      const ws = st.windowWaiters;
      st.windowWaiters = [];
      for (const w of ws) w();
      return;
    }
    case T.CANCEL: {
      const st = streams.get(id);
      if (!st) return;
      st.cancelled = true;
      for (const w of st.windowWaiters) w();
      st.windowWaiters = [];
      if (st.onCancel) st.onCancel();
      st.finish();
      return;
    }
  }
}

// ---- web style: fetch(request, env, ctx) -------------------------------------

// Node's Response keeps the value a body was made from (a string or bytes)
// in its internal state; reading that skips a stream round trip. Anything
// unexpected falls back to reading the stream.
let kState;
function bodySource(res) {
  if (res.bodyUsed) return undefined;
  if (kState === undefined) kState = Object.getOwnPropertySymbols(res).find((s) => s.description === 'state') || null;
  const body = kState && res[kState] && res[kState].body;
  const src = body && body.source;
  if (typeof src === 'string') return Buffer.from(src);
  if (src instanceof Uint8Array) return Buffer.from(src.buffer, src.byteOffset, src.byteLength);
  return undefined;
}

function makeCtx() {
  return {
    waitUntil(p) {
      pendingWaitUntil++;
      reportWaitUntil();
      Promise.resolve(p).catch((e) => process.stderr.write(`waitUntil: ${e && e.stack || e}\n`)).finally(() => {
        pendingWaitUntil--;
        reportWaitUntil();
      });
    },
    passThroughOnException() {},
    upgradeWebSocket,
  };
}
function reportWaitUntil() {
  const p = Buffer.allocUnsafe(4);
  p.writeUInt32BE(pendingWaitUntil, 0);
  send(frame(T.WAIT_UNTIL, 0, 0, p));
}

async function serveFetch(st, head, first, ended) {
  try {
    // request.signal is made on first use (fast_request.js); a cancel
    // before or after that aborts it.
    let request = null;
    let aborted = false;
    const abort = () => { aborted = true; if (request) abortRequest(request); };
    st.onCancel = abort;
    let body = null;
    if (head.m !== 'GET' && head.m !== 'HEAD' && (first.length || !ended)) {
      // The gateway sends a window's worth ahead; what the handler has read
      // is granted back, so an upload flows no faster than it is consumed.
      const credit = new BodyCredit(st.id);
      body = new ReadableStream({
        start(c) {
          if (first.length) c.enqueue(new Uint8Array(first));
          if (ended) return c.close();
          st.onBody = (chunk, end) => {
            credit.received(chunk.length, end);
            if (chunk.length) c.enqueue(new Uint8Array(chunk));
            if (end) c.close();
          };
          st.onCancel = () => { abort(); try { c.error(new Error('request cancelled')); } catch {} };
        },
        pull() { credit.consumed(); },
      }, { highWaterMark: 0 });
    }
    const req = lazyRequest(head.m, head.u, () => requestHeaders(head), body);
    request = req;
    if (aborted) abortRequest(req);
    const res = await handler.obj.fetch(req, env, makeCtx());
    if (st.cancelled) return;
    if (!(res instanceof Response)) throw new Error('fetch() must return a Response');
    const upgraded = upgradeOf(res);
    if (upgraded) {
      if (!st.upgrade) throw new Error('fetch() returned the response of upgradeWebSocket() to a request that is not a WebSocket handshake');
      const headers = [...upgraded.headers];
      res.headers.forEach((v, k) => headers.push([k, v]));
      const link = streamLink(st);
      link.sendHead(101, headers);
      upgraded.socket._attach(link);
      return;
    }
    if (lazyHead(res) !== undefined) {
      // Nobody looked into it: its head is its status and content type.
      const whole = wholeBody(res);
      if (whole !== undefined && whole.length <= st.window) {
        send(headFrame(T.RESPONSE, END, st.id, simpleHead(lazyStatus(res), lazyType(res)),
                       head.m === 'HEAD' ? null : whole));
        return st.finish();
      }
    }
    const headers = [];
    res.headers.forEach((v, k) => { if (k !== 'set-cookie') headers.push([k, v]); });
    for (const c of res.headers.getSetCookie()) headers.push(['set-cookie', c]);
    const rhead = responseHead(res.status, headers);
    // Fast path: a body made from a string or bytes is sent as it is,
    // without going through its stream.
    const whole = wholeBody(res) ?? (!res.body || head.m === 'HEAD' ? EMPTY : bodySource(res));
    if (whole !== undefined && whole.length <= st.window) {
      send(headFrame(T.RESPONSE, END, st.id, rhead, head.m === 'HEAD' ? null : whole));
      return st.finish();
    }
    // A real stream: the head goes now, each chunk as it is produced.
    const reader = res.body.getReader();
    st.onCancel = () => { abort(); reader.cancel().catch(() => {}); };
    send(headFrame(T.RESPONSE, 0, st.id, rhead, null));
    for (let r = await reader.read(); !r.done && !st.cancelled; r = await reader.read()) {
      const v = r.value;
      await st.sendData(Buffer.from(v.buffer, v.byteOffset, v.byteLength), false);
    }
    if (st.cancelled) return reader.cancel().catch(() => {});
    send(frame(T.DATA, END, st.id, EMPTY));
    st.finish();
  } catch (e) {
    st.fail(e);
  }
}

// ---- Node style: (req, res) with Node's own IncomingMessage/ServerResponse ---

// The response side of a request: ServerResponse writes an HTTP/1.1 response
// here; the head is parsed once and the body forwarded as DATA frames.
class ResponseSocket extends Duplex {
  constructor(st, isHead) {
    super({ allowHalfOpen: true });
    this.st = st;
    this.isHead = isHead;
    this.headBuf = EMPTY;
    this.head = null;
    this.chunked = null;   // decoder when the handler asked for chunked encoding
    this.remoteAddress = '127.0.0.1';
    this.remotePort = 0;
    this.encrypted = false;
  }
  setTimeout() { return this; }
  setNoDelay() { return this; }
  setKeepAlive() { return this; }
  _read() {}
  _write(chunk, enc, cb) {
    if (this.st.cancelled) return cb();
    let data = typeof chunk === 'string' ? Buffer.from(chunk, enc) : chunk;
    if (!this.head) {
      this.headBuf = this.headBuf.length ? Buffer.concat([this.headBuf, data]) : data;
      const end = this.headBuf.indexOf('\r\n\r\n');
      if (end < 0) return cb();
      this.head = parseResponseHead(this.headBuf.subarray(0, end).toString('latin1'));
      data = this.headBuf.subarray(end + 4);
      this.headBuf = EMPTY;
      if (this.head.chunked) this.chunked = new ChunkedDecoder();
      send(headFrame(T.RESPONSE, 0, this.st.id, responseHead(this.head.status, this.head.headers), null));
    }
    if (this.chunked) data = this.chunked.feed(data);
    if (!data.length || this.isHead) return cb();
    this.st.sendData(data, false).then(() => cb(), cb);
  }
}

function parseResponseHead(text) {
  const lines = text.split('\r\n');
  const status = Number(lines[0].split(' ')[1]);
  const headers = [];
  let chunked = false;
  for (let i = 1; i < lines.length; i++) {
    const c = lines[i].indexOf(':');
    if (c < 0) continue;
    const k = lines[i].slice(0, c).trim().toLowerCase();
    const v = lines[i].slice(c + 1).trim();
    if (k === 'transfer-encoding') { chunked = /chunked/i.test(v); continue; }
    if (k === 'connection' || k === 'keep-alive' || k === 'date') continue;
    headers.push([k, v]);
  }
  return { status, headers, chunked };
}

class ChunkedDecoder {
  constructor() { this.buf = EMPTY; this.left = 0; this.state = 'size'; }
  feed(data) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, data]) : data;
    const out = [];
    for (;;) {
      if (this.state === 'size') {
        const nl = this.buf.indexOf('\r\n');
        if (nl < 0) break;
        this.left = parseInt(this.buf.subarray(0, nl).toString('latin1'), 16) || 0;
        this.buf = this.buf.subarray(nl + 2);
        this.state = this.left === 0 ? 'done' : 'data';
      } else if (this.state === 'data') {
        if (!this.buf.length) break;
        const n = Math.min(this.left, this.buf.length);
        out.push(this.buf.subarray(0, n));
        this.buf = this.buf.subarray(n);
        this.left -= n;
        if (this.left === 0) this.state = 'crlf';
      } else if (this.state === 'crlf') {
        if (this.buf.length < 2) break;
        this.buf = this.buf.subarray(2);
        this.state = 'size';
      } else {
        this.buf = EMPTY;
        break;
      }
    }
    return out.length === 1 ? out[0] : Buffer.concat(out);
  }
}

// Node's IncomingMessage for a request head, on `socket`.
function nodeRequest(socket, head) {
  const req = new http.IncomingMessage(socket);
  req.method = head.m;
  req.url = head.p;
  req.httpVersion = '1.1';
  req.httpVersionMajor = 1;
  req.httpVersionMinor = 1;
  const headers = {};
  const raw = [];
  for (const [k, v] of requestHeaders(head)) {
    raw.push(k, v);
    if (k === 'set-cookie') (headers[k] = headers[k] || []).push(v);
    else headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
  }
  req.headers = headers;
  req.rawHeaders = raw;
  return req;
}

function serveNode(st, head, first, ended) {
  const sockOut = new ResponseSocket(st, head.m === 'HEAD');
  const req = nodeRequest(sockOut, head);
  const headers = req.headers;
  if (!ended && !('content-length' in headers)) headers['transfer-encoding'] = 'chunked';  // a body of unknown length
  const credit = new BodyCredit(st.id);
  req._read = () => credit.consumed();
  st.onBody = (chunk, end) => {
    credit.received(chunk.length, end);
    // Taken at once (flowing, or buffered below the high-water mark): grant
    // now; otherwise when the stream asks for more.
    if (chunk.length && req.push(chunk)) credit.consumed();
    if (end) { req.complete = true; req.push(null); }
  };
  st.onCancel = () => { req.destroy(); sockOut.destroy(); };
  if (first.length) req.push(first);
  if (ended) { req.complete = true; req.push(null); }

  const res = new http.ServerResponse(req);
  res.useChunkedEncodingByDefault = false;
  // A body given whole to end() states its length (Node writes it only for
  // chunked-capable responses): a HEAD answer, asked as GET, then has it.
  const end = res.end;
  res.end = function (chunk, encoding, cb) {
    if (!this.headersSent && chunk != null && typeof chunk !== 'function' && !this.hasHeader('content-length')) {
      this.setHeader('content-length', Buffer.byteLength(chunk, typeof encoding === 'string' ? encoding : undefined));
    }
    return end.call(this, chunk, encoding, cb);
  };
  res.sendDate = false;
  res.shouldKeepAlive = false;
  res.assignSocket(sockOut);
  res.on('finish', () => {
    if (st.cancelled || st.done) return;
    // Everything ServerResponse wrote has gone through _write by now.
    setImmediate(() => {
      if (st.cancelled || st.done) return;
      if (!sockOut.head) send(headFrame(T.RESPONSE, 0, st.id, responseHead(res.statusCode, []), null));
      send(frame(T.DATA, END, st.id, EMPTY));
      st.finish();
    });
  });
  try {
    const r = handler.fn(req, res);
    if (r && typeof r.then === 'function') r.catch((e) => failNode(st, res, e));
  } catch (e) {
    failNode(st, res, e);
  }
}

// ---- WebSockets (websocket.js) ----------------------------------------------

globalThis.upgradeWebSocket = upgradeWebSocket;

// Who takes a WebSocket handshake in Node style: the code's own upgrade
// function, or the first server it started that listens for 'upgrade'
// (ws's WebSocketServer({ server }) or one of its own); none: the handshake
// is served as the plain GET it also is (a fetch handler may then call
// upgradeWebSocket()).
function upgradeTarget() {
  if (handler.upgrade) return handler.upgrade;
  const listening = (s) => s && s.listenerCount('upgrade') > 0;
  const server = listening(handler.server) ? handler.server : startedServers.map((s) => s.server).find(listening);
  return server ? (req, socket, head) => server.emit('upgrade', req, socket, head) : null;
}

// The stream as websocket.js uses it (its header comment says what each does).
function streamLink(st) {
  const credit = new BodyCredit(st.id);
  const link = {
    onData: null,
    onCancel: null,
    sendHead(status, headers) { send(headFrame(T.RESPONSE, 0, st.id, responseHead(status, headers), null)); },
    // undefined when sent at once (the window had room: the common case,
    // no promise), else a promise settled once it is sent.
    write(buf) {
      if (st.cancelled) return undefined;
      if (buf.length <= st.window && buf.length <= MAX_DATA) {
        send(frame(T.DATA, 0, st.id, buf));
        st.window -= buf.length;
        return undefined;
      }
      return st.sendData(buf, false);
    },
    end() {
      if (st.done || st.cancelled) return;
      send(frame(T.DATA, END, st.id, EMPTY));
      st.finish();
    },
    fail(e) { st.fail(e); },
    consumed() { credit.consumed(); },
  };
  st.onBody = (chunk, end) => {
    credit.received(chunk.length, end);
    if (link.onData) link.onData(chunk, end);
  };
  st.onCancel = () => { if (link.onCancel) link.onCancel(); };
  return link;
}

function serveUpgrade(st, head, target) {
  const socket = new UpgradeSocket(streamLink(st), parseResponseHead);
  socket.on('error', () => {});  // the code's own listeners see it; an unheard one must not end the instance
  const req = nodeRequest(socket, head);
  req.upgrade = true;
  req.complete = true;
  req.push(null);
  try {
    const r = target(req, socket, EMPTY);
    if (r && typeof r.then === 'function') r.catch((e) => socket.destroy(e));
  } catch (e) {
    socket.destroy(e);
  }
}

function failNode(st, res, e) {
  if (!res.headersSent && !st.done) return st.fail(e);
  process.stderr.write(`handler failed after the response started: ${e && e.stack || e}\n`);
  st.fail(e);
}

// A stem pays Node's lazy initialisation (the module loaders, the fetch
// classes, the HTTP response machinery, this file's request paths) before it
// says HELLO, so that specializing and the first request do not. The
// warm-up serves a few requests of its own through the same code; their
// frames go nowhere.
async function warmUp() {
  await import('data:text/javascript,export default 1');
  for (const f of ['warm.mjs', 'warm.cjs', 'warm-detect.js']) {
    const file = path.join(__dirname, f);
    await import(pathToFileURL(file).href).catch(() => {});
    try { require(file); } catch {}
  }
  const s16 = (v) => { const b = Buffer.from(v, 'latin1'); const l = Buffer.alloc(2); l.writeUInt16BE(b.length); return [l, b]; };
  const s32 = (v) => { const b = Buffer.from(v, 'latin1'); const l = Buffer.alloc(4); l.writeUInt32BE(b.length); return [l, b]; };
  const requestPayload = (method, headers, body) => {
    const count = Buffer.alloc(2);
    count.writeUInt16BE(headers.length);
    const head = Buffer.concat([...s16(method), ...s16('/warm?x=1'), ...s16('http://warm.up/warm?x=1'), ...s16('warm'),
                                count, ...headers.flatMap(([k, v]) => [...s16(k), ...s32(v)])]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(head.length);
    return Buffer.concat([len, head, body]);
  };
  const handlers = [
    { kind: 'fetch', obj: { async fetch(r) { await r.text(); return Response.json({ warm: r.headers.get('a') }); } } },
    { kind: 'fetch', obj: { fetch(r) { return new Response(new ReadableStream({ start(c) { c.enqueue(new Uint8Array(1)); c.close(); } })); } } },
    { kind: 'node', fn(req, res) { req.on('data', () => {}); req.on('end', () => { res.setHeader('x', '1'); res.end('warm'); }); } },
  ];
  let id = 0;
  for (let round = 0; round < 3; round++) {
    for (const h of handlers) {
      handler = h;
      id += 2;
      onFrame(T.REQUEST, END, id, requestPayload('GET', [['host', 'warm.up'], ['a', 'b']], EMPTY));
      id += 2;
      onFrame(T.REQUEST, 0, id, requestPayload('POST', [['content-length', '4']], Buffer.from('wa')));
      onFrame(T.DATA, END, id, Buffer.from('rm'));
      for (let i = 0; i < 50 && streams.size > 0; i++) await new Promise((r) => setImmediate(r));
    }
  }
  streams.clear();
  handler = null;
  await Response.json({ warm: true }).arrayBuffer();
}

warmUp().catch(() => {}).finally(() => {
  warming = false;
  sendJson(T.HELLO, 0, { runtime: 'node', pid: process.pid, version: process.version });
});
