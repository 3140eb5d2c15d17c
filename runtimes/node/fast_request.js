'use strict';
// Requests for fetch handlers that cost nothing until the handler looks.
//
// Node's Request constructor parses the URL, validates and copies every
// header into a Headers object and makes an AbortController (an
// EventTarget) for every request: most of a small function's time and
// garbage. Two layers avoid that:
//
// - lazyRequest() returns a Request whose `method` and `url` are plain
//   fields. Its prototype derives from Request.prototype, so `instanceof`,
//   every getter and method of Node's Request work unchanged: they read the
//   request's internal slots (symbol-keyed properties), which here are
//   getters that build the real Request on first use and read through to it.
//   A handler that never looks at more than method and URL never builds one.
// - newRequest() builds that real Request with a placeholder controller; its
//   signal becomes a getter that makes the real AbortSignal on first use,
//   aborted already if the client went away before. Everything that reads
//   the signal (request.signal, clone(), new Request(request), fetch(request))
//   goes through that getter, so they see a real AbortSignal.
//
// Both rely on how Node's fetch implementation stores its state. A probe at
// start-up checks every path above; if any misbehaves, requests are built
// the ordinary way (and only request.signal itself is lazy).

const { lazyPrototype } = require('./lazy_object.js');

const NativeAbortController = globalThis.AbortController;
const NativeRequest = globalThis.Request;
const kAborted = Symbol('nubo.aborted');
const kController = Symbol('nubo.controller');
const kMethod = Symbol('nubo.method');
const kUrl = Symbol('nubo.url');
const kInit = Symbol('nubo.init');  // { headers: () => pairs, body }, until the real request exists
const kReal = Symbol('nubo.real');

class Placeholder {
  constructor() {
    this.signal = null;
  }
  abort() {}
}

let kSignal = null;  // the Request's own slot for its signal, when found and safe
let lazyOk = false;  // lazyRequest() may hand out lazy requests

function lazySignal() {
  let ac = this[kController];
  if (ac === undefined) {
    ac = new NativeAbortController();
    if (this[kAborted] === true) ac.abort();
    this[kController] = ac;
  }
  return ac.signal;
}

function newRequest(url, init) {
  if (kSignal === null) {
    const req = new NativeRequest(url, init);
    Object.defineProperty(req, 'signal', { get: lazySignal, configurable: true });
    return req;
  }
  let req;
  globalThis.AbortController = Placeholder;
  try {
    req = new NativeRequest(url, init);
  } finally {
    globalThis.AbortController = NativeAbortController;
  }
  Object.defineProperty(req, kSignal, { get: lazySignal, configurable: true });
  return req;
}

// The real Request behind a lazy one, built on first use.
function realOf(lazy) {
  let real = lazy[kReal];
  if (real === undefined) {
    const init = lazy[kInit];
    lazy[kInit] = undefined;
    real = newRequest(lazy[kUrl], { method: lazy[kMethod], headers: init.headers(), body: init.body, duplex: 'half' });
    if (lazy[kAborted] === true) abortRequest(real);
    lazy[kReal] = real;
  }
  return real;
}

function LazyRequest(method, url, init) {
  this[kMethod] = method;
  this[kUrl] = url;
  this[kInit] = init;
  this[kReal] = undefined;
  this[kAborted] = false;
}

// Its internal slots (state, headers, signal, dispatcher) read through to
// the real Request (lazy_object.js).
function defineLazyPrototype() {
  const sample = new NativeRequest('http://probe.invalid/');
  LazyRequest.prototype = lazyPrototype(NativeRequest.prototype, sample, NativeRequest, {
    method() { return this[kMethod]; },
    url() { return this[kUrl]; },
  }, realOf);
}

// A request for a fetch handler: `headers` is a function returning the
// header pairs, called only if the handler needs them; `body` a stream or null.
function lazyRequest(method, url, headers, body) {
  if (lazyOk) return new LazyRequest(method, url, { headers, body });
  return newRequest(url, { method, headers: headers(), body, duplex: 'half' });
}

// The client went away: the request's signal (now or when first read) is aborted.
function abortRequest(req) {
  req[kAborted] = true;
  if (req instanceof LazyRequest) {
    if (req[kReal] !== undefined) abortRequest(req[kReal]);
    return;
  }
  const ac = req[kController];
  if (ac !== undefined) ac.abort();
}

function probeSignal() {
  const plain = new NativeRequest('http://probe.invalid/');
  const slot = Object.getOwnPropertySymbols(plain).find((s) => s.description === 'signal');
  if (!slot || !(plain[slot] instanceof AbortSignal)) return null;
  kSignal = slot;
  try {
    const r = newRequest('http://probe.invalid/', { method: 'POST', headers: [['a', 'b']], body: 'x', duplex: 'half' });
    const ok =
      r.signal instanceof AbortSignal && !r.signal.aborted && r[kSignal] === r.signal &&
      r.clone().signal instanceof AbortSignal && new NativeRequest(r).signal instanceof AbortSignal;
    const gone = newRequest('http://probe.invalid/', {});
    abortRequest(gone);
    const late = newRequest('http://probe.invalid/', {});
    const seen = late.signal;
    abortRequest(late);
    if (ok && gone.signal.aborted && seen.aborted && new NativeRequest(gone).signal.aborted) return slot;
  } catch {
    // fall through: build requests the ordinary way
  }
  kSignal = null;
  return null;
}

// Lazy requests must behave as real ones on every path a handler may take;
// checked synchronously where possible (the body paths by the runtime's
// warm-up, which reads bodies through them).
function probeLazy() {
  try {
    defineLazyPrototype();
    const hdrs = () => [['a', 'b'], ['content-type', 'text/plain']];
    const get = new LazyRequest('GET', 'http://probe.invalid/p?q=1', { headers: hdrs, body: null });
    if (!(get instanceof NativeRequest) || get.constructor !== NativeRequest) return false;
    if (Object.prototype.toString.call(get) !== '[object Request]') return false;
    if (get.method !== 'GET' || get.url !== 'http://probe.invalid/p?q=1') return false;
    if (get[kReal] !== undefined) return false;  // nothing built yet
    if (get.headers.get('a') !== 'b' || !(get.headers instanceof Headers)) return false;
    if (get.mode !== 'cors' || get.bodyUsed !== false || get.body !== null) return false;
    if (!(get.signal instanceof AbortSignal) || get.signal.aborted) return false;
    const copy = new NativeRequest(get);
    if (copy.url !== get.url || copy.headers.get('a') !== 'b' || copy.method !== 'GET') return false;
    const clone = get.clone();
    if (!(clone instanceof NativeRequest) || clone.headers.get('content-type') !== 'text/plain') return false;
    const gone = new LazyRequest('GET', 'http://probe.invalid/', { headers: () => [], body: null });
    abortRequest(gone);
    if (!gone.signal.aborted) return false;
    const late = new LazyRequest('GET', 'http://probe.invalid/', { headers: () => [], body: null });
    const seen = late.signal;
    abortRequest(late);
    if (!seen.aborted) return false;
    const post = new LazyRequest('POST', 'http://probe.invalid/', { headers: hdrs, body: 'x' });
    if (post.bodyUsed !== false || !(post.body instanceof ReadableStream)) return false;
    return require('node:util').inspect(get).includes("method: 'GET'");
  } catch {
    return false;
  }
}

kSignal = probeSignal();
lazyOk = kSignal !== null && probeLazy();

module.exports = {
  newRequest,
  lazyRequest,
  abortRequest,
  fastRequests: () => kSignal !== null,
  lazyRequests: () => lazyOk,
};
