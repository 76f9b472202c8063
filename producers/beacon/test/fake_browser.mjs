// A tiny fake browser for the beacon's tests: just the DOM, navigator and timer surface the
// script touches, every transport recorded. The script runs in a fresh `vm` context per page,
// so each test loads it exactly as a browser would (an IIFE on a global `window`).
//
// Events are dispatched in the real DOM order: capture listeners from window down to the target,
// then bubbling listeners from the target up to window (at the target, capture ones first, as
// browsers do since 2021). So the beacon's capture listener on document runs before a handler
// bound on an element, such as Stageprompt's jQuery one. Unlike a real user click, no microtask
// runs between two listeners here: nothing may rely on one running, or on one not running.
import { readFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';

export const SOURCE = fileURLToPath(new URL('../beacon.js', import.meta.url));
export const DIST = fileURLToPath(new URL('../dist/beacon.min.js', import.meta.url));
// Every behaviour test runs on the readable source and on the minified file that is served.
export const BUILDS = { source: SOURCE, minified: DIST };

export class FakeElement {
  constructor(tag, attrs = {}, children = []) {
    this.tagName = tag.toUpperCase();
    this.attrs = { ...attrs };
    this.children = children;
    this.parentNode = null;
    this.listeners = [];
    for (const child of children) child.parentNode = this;
  }

  addEventListener(type, fn, options) {
    this.listeners.push(listener(type, fn, options));
  }

  getAttribute(name) {
    return Object.hasOwn(this.attrs, name) ? String(this.attrs[name]) : null;
  }

  get src() {
    return this.attrs.src ?? '';
  }

  *walk() {
    yield this;
    for (const child of this.children) yield* child.walk();
  }
}

export const el = (tag, attrs, ...children) => new FakeElement(tag, attrs, children);

// addEventListener's third argument: a boolean, or options with `capture`.
const listener = (type, fn, options) => ({
  type,
  fn,
  capture: typeof options === 'object' && options !== null ? Boolean(options.capture) : Boolean(options),
});

// Runs `event` through `path` (target first, window last) in the DOM's order; stopPropagation
// ends it after the listeners of the node it was called on.
function dispatch(path, event) {
  let stopped = false;
  Object.assign(event, {
    stopPropagation() {
      stopped = true;
    },
  });
  const run = (node, capture) => {
    for (const l of [...(node.listeners ?? [])]) {
      if (l.type === event.type && l.capture === capture) l.fn.call(node, event);
    }
  };
  const phases = [...[...path].reverse().map((node) => [node, true]), ...path.map((node) => [node, false])];
  for (const [i, [node, capture]] of phases.entries()) {
    event.currentTarget = node;
    run(node, capture);
    if (stopped && phases[i + 1]?.[0] !== node) break;
  }
}

// `[data-journey]`, `script[data-service]`: the only selectors the script uses.
function matches(element, selector) {
  const m = /^([a-z]*)\[([\w-]+)\]$/.exec(selector);
  if (!m) throw new Error(`fake DOM: unsupported selector ${selector}`);
  return (!m[1] || element.tagName === m[1].toUpperCase()) && element.getAttribute(m[2]) !== null;
}

// Timers the test moves by hand.
class Clock {
  constructor() {
    this.now = 0;
    this.timers = new Map();
    this.nextId = 1;
    this.delays = [];
  }

  setTimeout(fn, ms = 0) {
    const id = this.nextId++;
    this.timers.set(id, { at: this.now + ms, fn });
    this.delays.push(ms);
    return id;
  }

  clearTimeout(id) {
    this.timers.delete(id);
  }

  advance(ms) {
    const until = this.now + ms;
    for (;;) {
      const due = [...this.timers].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at);
      if (!due.length) break;
      const [id, timer] = due[0];
      this.timers.delete(id);
      this.now = timer.at;
      timer.fn();
    }
    this.now = until;
  }
}

/**
 * A page: `body` is a list of FakeElements; `script` the attributes of the beacon's own tag
 * (null: no currentScript). Transports: `beacon(url, body)` returns what sendBeacon returns
 * (null: no sendBeacon; `sent.beacons` holds refused calls too); `fetch(url, init)` returns a
 * status, throws, or returns a rejected promise (null: no fetch); `image` false removes Image.
 * `performance.now()` reads the test's clock (`globals: { performance: undefined }` removes it).
 */
