'use strict';
// A Response whose body, when made from a string or bytes, stays those bytes
// until someone asks for a stream.
//
// Node's Response builds a ReadableStream for every body in its constructor
// (about 15 us, most of a small function's time). This subclass hands Node's
// constructor no body and keeps the bytes itself: the runtime sends them as
// they are, and `body`, `text()`, `json()`, `arrayBuffer()`, `blob()`,
// `bytes()`, `formData()`, `clone()` and `bodyUsed` behave as the standard
// says. Other bodies (streams, Blob, FormData, URLSearchParams) and
// everything else (status, headers, Response.redirect/error) are Node's own.
// `instanceof Response` holds for Node's responses too (fetch() results).
//
// The commonest responses (`Response.json(v)`, `new Response(text)`, with at
// most a status) are lazier still: Node's constructor does not run at all
// (it validates and builds a Headers object, a few microseconds). The
// response keeps its status and content type as plain fields; Node's
// internal slots (its state and headers, symbol-keyed properties) are
// getters that build the real response on first use and read through to
// it, so every getter and method of Node's Response works unchanged. The
// runtime sends an untouched one from its fields (lazyHead()). A probe at
// start-up checks those paths; if any misbehaves, responses are built the
// ordinary way.

const { isDisturbed } = require('node:stream');
const { lazyPrototype } = require('./lazy_object.js');

const NativeResponse = globalThis.Response;
const kBytes = Symbol('nubo.bytes');    // Buffer; undefined: the body is Node's
const kStream = Symbol('nubo.stream');  // the stream, once asked for
const kUsed = Symbol('nubo.used');
const kStatus = Symbol('nubo.status');  // lazy responses: the status...
const kType = Symbol('nubo.type');      // ...and content type (or null)
const kReal = Symbol('nubo.real');      // ...and Node's response, once built
const TEXT = 'text/plain;charset=UTF-8';
const JSON_TYPE = 'application/json';
let lazyOk = false;
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304]);
const utf8 = new TextDecoder();  // strips a BOM, as the standard's "UTF-8 decode" does

function copyOf(body) {
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof ArrayBuffer) return Buffer.from(body.slice(0));
  if (ArrayBuffer.isView(body)) {
    return Buffer.from(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
  }
  return undefined;
}

// An init that a lazy response can stand for: none, or only an ordinary status.
function simpleInit(init) {
  if (init === undefined) return true;
  if (init === null || typeof init !== 'object') return false;
  for (const k in init) if (k !== 'status') return false;
  const s = init.status;
  return s === undefined || (Number.isInteger(s) && s >= 200 && s <= 599 && !NULL_BODY_STATUS.has(s));
}

class Response extends NativeResponse {
  constructor(body = null, init = undefined) {
    const bytes = body === null || body === undefined ? undefined : copyOf(body);
    if (lazyOk && bytes !== undefined && new.target === Response && simpleInit(init)) {
      // eslint-disable-next-line no-constructor-return
      return new LazyResponse(bytes, init === undefined || init.status === undefined ? 200 : init.status,
                              typeof body === 'string' ? TEXT : null);
    }
    if (bytes === undefined || (init && NULL_BODY_STATUS.has(Number(init.status)))) {
      super(body, init);  // Node's own handling, errors included
      return;
    }
    super(null, init);
    if (typeof body === 'string' && !this.headers.has('content-type')) {
      this.headers.set('content-type', 'text/plain;charset=UTF-8');
    }
    this[kBytes] = bytes;
  }

  static json(data, init = undefined) {
    const text = JSON.stringify(data);
    if (text === undefined) throw new TypeError('Response.json: value is not JSON serializable');
    if (init && NULL_BODY_STATUS.has(Number(init.status))) return NativeResponse.json(data, init);
    if (lazyOk && simpleInit(init)) {
      return new LazyResponse(Buffer.from(text, 'utf8'), init === undefined || init.status === undefined ? 200 : init.status,
                              JSON_TYPE);
    }
    const r = new Response(null, init);
    if (!r.headers.has('content-type')) r.headers.set('content-type', 'application/json');
    r[kBytes] = Buffer.from(text, 'utf8');
    return r;
  }

  static [Symbol.hasInstance](v) {
    return v instanceof NativeResponse;
  }

  get body() {
    const bytes = this[kBytes];
    if (bytes === undefined) return super.body;
    if (this[kStream] === undefined) {
      this[kStream] = new ReadableStream({
        type: 'bytes',
        start(c) {
          if (bytes.length) c.enqueue(new Uint8Array(bytes));
          c.close();
        },
      });
    }
    return this[kStream];
  }

  get bodyUsed() {
    if (this[kBytes] === undefined) return super.bodyUsed;
    return this[kUsed] === true || (this[kStream] !== undefined && isDisturbed(this[kStream]));
  }

