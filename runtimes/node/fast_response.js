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

const { isDisturbed } = require('node:stream');

const NativeResponse = globalThis.Response;
const kBytes = Symbol('nubo.bytes');    // Buffer; undefined: the body is Node's
const kStream = Symbol('nubo.stream');  // the stream, once asked for
const kUsed = Symbol('nubo.used');
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

class Response extends NativeResponse {
  constructor(body = null, init = undefined) {
    const bytes = body === null || body === undefined ? undefined : copyOf(body);
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

  // The bytes for a reader of the whole body; marks the body used.
  #take(what) {
    if (this.bodyUsed) throw new TypeError(`Response.${what}: the body has already been read`);
    if (this[kStream] !== undefined && this[kStream].locked) {
      throw new TypeError(`Response.${what}: the body is locked by a reader`);
    }
    this[kUsed] = true;
    return this[kBytes];
  }

  async text() {
    if (this[kBytes] === undefined) return super.text();
    return utf8.decode(this.#take('text'));
  }
  async json() {
    if (this[kBytes] === undefined) return super.json();
    return JSON.parse(utf8.decode(this.#take('json')));
  }
  async arrayBuffer() {
    if (this[kBytes] === undefined) return super.arrayBuffer();
    const b = this.#take('arrayBuffer');
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  }
  async bytes() {
    if (this[kBytes] === undefined) return super.bytes ? super.bytes() : new Uint8Array(await super.arrayBuffer());
    return new Uint8Array(await this.arrayBuffer());
  }
  async blob() {
    if (this[kBytes] === undefined) return super.blob();
    const b = this.#take('blob');
    return new Blob([b], { type: this.headers.get('content-type') || '' });
  }
  async formData() {
    if (this[kBytes] === undefined) return super.formData();
    const b = this.#take('formData');
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

// The body as bytes, when it is still whole and unread (the runtime sends it
// as it is); undefined otherwise.
function wholeBody(res) {
  const bytes = res[kBytes];
  if (bytes === undefined || res[kUsed] === true || res[kStream] !== undefined) return undefined;
  return bytes;
}

module.exports = { Response, NativeResponse, wholeBody };
