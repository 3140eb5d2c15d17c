'use strict';
// Requests for fetch handlers whose AbortSignal is made only when asked for.
//
// Node's Request constructor makes an AbortController for every request
// (an EventTarget: a third of a small function's time, and most of its
// garbage). Here the constructor gets a placeholder controller, and the
// request's signal becomes a getter that makes the real one on first use,
// aborted already if the client went away before. Everything that reads the
// signal (request.signal, clone(), new Request(request), fetch(request))
// goes through that getter, so they see a real AbortSignal.
//
// This relies on how Node's fetch implementation stores the signal. A probe
// at start-up checks every path above; if any misbehaves, requests are built
// the ordinary way and only request.signal itself is lazy.

const NativeAbortController = globalThis.AbortController;
const kAborted = Symbol('nubo.aborted');
const kController = Symbol('nubo.controller');

class Placeholder {
  constructor() {
    this.signal = null;
  }
  abort() {}
}

let kSignal = null;  // the Request's own slot for its signal, when found and safe

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
    const req = new Request(url, init);
    Object.defineProperty(req, 'signal', { get: lazySignal, configurable: true });
    return req;
  }
  let req;
  globalThis.AbortController = Placeholder;
  try {
    req = new Request(url, init);
  } finally {
    globalThis.AbortController = NativeAbortController;
  }
  Object.defineProperty(req, kSignal, { get: lazySignal, configurable: true });
  return req;
}

// The client went away: the request's signal (now or when first read) is aborted.
function abortRequest(req) {
  req[kAborted] = true;
  const ac = req[kController];
  if (ac !== undefined) ac.abort();
}

function probe() {
  const plain = new Request('http://probe.invalid/');
  const slot = Object.getOwnPropertySymbols(plain).find((s) => s.description === 'signal');
  if (!slot || !(plain[slot] instanceof AbortSignal)) return null;
  kSignal = slot;
  try {
    const r = newRequest('http://probe.invalid/', { method: 'POST', headers: [['a', 'b']], body: 'x', duplex: 'half' });
    const ok =
      r.signal instanceof AbortSignal && !r.signal.aborted && r[kSignal] === r.signal &&
      r.clone().signal instanceof AbortSignal && new Request(r).signal instanceof AbortSignal;
    const gone = newRequest('http://probe.invalid/', {});
    abortRequest(gone);
    const late = newRequest('http://probe.invalid/', {});
    const seen = late.signal;
    abortRequest(late);
    if (ok && gone.signal.aborted && seen.aborted && new Request(gone).signal.aborted) return slot;
  } catch {
    // fall through: build requests the ordinary way
  }
  return null;
}
kSignal = probe();

module.exports = { newRequest, abortRequest, fastRequests: () => kSignal !== null };