  async text() {
    if (this[kBytes] === undefined) return super.text();
    return utf8.decode(take(this, 'text'));
  }
  async json() {
    if (this[kBytes] === undefined) return super.json();
    return JSON.parse(utf8.decode(take(this, 'json')));
  }
  async arrayBuffer() {
    if (this[kBytes] === undefined) return super.arrayBuffer();
    const b = take(this, 'arrayBuffer');
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  }
  async bytes() {
    if (this[kBytes] === undefined) return super.bytes ? super.bytes() : new Uint8Array(await super.arrayBuffer());
    return new Uint8Array(await this.arrayBuffer());
  }
  async blob() {
    if (this[kBytes] === undefined) return super.blob();
    const b = take(this, 'blob');
    return new Blob([b], { type: this.headers.get('content-type') || '' });
  }
  async formData() {
    if (this[kBytes] === undefined) return super.formData();
    const b = take(this, 'formData');
    return new NativeResponse(b, { headers: this.headers }).formData();
  }

  clone() {
    if (this[kBytes] === undefined) return super.clone();
    if (this.bodyUsed) throw new TypeError('Response.clone: the body has already been read');
    const c = new Response(null, { status: this.status, statusText: this.statusText, headers: this.headers });
    c[kBytes] = this[kBytes];  // immutable once made: both may share it
    return c;
  }
}

// The bytes for a reader of the whole body; marks the body used. (A plain
// function, not a private method: lazy responses are not made by the
// constructor, so they carry no private brand.)
function take(res, what) {
  if (res.bodyUsed) throw new TypeError(`Response.${what}: the body has already been read`);
  if (res[kStream] !== undefined && res[kStream].locked) {
    throw new TypeError(`Response.${what}: the body is locked by a reader`);
  }
  res[kUsed] = true;
  return res[kBytes];
}

// Node's response behind a lazy one, built on first use.
function realOf(lazy) {
  let real = lazy[kReal];
  if (real === undefined) {
    const type = lazy[kType];
    real = new NativeResponse(null, { status: lazy[kStatus], headers: type === null ? undefined : [['content-type', type]] });
    lazy[kReal] = real;
  }
  return real;
}

function LazyResponse(bytes, status, type) {
  this[kBytes] = bytes;
  this[kStream] = undefined;
  this[kUsed] = false;
  this[kStatus] = status;
  this[kType] = type;
  this[kReal] = undefined;
}

// Its internal slots (state, headers) read through to Node's response
// (lazy_object.js).
function defineLazyPrototype() {
  LazyResponse.prototype = lazyPrototype(Response.prototype, new NativeResponse(null), Response, {
    status() { return this[kStatus]; },
    ok() { return this[kStatus] >= 200 && this[kStatus] <= 299; },
    statusText() { return ''; },
  }, realOf);
}

// For a lazy response nobody has looked into: { status, type } (type may be
// null: no content type); undefined otherwise.
function lazyHead(res) {
  if (!(res instanceof LazyResponse) || res[kReal] !== undefined) return undefined;
  return res;
}
function lazyStatus(res) { return res[kStatus]; }
function lazyType(res) { return res[kType]; }

// Lazy responses must answer as Node's own do on every path a handler or
// the runtime may take.
function probeLazy() {
  try {
    defineLazyPrototype();
    lazyOk = true;
    const j = Response.json({ a: 1 });
    const t = new Response('hi', { status: 201 });
    const ok =
      j instanceof LazyResponse && t instanceof LazyResponse && j instanceof NativeResponse &&
      j instanceof Response && j.constructor === Response &&
      Object.prototype.toString.call(j) === '[object Response]' &&
      j.status === 200 && j.ok && t.status === 201 && j.statusText === '' &&
      lazyHead(j) === j && j.bodyUsed === false &&
      j.headers.get('content-type') === JSON_TYPE && lazyHead(j) === undefined &&
      t.headers.get('content-type') === TEXT && t.type === 'default' && t.redirected === false &&
      new Response(new Uint8Array([1])).headers.get('content-type') === null &&
      t.clone().headers.get('content-type') === TEXT && t.clone().status === 201 &&
      require('node:util').inspect(t).includes('status: 201') &&
      !(new Response('x', { headers: { a: 'b' } }) instanceof LazyResponse) &&
      !(new Response(null, { status: 204 }) instanceof LazyResponse) &&
      !(new Response(null) instanceof LazyResponse);
    let threw = false;
    try { new Response('x', { status: 99 }); } catch { threw = true; }
    lazyOk = ok && threw;
  } catch {
    lazyOk = false;
  }
}

// The body as bytes, when it is still whole and unread (the runtime sends it
// as it is); undefined otherwise.
function wholeBody(res) {
  const bytes = res[kBytes];
  if (bytes === undefined || res[kUsed] === true || res[kStream] !== undefined) return undefined;
  return bytes;
}

probeLazy();

module.exports = { Response, NativeResponse, wholeBody, lazyHead, lazyStatus, lazyType };
