/*
 * perfplat beacon: Stageprompt journey events from a service's pages to perfplat's /beacon.
 *
 * One script tag configures it (the endpoint defaults to this script's own origin + /beacon):
 *
 *   <script src="https://host/beacon.js" data-service="apply-passport"
 *           data-endpoint="https://host/beacon" defer></script>
 *
 * On its own it reads the Stageprompt markup: the first `data-journey` in the document on load
 * (kind "page"), and every `data-journey-click` on or around a clicked element (kind "click").
 * Next to an unmodified Stageprompt, pages pass `perfplat.stagepromptCallback` to
 * `GOVUK.performance.stageprompt.setup(...)`; the script then leaves clicks to Stageprompt, and
 * neither a page event already sent from the markup nor a click the script sent itself before
 * Stageprompt's first callback (a page without data-journey) is sent twice.
 *
 * Events are batched for a second (or until BATCH_MAX), then sent as one JSON array: with
 * navigator.sendBeacon as text/plain (no CORS preflight), else fetch with keepalive, else one
 * GIF pixel per event. A fetch that fails (network error, 5xx, 429) puts its events in a small
 * bounded retry queue, retried with backoff; every event carries an id so a retry is not
 * counted twice. Everything pending is sent on pagehide or when the page is hidden.
 *
 * It writes no cookies and no storage: the platform tells visitors apart without identifiers
 * (a salted daily hash at ingest). No clock time is sent (visitors' clocks are wrong): each
 * event records when it happened on a monotonic clock (performance.now(), else Date.now()),
 * and every send (a retry, a pixel too) carries `age_ms`, how long ago that was. The server
 * takes its arrival time minus the age, to the second, so a retry lands on the same time as
 * the first attempt and its id is counted once.
 *
 * Nothing here may throw into the host page: every entry point runs inside `guard`.
 */