export function page({
  body = [],
  script = { src: 'https://perf.example/beacon.js', 'data-service': 'apply-passport' },
  beacon = () => true,
  fetch = () => 202,
  image = true,
  readyState = 'interactive',
  href = 'https://www.example.gov.uk/apply/start?ref=abc#top',
  globals = {},
} = {}) {
  const clock = new Clock();
  const sent = { beacons: [], fetches: [], pixels: [], cookies: [], storage: [] };
  const root = el('html', {}, el('head', {}, ...(script ? [el('script', script)] : [])), el('body', {}, ...body));
  const all = () => [...root.walk()];

  const document = {
    readyState,
    visibilityState: 'visible',
    currentScript: script ? all().find((e) => e.tagName === 'SCRIPT') : null,
    querySelector: (selector) => all().find((e) => matches(e, selector)) ?? null,
    listeners: [],
    addEventListener(type, fn, options) {
      this.listeners.push(listener(type, fn, options));
    },
    get cookie() {
      sent.cookies.push('read');
      return '';
    },
    set cookie(value) {
      sent.cookies.push(value);
    },
  };
  const url = new URL(href);
  const storage = (name) =>
    new Proxy(
      {},
      {
        get(_, key) {
          sent.storage.push(`${name}.${String(key)}`);
          return () => null;
        },
      },
    );
  const window = {
    document,
    location: { href: url.href, origin: url.origin, pathname: url.pathname, search: url.search },
    navigator: beacon
      ? {
          sendBeacon(target, data) {
            const record = { url: target, body: data, events: JSON.parse(data), accepted: false };
            sent.beacons.push(record);
            record.accepted = beacon(target, data);
            return record.accepted;
          },
        }
      : {},
    crypto: webcrypto,
    performance: { now: () => clock.now + 0.25 }, // fractional, as a browser's
    URL,
    setTimeout: (fn, ms) => clock.setTimeout(fn, ms),
    clearTimeout: (id) => clock.clearTimeout(id),
    listeners: [],
    addEventListener(type, fn, options) {
      this.listeners.push(listener(type, fn, options));
    },
    get localStorage() {
      return storage('localStorage');
    },
    get sessionStorage() {
      return storage('sessionStorage');
    },
    ...globals,
  };
  if (fetch) {
    window.fetch = (target, init) => {
      const status = fetch(target, init); // a throw here: the request never left
      sent.fetches.push({ url: target, init, events: JSON.parse(init.body) });
      if (status instanceof Promise) return status;
      return Promise.resolve({ status, ok: status >= 200 && status < 300 });
    };
  }
  if (image) {
    window.Image = class {
      set src(value) {
        sent.pixels.push(value);
      }
    };
  }
  window.window = window;
  const context = vm.createContext(window);

  root.parentNode = document; // <html>'s parent, as in a browser
  // The event's path: the target, its ancestors up to the document, then the window. A target
  // outside the tree (null, a bare object) still reaches the document: tests hand the beacon's
  // listener odd targets on purpose.
  const fire = (target, type) => {
    const path = [];
    for (let node = target; node && node !== document; node = node.parentNode) path.push(node);
    dispatch([...path, document, window], { type, target });
  };

  return {
    window,
    document,
    root,
    sent,
    clock,
    /** Loads the script as the page would; returns what its evaluation threw, if anything. */
    load(file) {
      try {
        vm.runInContext(readFileSync(file, 'utf8'), context, { filename: file });
        return null;
      } catch (error) {
        return error;
      }
    },
    run: (code) => vm.runInContext(code, context),
    get perfplat() {
      return window.perfplat;
    },
    find: (predicate) => all().find(predicate),
    /** A user's click on `target`, its listeners in the DOM's order. The click is a task of its
     * own: a 0 ms timer it sets runs when the test advances the clock (by 0 at least). */
    click(target) {
      fire(target, 'click');
    },
    ready() {
      document.readyState = 'interactive';
      fire(document, 'DOMContentLoaded');
    },
    hide() {
      document.visibilityState = 'hidden';
      fire(document, 'visibilitychange');
    },
    show() {
      document.visibilityState = 'visible';
      fire(document, 'visibilitychange');
    },
    pagehide() {
      dispatch([window], { type: 'pagehide', target: window, persisted: false });
    },
    /** Every event that left the page, whatever the transport, in order. */
    events() {
      const fromPixel = (u) => Object.fromEntries(new URL(u, url.href).searchParams);
      return [
        ...sent.beacons.filter((b) => b.accepted).flatMap((b) => b.events),
        ...sent.fetches.flatMap((f) => f.events),
        ...sent.pixels.map(fromPixel),
      ];
    },
  };
}

/** Lets pending promise callbacks (fetch answers) run. */
export const settle = () => new Promise((resolve) => setImmediate(resolve));
