// Behaviour of the beacon script, on the readable source and on the minified file served at
// /beacon.js: the markup and Stageprompt's splitting rules, batching and flushing, the
// transports and their fallbacks, the retry queue, and that nothing throws into the page.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { BUILDS, el, page, settle } from './fake_browser.mjs';

const pick = (events, ...keys) =>
  events.map((e) => Object.fromEntries(keys.filter((k) => k in e).map((k) => [k, e[k]])));

// Stageprompt 2 as the reference describes it, on the fake DOM: on setup, the callback for the
// first data-journey (when not empty); then one callback per click on every element bound at
// setup. `order` says where its click handlers run: 'after' the beacon's capture listener on
// document, as the real one's (jQuery handlers on each element, so a click bubbles through
// nested bound elements), or 'before' it (a capture listener on window, calling back for each
// bound element from the target up).
function fakeStageprompt(p, { order = 'after' } = {}) {
  const split = (action) => {
    const parts = action.split(':');
    return parts.length <= 3 ? parts : [parts.shift(), parts.shift(), parts.join(':')];
  };
  return {
    setup(cb) {
      const journey = p.document.querySelector('[data-journey]')?.getAttribute('data-journey');
      if (journey) cb.apply(null, split(journey));
      const bound = [...p.root.walk()].filter((e) => e.getAttribute('data-journey-click') !== null);
      const callBack = (node) => cb.apply(null, split(node.getAttribute('data-journey-click')));
      if (order === 'after') {
        for (const node of bound) node.addEventListener('click', () => callBack(node));
      } else {
        p.window.addEventListener(
          'click',
          (event) => {
            for (let node = event.target; node; node = node.parentNode) if (bound.includes(node)) callBack(node);
          },
          true,
        );
      }
    },
  };
}