(function (win) {
  'use strict';

  var BATCH_MS = 1000; // collect events this long before one request...
  var BATCH_MAX = 20; // ...or until this many are waiting (far below the 64 KB beacon quota)
  var QUEUE_MAX = 50; // retry queue bound, in events; the oldest are dropped first
  var RETRY_MS = 1000; // backoff 1 s, 2 s, 4 s ..., each cut to 50-100% at random: pages spread out
  var RETRY_MAX_MS = 30000;
  var RETRY_LIMIT = 8; // failed attempts in a row before the queue is given up
  var SLUG = /^[A-Za-z0-9][\w-]{0,63}$/; // the server's service slug (it lower-cases)

  try {
    if (!win || !win.document || win.perfplat) return; // not a page, or loaded twice
    var doc = win.document;
    var nav = win.navigator;
    var noop = function () {};

    var guard = function (fn) {
      return function () {
        try {
          return fn.apply(this, arguments);
        } catch (e) {
          return undefined; // never into the host page
        }
      };
    };

    // --- configuration, from this script's own tag ---------------------------------------

    var script = doc.currentScript || doc.querySelector('script[data-service]');
    var attr = function (name) {
      return (script && script.getAttribute(name)) || '';
    };
    var service = attr('data-service');
    var endpoint = attr('data-endpoint');
    if (!endpoint) {
      try {
        endpoint = new URL(script.src, win.location.href).origin + '/beacon';
      } catch (e) {
        endpoint = '/beacon';
      }
    }

    // --- events ------------------------------------------------------------------------------

    // Stageprompt's rule: up to three parts as they are; past three, the rest joined back.
    var split = function (value) {
      var parts = String(value).split(':');
      return parts.length > 3 ? [parts[0], parts[1], parts.slice(2).join(':')] : parts;
    };

    var perf = win.performance;
    var now =
      perf && typeof perf.now === 'function'
        ? function () {
            return perf.now();
          }
        : function () {
            return Date.now();
          };

    var newId = function () {
      var id = Date.now().toString(36);
      var c = win.crypto;
      if (c && c.getRandomValues) {
        var words = c.getRandomValues(new Uint32Array(2));
        return id + '-' + words[0].toString(36) + words[1].toString(36);
      }
      return id + '-' + Math.random().toString(36).slice(2, 14);
    };

    var batch = [];
    var batchTimer = 0;
    var queue = [];
    var retryTimer = 0;
    var fails = 0;

    // The category is the service slug; an empty one falls back to data-service. Fields are
    // cut to the server's limits rather than have the event refused.
    var track = function (category, action, label, kind) {
      var c = category == null || category === '' ? service : String(category);
      if (!SLUG.test(c)) return false;
      var loc = win.location;
      var e = { category: c, kind: kind === 'page' ? 'page' : 'click', id: newId() };
      // when it happened; not enumerable, so neither JSON nor the pixel's query sends it
      Object.defineProperty(e, 'at', { value: now() });
      if (action != null) e.action = String(action).slice(0, 128);
      if (label != null) e.label = String(label).slice(0, 512);
      if (loc && loc.pathname) e.path = String(loc.pathname).slice(0, 1024);
      batch.push(e);
      if (batch.length >= BATCH_MAX) flushBatch();
      else if (!batchTimer) batchTimer = setTimeout(guard(flushBatch), BATCH_MS);
      return true;
    };

    // --- sending -----------------------------------------------------------------------------

    var pixel = function (e) {
      var query = Object.keys(e).map(function (k) {
        return k + '=' + encodeURIComponent(e[k]);
      });
      new win.Image().src = endpoint + '.gif?' + query.join('&');
    };

    var retryLater = function (events) {
      queue = queue.concat(events).slice(-QUEUE_MAX);
      scheduleRetry();
    };

    var scheduleRetry = function () {
      if (retryTimer || !queue.length) return;
      if (fails >= RETRY_LIMIT) {
        queue = []; // the endpoint stays down: stop knocking
        fails = 0;
        return;
      }
      var delay = Math.min(RETRY_MAX_MS, RETRY_MS * Math.pow(2, fails));
      fails++;
      retryTimer = setTimeout(
        guard(function () {
          retryTimer = 0;
          if (send(queue.splice(0, BATCH_MAX))) fails = 0; // handed to the browser for good
          scheduleRetry(); // what is left after this chunk
        }),
        delay / 2 + (Math.random() * delay) / 2
      );
    };

    var sent = function (res) {
      if (res.status >= 500 || res.status === 429) return retryLater(this);
      if (res.ok) fails = 0;
      // any other 4xx is the event's fault (the server names it): a retry would fail alike
    };

    // True when the events left for good (beacon or pixel); false when a fetch is answering
    // later (its failure goes to the retry queue) or when nothing could be sent.
    var send = function (events) {
      if (!events.length) return false;
      var t = now();
      events.forEach(function (e) {
        e.age_ms = Math.max(0, Math.round(t - e.at)); // afresh for each attempt
      });
      var body;
      try {
        body = JSON.stringify(events);
      } catch (e) {
        return false; // not serialisable (a page that broke JSON): nothing sensible to send
      }
      if (typeof body !== 'string') return false;
      if (nav && typeof nav.sendBeacon === 'function') {
        try {
          if (nav.sendBeacon(endpoint, body)) return true; // a string body goes as text/plain
        } catch (e) {
          // fall through to fetch
        }
      }
      if (typeof win.fetch === 'function') {
        try {
          win
            .fetch(endpoint, {
              method: 'POST',
              body: body,
              headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
              keepalive: true,
              credentials: 'omit',
              mode: 'cors'
            })
            .then(guard(sent.bind(events)), guard(retryLater.bind(null, events)))
            .catch(noop);
          return false;
        } catch (e) {
          // fall through to the pixel
        }
      }
      events.forEach(guard(pixel));
      return true;
    };

    var flushBatch = function () {
      clearTimeout(batchTimer);
      batchTimer = 0;
      send(batch.splice(0));
    };

    // Everything pending, the retry queue too: the page may be going away.
    var flush = function () {
      flushBatch();
      clearTimeout(retryTimer);
      retryTimer = 0;
      var pending = queue;
      queue = [];
      for (var i = 0; i < pending.length; i += BATCH_MAX) send(pending.slice(i, i + BATCH_MAX));
    };

    // --- the markup, and Stageprompt ---------------------------------------------------------

    var pageSent = false;
    var viaStageprompt = false;
    // Clicks the script sent itself in the current task, until a 0 ms timer after it. A click
    // reaches the capture listener below before Stageprompt's handlers on the elements: on a
    // page without data-journey, Stageprompt's first callback comes in the same task, for a
    // click already sent.
    var ownClicks = [];
    var ownClicksTimer = 0;

    var pageJourney = function () {
      var el = doc.querySelector('[data-journey]');
      return el ? el.getAttribute('data-journey') : null;
    };

    var trackParts = function (value, kind) {
      var p = split(value);
      return track(p[0], p[1], p[2], kind);
    };

    var onReady = function () {
      var journey = pageJourney();
      if (journey && !pageSent) {
        pageSent = true;
        trackParts(journey, 'page');
      }
    };

    // Delegated, in the capture phase: elements added later count, and a page handler that
    // stops propagation does not hide the click. Like Stageprompt's handler on every element,
    // nested data-journey-click elements each send their event.
    var onClick = function (event) {
      if (viaStageprompt) return; // Stageprompt binds the clicks itself
      for (var el = event && event.target; el; el = el.parentNode) {
        var value = el.getAttribute && el.getAttribute('data-journey-click');
        // an empty one says nothing, as in Stageprompt
        if (value && trackParts(value, 'click')) ownClicks.push(value);
      }
      if (ownClicks.length && !ownClicksTimer) {
        ownClicksTimer = setTimeout(
          guard(function () {
            ownClicks = [];
            ownClicksTimer = 0;
          }),
          0
        );
      }
    };

    // Stageprompt's setup calls back at once for the page's data-journey, then once per click.
    var stagepromptCallback = function (category, action, label) {
      var first = !viaStageprompt;
      viaStageprompt = true;
      var args = [category, action, label].filter(function (a) {
        return a !== undefined;
      });
      var value = args.join(':'); // Stageprompt's split, undone
      if (!value) return true; // an empty data-journey-click says nothing, as without Stageprompt
      var own = ownClicks.indexOf(value);
      if (own >= 0) {
        ownClicks.splice(own, 1); // this very click, sent by the listener above
        return true;
      }
      if (first && value === pageJourney()) {
        if (pageSent) return true; // already sent from the markup
        pageSent = true;
        return track(category, action, label, 'page');
      }
      return track(category, action, label, 'click');
    };

    win.perfplat = {
      track: guard(track),
      stagepromptCallback: guard(stagepromptCallback),
      flush: guard(flush)
    };

    doc.addEventListener('click', guard(onClick), true);
    doc.addEventListener(
      'visibilitychange',
      guard(function () {
        if (doc.visibilityState === 'hidden') flush();
      })
    );
    win.addEventListener('pagehide', guard(flush));
    if (doc.readyState === 'loading') doc.addEventListener('DOMContentLoaded', guard(onReady));
    else onReady();
  } catch (e) {
    // never into the host page
  }
})(typeof window !== 'undefined' ? window : undefined);
