'use strict';
// The shared mechanism of the runtime's lazy Request and Response: an
// object that stands for one of Node's fetch objects without running its
// constructor.
//
// Node's fetch classes keep their state in internal slots, symbol-keyed
// own properties of each object, which every getter and method of theirs
// reads. A lazy object's prototype derives from the class's prototype (so
// `instanceof` and every method work) and defines each of those slots as a
// getter (and setter) that builds the real object on first use and reads
// through to it. `getters` are answered from the lazy object's own fields.

// `sample`: a real object of the class, to learn its slots from;
// `realOf(lazy)`: builds (once) and returns the real object behind `lazy`.
function lazyPrototype(base, sample, constructor, getters, realOf) {
  const props = { constructor: { value: constructor, writable: true, configurable: true } };
  for (const [name, get] of Object.entries(getters)) props[name] = { get, configurable: true };
  for (const slot of Object.getOwnPropertySymbols(sample)) {
    props[slot] = {
      get() { return realOf(this)[slot]; },
      set(v) { realOf(this)[slot] = v; },
      configurable: true,
    };
  }
  return Object.create(base, props);
}

module.exports = { lazyPrototype };