for (const [build, file] of Object.entries(BUILDS)) {
  describe(`beacon.js (${build})`, () => {
    const open = (options) => {
      const p = page(options);
      assert.equal(p.load(file), null);
      return p;
    };

    describe('splitting, as Stageprompt does', () => {
      const cases = [
        ['service:stage:start', { category: 'service', action: 'stage', label: 'start' }],
        ['a:b:c:d', { category: 'a', action: 'b', label: 'c:d' }],
        ['a:b:c:d:e', { category: 'a', action: 'b', label: 'c:d:e' }],
        ['buy-a-badger:stage', { category: 'buy-a-badger', action: 'stage' }],
        ['buy-a-badger', { category: 'buy-a-badger' }],
        [':stage:confirm', { category: 'apply-passport', action: 'stage', label: 'confirm' }],
        ['a::', { category: 'a', action: '', label: '' }],
      ];
      for (const [markup, expected] of cases) {
        it(`data-journey="${markup}"`, () => {
          const p = open({ body: [el('main', { 'data-journey': markup })] });
          p.clock.advance(1000);
          assert.deepEqual(pick(p.events(), 'category', 'action', 'label'), [expected]);
        });
      }

      it('a category that is not a service slug is not sent, its neighbours are', () => {
        const p = open();
        assert.equal(p.perfplat.track('<script>', 'stage', 'x'), false);
        assert.equal(p.perfplat.track('Carers-Allowance', 'help', 'info'), true);
        p.perfplat.flush();
        assert.deepEqual(pick(p.events(), 'category'), [{ category: 'Carers-Allowance' }]);
      });

      it('fields are cut to the server limits rather than refused', () => {
        const p = open({ href: `https://www.example.gov.uk/${'p'.repeat(2000)}` });
        p.perfplat.track('svc', 'a'.repeat(200), 'l'.repeat(600));
        p.perfplat.flush();
        const [e] = p.events();
        assert.deepEqual([e.action.length, e.label.length, e.path.length], [128, 512, 1024]);
      });
    });

    describe('the markup on its own', () => {
      it('sends the first data-journey in document order once, as a page event', () => {
        const p = open({
          body: [
            el('div', {}, el('p', { 'data-journey': 'apply-passport:stage:start' })),
            el('p', { 'data-journey': 'apply-passport:stage:second' }),
          ],
        });
        p.clock.advance(5000);
        assert.deepEqual(pick(p.events(), 'category', 'action', 'label', 'kind', 'path'), [
          { category: 'apply-passport', action: 'stage', label: 'start', kind: 'page', path: '/apply/start' },
        ]);
      });

      it('waits for the DOM when loaded while the page is still parsing', () => {
        const p = open({ readyState: 'loading', body: [el('main', { 'data-journey': 'svc:stage:start' })] });
        p.clock.advance(5000);
        assert.deepEqual(p.events(), []);
        p.ready();
        p.clock.advance(1000);
        assert.deepEqual(pick(p.events(), 'label'), [{ label: 'start' }]);
      });

      it('sends nothing for a page without data-journey, or with an empty one', () => {
        for (const body of [[el('main', {})], [el('main', { 'data-journey': '' })]]) {
          const p = open({ body });
          p.pagehide();
          assert.deepEqual(p.events(), []);
        }
      });

      it('sends a data-journey-click for a click on the element or anything inside it', () => {
        const icon = el('span', { class: 'icon' });
        const link = el('a', { 'data-journey-click': 'apply-passport:help:info' }, el('b', {}, icon));
        const p = open({ body: [link, el('p', {}, el('a', { href: '#' }))] });
        p.click(icon);
        p.click(link);
        p.click(p.find((e) => e.getAttribute('href') === '#')); // not tracked
        p.clock.advance(1000);
        assert.deepEqual(pick(p.events(), 'category', 'action', 'label', 'kind'), [
          { category: 'apply-passport', action: 'help', label: 'info', kind: 'click' },
          { category: 'apply-passport', action: 'help', label: 'info', kind: 'click' },
        ]);
      });

      it('sends every enclosing data-journey-click, innermost first, like handlers on each', () => {
        const inner = el('button', { 'data-journey-click': 'svc:help:inner' });
        const p = open({ body: [el('section', { 'data-journey-click': 'svc:help:outer' }, inner)] });
        p.click(inner);
        p.perfplat.flush();
        assert.deepEqual(pick(p.events(), 'label'), [{ label: 'inner' }, { label: 'outer' }]);
      });

      it('counts clicks on elements added after load, and a numeric id (a Stageprompt crash)', () => {
        const p = open();
        const later = el('a', { 'data-journey-click': 42 });
        p.root.children[1].children.push(later);
        later.parentNode = p.root.children[1];
        p.click(later);
        p.perfplat.flush();
        assert.deepEqual(pick(p.events(), 'category', 'kind'), [{ category: '42', kind: 'click' }]);
      });
    });

    describe('alongside an unmodified Stageprompt', () => {
      const markup = () => [
        el('main', { 'data-journey': 'apply-passport:stage:start' }),
        el('a', { 'data-journey-click': 'apply-passport:help:info' }),
      ];

      it('sends each event once: the page event from the markup, the clicks from Stageprompt', () => {
        const p = open({ body: markup() });
        const sp = fakeStageprompt(p);
        sp.setup(p.perfplat.stagepromptCallback); // the one changed line on the page
        p.click(p.find((e) => e.tagName === 'A'));
        p.click(p.find((e) => e.tagName === 'A'));
        p.clock.advance(1000);
        assert.deepEqual(pick(p.events(), 'label', 'kind'), [
          { label: 'start', kind: 'page' },
          { label: 'info', kind: 'click' },
          { label: 'info', kind: 'click' },
        ]);
      });

      it('takes the page event from Stageprompt when it calls back before the markup is read', () => {
        const p = open({ readyState: 'loading', body: markup() });
        const sp = fakeStageprompt(p);
        sp.setup(p.perfplat.stagepromptCallback);
        p.ready();
        p.clock.advance(1000);
        assert.deepEqual(pick(p.events(), 'label', 'kind'), [{ label: 'start', kind: 'page' }]);
      });

      it('a click whose id equals the page journey is a click, not the page event again', () => {
        const p = open({
          body: [
            el('main', { 'data-journey': 'svc:stage:start' }),
            el('a', { 'data-journey-click': 'svc:stage:start' }),
          ],
        });
        const sp = fakeStageprompt(p);
        sp.setup(p.perfplat.stagepromptCallback);
        p.click(p.find((e) => e.tagName === 'A'));
        p.perfplat.flush();
        assert.deepEqual(pick(p.events(), 'label', 'kind'), [
          { label: 'start', kind: 'page' },
          { label: 'start', kind: 'click' },
        ]);
      });

      it('an empty data-journey-click is never the page event of an empty data-journey', () => {
        const p = open({
          body: [
            el('main', { 'data-journey': '' }),
            el('a', { 'data-journey-click': '' }),
            el('button', { 'data-journey-click': 'svc:help:info' }),
          ],
        });
        const cb = p.perfplat.stagepromptCallback;
        // what Stageprompt's handlers pass for those two clicks (nothing at set-up: the page's
        // data-journey is empty)
        cb('');
        cb('svc', 'help', 'info');
        p.perfplat.flush();
        assert.deepEqual(pick(p.events(), 'category', 'action', 'label', 'kind'), [
          { category: 'svc', action: 'help', label: 'info', kind: 'click' },
        ]);
      });

      it("the callback's signature is Stageprompt's: one, two or three arguments", () => {
        const p = open();
        const cb = p.perfplat.stagepromptCallback;
        cb('svc');
        cb('svc', 'help');
        cb('svc', 'help', 'info:more');
        p.perfplat.flush();
        assert.deepEqual(pick(p.events(), 'category', 'action', 'label', 'kind'), [
          { category: 'svc', kind: 'click' },
          { category: 'svc', action: 'help', kind: 'click' },
          { category: 'svc', action: 'help', label: 'info:more', kind: 'click' },
        ]);
      });
    });

    describe('each click sent once, whichever listener runs first', () => {
      // Two clicks on one help link, one on another, one on a button inside a bound section.
      const markup = (journey) => [
        el('main', journey ? { 'data-journey': journey } : {}),
        el('button', { id: 'eligibility', 'data-journey-click': 'svc:help:eligibility' }),
        el('a', { id: 'fees', 'data-journey-click': 'svc:help:fees' }),
        el(
          'section',
          { 'data-journey-click': 'svc:help:outer' },
          el('button', { id: 'inner', 'data-journey-click': 'svc:help:inner' }),
        ),
      ];
      const clickAll = (p) => {
        for (const id of ['eligibility', 'eligibility', 'fees', 'inner']) p.click(p.find((e) => e.attrs.id === id));
      };
      const CLICKS = ['eligibility', 'eligibility', 'fees', 'inner', 'outer'].map((label) => ({
        label,
        kind: 'click',
      }));
      const sentOnce = (p) => {
        p.clock.advance(1000);
        const events = p.events();
        assert.equal(new Set(events.map((e) => e.id)).size, events.length);
        return pick(events, 'label', 'kind');
      };

      it('on a page of its own, a page handler that stops the click hiding nothing', () => {
        const p = open({ body: markup('svc:stage:start') });
        p.find((e) => e.attrs.id === 'fees').addEventListener('click', (event) => event.stopPropagation());
        clickAll(p);
        assert.deepEqual(sentOnce(p), [{ label: 'start', kind: 'page' }, ...CLICKS]);
      });

      for (const order of ['after', 'before']) {
        describe(`Stageprompt's handlers ${order} the script's own`, () => {
          it('on a page with data-journey', () => {
            const p = open({ body: markup('svc:stage:start') });
            fakeStageprompt(p, { order }).setup(p.perfplat.stagepromptCallback);
            clickAll(p);
            assert.deepEqual(sentOnce(p), [{ label: 'start', kind: 'page' }, ...CLICKS]);
          });

          it('on a page without data-journey (its first callback is a click)', () => {
            const p = open({ body: markup(null) });
            fakeStageprompt(p, { order }).setup(p.perfplat.stagepromptCallback);
            clickAll(p);
            assert.deepEqual(sentOnce(p), CLICKS);
          });

          it('a click before Stageprompt is set up is sent by the script, later ones by Stageprompt', () => {
            const p = open({ body: markup(null) });
            p.click(p.find((e) => e.attrs.id === 'fees'));
            p.clock.advance(0); // the next task
            fakeStageprompt(p, { order }).setup(p.perfplat.stagepromptCallback);
            clickAll(p);
            assert.deepEqual(sentOnce(p), [{ label: 'fees', kind: 'click' }, ...CLICKS]);
          });
        });
      }

      it('a click the script sent itself is forgotten once its task is over', () => {
        // An element Stageprompt did not bind (added after its setup) is clicked first, so the
        // script sends it; a later click on a bound one with the same id is Stageprompt's (its
        // callback first, here), and must not be taken for the one already sent.
        const p = open({ body: markup(null) });
        fakeStageprompt(p, { order: 'before' }).setup(p.perfplat.stagepromptCallback);
        const later = el('a', { 'data-journey-click': 'svc:help:fees' });
        later.parentNode = p.find((e) => e.tagName === 'MAIN');
        later.parentNode.children.push(later);
        p.click(later);
        p.clock.advance(0);
        p.click(p.find((e) => e.attrs.id === 'fees'));
        assert.deepEqual(sentOnce(p), [
          { label: 'fees', kind: 'click' },
          { label: 'fees', kind: 'click' },
        ]);
      });
    });

    describe('batching and flushing', () => {
      it('collects events for a second, then sends them in one request', () => {
        const p = open();
        p.perfplat.track('svc', 'stage', 'one');
        p.clock.advance(600);
        p.perfplat.track('svc', 'stage', 'two');
        p.clock.advance(399);
        assert.equal(p.sent.beacons.length, 0);
        p.clock.advance(1);
        assert.equal(p.sent.beacons.length, 1);
        assert.deepEqual(pick(p.sent.beacons[0].events, 'label'), [{ label: 'one' }, { label: 'two' }]);
        p.clock.advance(10_000);
        assert.equal(p.sent.beacons.length, 1);
      });

      it('sends at once when 20 events are waiting', () => {
        const p = open();
        for (let i = 0; i < 21; i++) p.perfplat.track('svc', 'stage', String(i));
        assert.deepEqual(
          p.sent.beacons.map((b) => b.events.length),
          [20],
        );
        p.clock.advance(1000);
        assert.deepEqual(
          p.sent.beacons.map((b) => b.events.length),
          [20, 1],
        );
      });

      it('flushes on pagehide and when the page is hidden, not when it is shown', () => {
        const p = open();
        p.perfplat.track('svc', 'stage', 'a');
        p.pagehide();
        assert.equal(p.sent.beacons.length, 1);
        p.perfplat.track('svc', 'stage', 'b');
        p.show();
        assert.equal(p.sent.beacons.length, 1);
        p.hide();
        assert.equal(p.sent.beacons.length, 2);
        p.clock.advance(5000);
        assert.equal(p.sent.beacons.length, 2); // the batch timer went with the flush
      });

      it('perfplat.flush() sends now, and nothing when nothing waits', () => {
        const p = open();
        p.perfplat.flush();
        assert.equal(p.sent.beacons.length, 0);
        p.perfplat.track('svc');
        p.perfplat.flush();
        assert.equal(p.sent.beacons.length, 1);
      });

      it('gives every event its own id, fit for the server', () => {
        const p = open();
        for (let i = 0; i < 20; i++) p.perfplat.track('svc');
        const ids = p.events().map((e) => e.id);
        assert.equal(new Set(ids).size, 20);
        for (const id of ids) assert.match(id, /^[A-Za-z0-9_.:-]{1,64}$/);
      });
    });

    describe('event age (the server takes arrival minus age_ms: no visitor clock is trusted)', () => {
      it('sends how long ago each event happened, in whole ms on the monotonic clock', () => {
        const p = open();
        p.clock.advance(5000);
        p.perfplat.track('svc', 'stage', 'a');
        p.clock.advance(300);
        p.perfplat.track('svc', 'stage', 'b');
        p.clock.advance(1000); // the batch timer: 1 s after the first event
        assert.deepEqual(pick(p.events(), 'label', 'age_ms'), [
          { label: 'a', age_ms: 1000 },
          { label: 'b', age_ms: 700 },
        ]);
        for (const e of p.events()) assert.ok(!('at' in e) && !('ts' in e), JSON.stringify(e));
      });

      it('a retry carries the same id and an age larger by the time between the sends', async () => {
        const p = open({ beacon: null, fetch: ((n) => () => (n++ < 2 ? 503 : 202))(0) });
        p.run('Math.random = () => 1'); // backoff of exactly 1 s, then 2 s
        p.perfplat.track('svc', 'stage', 'a');
        p.clock.advance(250);
        p.perfplat.flush();
        await settle();
        p.clock.advance(1000);
        await settle();
        p.clock.advance(2000);
        await settle();
        assert.deepEqual(
          p.sent.fetches.map((f) => f.events.map((e) => e.age_ms)),
          [[250], [1250], [3250]],
        );
        assert.equal(new Set(p.sent.fetches.map((f) => f.events[0].id)).size, 1);
      });

      it('the GIF pixel carries age_ms in its query, as a retry handed to it later does', async () => {
        let fetchWorks = true;
        const p = open({ beacon: null, fetch: () => { if (fetchWorks) return 503; throw new TypeError('blocked'); } });
        p.run('Math.random = () => 1');
        p.perfplat.track('svc', 'stage', 'a:b & c');
        p.clock.advance(1000); // the batch: by fetch, refused
        await settle();
        fetchWorks = false;
        p.clock.advance(1000); // the retry: fetch throws, so the pixel
        assert.equal(p.sent.pixels.length, 1);
        const query = new URL(p.sent.pixels[0]).searchParams;
        assert.equal(query.get('age_ms'), '2000');
        assert.equal(query.get('id'), p.sent.fetches[0].events[0].id);
        assert.equal(query.get('label'), 'a:b & c');
        assert.ok(!query.has('at') && !query.has('ts'));
      });

      it('without performance.now it measures on Date.now, and never sends a negative age', () => {
        let wall = 1_700_000_000_000;
        const p = open({ globals: { performance: undefined, Date: { now: () => wall } } });
        p.perfplat.track('svc', 'stage', 'a');
        wall += 1234;
        p.perfplat.track('svc', 'stage', 'b');
        wall -= 60_000; // the visitor's clock set back
        p.perfplat.flush();
        p.perfplat.track('svc', 'stage', 'c');
        wall += 42;
        p.perfplat.flush();
        assert.deepEqual(pick(p.events(), 'label', 'age_ms'), [
          { label: 'a', age_ms: 0 },
          { label: 'b', age_ms: 0 },
          { label: 'c', age_ms: 42 },
        ]);
      });
    });

    describe('transports', () => {
      it('sendBeacon to data-endpoint with a text body (sent as text/plain): a JSON array', () => {
        const p = open({
          script: { src: '/beacon.js', 'data-service': 's', 'data-endpoint': 'https://in.example/beacon' },
        });
        p.perfplat.track('svc', 'stage', 'start');
        p.perfplat.flush();
        const [b] = p.sent.beacons;
        assert.equal(b.url, 'https://in.example/beacon');
        assert.equal(typeof b.body, 'string');
        assert.ok(Array.isArray(JSON.parse(b.body)));
        assert.deepEqual(Object.keys(b.events[0]).sort(), [
          'action', 'age_ms', 'category', 'id', 'kind', 'label', 'path',
        ]);
      });

      it("the endpoint defaults to the script's own origin", () => {
        const p = open({ script: { src: 'https://perf.example:8443/static/beacon.js' } });
        p.perfplat.track('svc');
        p.perfplat.flush();
        assert.equal(p.sent.beacons[0].url, 'https://perf.example:8443/beacon');
      });

      const viaFetch = [
        ['sendBeacon refuses the data', { beacon: () => false }],
        ['sendBeacon throws', { beacon: () => { throw new Error('quota'); } }],
        ['there is no sendBeacon', { beacon: null }],
      ];
      for (const [why, options] of viaFetch) {
        it(`falls back to fetch with keepalive when ${why}`, () => {
          const p = open(options);
          p.perfplat.track('svc', 'stage', 'start');
          p.perfplat.flush();
          assert.equal(p.sent.fetches.length, 1);
          const { url, init } = p.sent.fetches[0];
          assert.equal(url, 'https://perf.example/beacon');
          assert.equal(init.method, 'POST');
          assert.equal(init.keepalive, true);
          assert.equal(init.credentials, 'omit');
          assert.equal(init.headers['Content-Type'], 'text/plain;charset=UTF-8');
          assert.deepEqual(pick(JSON.parse(init.body), 'category', 'label'), [{ category: 'svc', label: 'start' }]);
          assert.equal(p.sent.pixels.length, 0);
        });
      }

      for (const [why, options] of [
        ['neither sendBeacon nor fetch exist', { beacon: null, fetch: null }],
        ['fetch throws', { beacon: () => false, fetch: () => { throw new TypeError('blocked'); } }],
      ]) {
        it(`falls back to one GIF pixel per event when ${why}`, () => {
          const p = open(options);
          p.perfplat.track('svc', 'stage', 'a:b & c');
          p.perfplat.track('svc', 'help');
          p.perfplat.flush();
          assert.equal(p.sent.pixels.length, 2);
          const first = new URL(p.sent.pixels[0]);
          assert.equal(first.origin + first.pathname, 'https://perf.example/beacon.gif');
          assert.deepEqual(
            pick(p.events(), 'category', 'action', 'label', 'kind', 'path'),
            [
              { category: 'svc', action: 'stage', label: 'a:b & c', kind: 'click', path: '/apply/start' },
              { category: 'svc', action: 'help', kind: 'click', path: '/apply/start' },
            ],
          );
        });
      }
    });

    describe('retry queue', () => {
      const failing = (statuses) => {
        let n = 0;
        return {
          beacon: null,
          fetch: () => {
            const s = statuses[Math.min(n++, statuses.length - 1)];
            return s === 'network' ? Promise.reject(new TypeError('Failed to fetch')) : s;
          },
        };
      };
      const lastDelay = (p) => p.clock.delays.at(-1);

      it('retries a 503 with backoff, with the same ids, until it is accepted', async () => {
        const p = open(failing([503, 503, 202]));
        p.perfplat.track('svc', 'stage', 'a');
        p.perfplat.flush();
        await settle();
        const first = lastDelay(p);
        assert.ok(first >= 500 && first <= 1000, `first retry after ${first} ms`);
        p.clock.advance(first);
        assert.equal(p.sent.fetches.length, 2);
        await settle();
        const second = lastDelay(p);
        assert.ok(second >= 1000 && second <= 2000, `second retry after ${second} ms`);
        p.clock.advance(second);
        await settle();
        assert.equal(p.sent.fetches.length, 3);
        p.clock.advance(120_000);
        await settle();
        assert.equal(p.sent.fetches.length, 3);
        const ids = p.sent.fetches.map((f) => f.events.map((e) => e.id).join());
        assert.equal(new Set(ids).size, 1);
      });

      for (const failure of ['network', 429, 500]) {
        it(`retries after ${failure === 'network' ? 'a network error' : `a ${failure}`}`, async () => {
          const p = open(failing([failure, 202]));
          p.perfplat.track('svc');
          p.perfplat.flush();
          await settle();
          p.clock.advance(1000);
          await settle();
          assert.equal(p.sent.fetches.length, 2);
        });
      }

      for (const status of [400, 413, 415]) {
        it(`does not retry a ${status}: the same events would be refused again`, async () => {
          const p = open(failing([status]));
          p.perfplat.track('svc');
          p.perfplat.flush();
          await settle();
          p.clock.advance(120_000);
          await settle();
          assert.equal(p.sent.fetches.length, 1);
        });
      }

      it('keeps at most 50 events, the newest, and sends them in batches of 20', async () => {
        let down = true;
        const p = open({ beacon: null, fetch: () => (down ? 503 : 202) });
        for (let i = 0; i < 60; i++) p.perfplat.track('svc', 'n', String(i));
        p.perfplat.flush();
        await settle();
        assert.equal(p.sent.fetches.length, 3); // 20 + 20 + 20, all refused
        down = false;
        p.clock.advance(60_000);
        await settle();
        p.clock.advance(60_000);
        await settle();
        const retried = p.sent.fetches.slice(3).flatMap((f) => f.events.map((e) => Number(e.label)));
        assert.deepEqual(
          p.sent.fetches.slice(3).map((f) => f.events.length),
          [20, 20, 10],
        );
        assert.deepEqual(retried, Array.from({ length: 50 }, (_, i) => i + 10));
      });

      it('backs off up to 30 s and gives up after 8 failed retries', async () => {
        const p = open(failing([503]));
        p.perfplat.track('svc');
        p.perfplat.flush();
        await settle();
        const delays = [];
        for (let i = 0; i < 20; i++) {
          if (!p.clock.timers.size) break;
          delays.push(lastDelay(p));
          p.clock.advance(30_000);
          await settle();
        }
        assert.equal(p.sent.fetches.length, 1 + 8);
        assert.equal(delays.length, 8);
        const caps = [1, 2, 4, 8, 16, 30, 30, 30].map((s) => s * 1000);
        delays.forEach((d, i) => assert.ok(d >= caps[i] / 2 && d <= caps[i], `retry ${i}: ${d} ms`));
        assert.equal(p.clock.timers.size, 0);
      });

      it('spreads retries at random between half and the whole backoff', async () => {
        for (const [random, expected] of [[0, 500], [0.5, 750]]) {
          const p = open(failing([503]));
          p.run(`Math.random = () => ${random}`);
          p.perfplat.track('svc');
          p.perfplat.flush();
          await settle();
          assert.equal(lastDelay(p), expected);
        }
      });

      it('starts the backoff afresh once a retry got through by fetch', async () => {
        const p = open(failing([503, 503, 503, 202, 503]));
        p.run('Math.random = () => 1');
        p.perfplat.track('svc', 'n', 'a');
        p.perfplat.flush();
        await settle();
        for (const wait of [1000, 2000, 4000]) {
          assert.equal(lastDelay(p), wait);
          p.clock.advance(wait);
          await settle();
        }
        assert.equal(p.sent.fetches.length, 4); // the third retry was accepted
        p.perfplat.track('svc', 'n', 'b');
        p.perfplat.flush();
        await settle();
        assert.equal(lastDelay(p), 1000);
      });

      it('starts the backoff afresh once a retry was handed to sendBeacon', async () => {
        let beaconWorks = false;
        const p = open({ beacon: () => beaconWorks, fetch: () => 503 });
        p.run('Math.random = () => 1');
        p.perfplat.track('svc', 'n', 'a');
        p.perfplat.flush();
        await settle();
        p.clock.advance(1000); // first retry fails too
        await settle();
        assert.equal(lastDelay(p), 2000);
        beaconWorks = true;
        p.clock.advance(2000); // second retry leaves by sendBeacon
        await settle();
        beaconWorks = false;
        p.perfplat.track('svc', 'n', 'b');
        p.perfplat.flush();
        await settle();
        assert.equal(lastDelay(p), 1000);
      });

      it('hands the retry queue to sendBeacon when the page goes away', async () => {
        let beaconWorks = false;
        const p = open({ beacon: () => beaconWorks, fetch: () => 503 });
        p.perfplat.track('svc', 'stage', 'a');
        p.perfplat.flush();
        await settle();
        beaconWorks = true;
        p.perfplat.track('svc', 'stage', 'b');
        p.pagehide();
        assert.deepEqual(
          p.sent.beacons.filter((b) => b.accepted).map((b) => pick(b.events, 'label')),
          [[{ label: 'b' }], [{ label: 'a' }]],
        );
        assert.equal(p.clock.timers.size, 0);
      });
    });

    describe('never throws into the page', () => {
      it('when JSON.stringify fails: nothing sent, later events still go', () => {
        const p = open();
        p.run('var realStringify = JSON.stringify; JSON.stringify = function () { throw new Error("broken"); }');
        p.perfplat.track('svc', 'stage', 'lost');
        assert.doesNotThrow(() => p.perfplat.flush());
        assert.doesNotThrow(() => p.pagehide());
        p.run('JSON.stringify = realStringify');
        p.perfplat.track('svc', 'stage', 'kept');
        p.perfplat.flush();
        assert.deepEqual(pick(p.events(), 'label'), [{ label: 'kept' }]);
      });

      it('when every transport throws, or none exists', () => {
        for (const options of [
          { beacon: () => { throw new Error('a'); }, fetch: () => { throw new Error('b'); }, image: false },
          { beacon: null, fetch: null, image: false },
        ]) {
          const p = open(options);
          assert.doesNotThrow(() => {
            p.perfplat.track('svc');
            p.perfplat.flush();
            p.pagehide();
          });
        }
      });

      it('when one pixel fails, the others still go', () => {
        let calls = 0;
        const p = open({ beacon: null, fetch: null });
        p.window.Image = class {
          set src(value) {
            if (calls++ === 0) throw new Error('blocked by an extension');
            p.sent.pixels.push(value);
          }
        };
        p.perfplat.track('svc', 'n', 'a');
        p.perfplat.track('svc', 'n', 'b');
        assert.doesNotThrow(() => p.perfplat.flush());
        assert.deepEqual(pick(p.events(), 'label'), [{ label: 'b' }]);
      });

      it('when the arguments are strange', () => {
        const p = open();
        const evil = { toString() { throw new Error('no'); } };
        assert.doesNotThrow(() => {
          p.perfplat.track(evil);
          p.perfplat.track('svc', evil);
          p.perfplat.track();
          p.perfplat.stagepromptCallback();
          p.perfplat.stagepromptCallback(evil, 1, null);
          p.click(null);
          p.click({ nodeType: 3, parentNode: null });
          p.clock.advance(1000);
        });
      });

      it('without configuration: no tag found, events named by the markup go to /beacon', () => {
        const p = open({ script: null, beacon: null, fetch: null, body: [el('main', { 'data-journey': 'svc:stage:start' })] });
        assert.equal(p.perfplat.track(undefined, 'stage', 'x'), false); // no data-service to fall back on
        p.perfplat.flush();
        assert.equal(p.sent.pixels.length, 1);
        assert.match(p.sent.pixels[0], /^\/beacon\.gif\?category=svc&/);
      });

      it('outside a page (no window or no document) it does nothing, quietly', () => {
        const p = page({ globals: { document: undefined } });
        assert.equal(p.load(file), null);
        assert.equal(p.perfplat, undefined);
      });

      it('loaded twice, it counts once', () => {
        const p = open({ body: [el('a', { 'data-journey-click': 'svc:help:x' })] });
        assert.equal(p.load(file), null);
        p.click(p.find((e) => e.tagName === 'A'));
        p.clock.advance(1000);
        assert.equal(p.events().length, 1);
      });
    });

    it('uses no cookies and no storage', async () => {
      const p = open({ beacon: () => false, fetch: () => 503, body: [el('main', { 'data-journey': 'svc:stage:start' })] });
      p.perfplat.track('svc');
      p.clock.advance(1000);
      await settle();
      p.clock.advance(60_000);
      await settle();
      p.pagehide();
      assert.ok(p.sent.fetches.length >= 2);
      assert.deepEqual(p.sent.cookies, []);
      assert.deepEqual(p.sent.storage, []);
    });
  });
}
