/* perfplat dashboards: live "users now". Each [data-live-users] element subscribes to its
   Server-Sent Events stream (data-stream) and shows every new figure; where EventSource is
   missing or the stream fails for good, it polls data-poll every data-poll-ms instead. The page
   works without this script: it only keeps the server-rendered figure current. */
(function () {
  "use strict";
  function fmt(n) { return Number(n).toLocaleString("en-GB"); }
  function clock() { return new Date().toISOString().slice(11, 19) + " UTC"; }

  function start(el) {
    var count = el.querySelector("[data-live-count]");
    var status = el.querySelector("[data-live-status]");
    var pollMs = parseInt(el.getAttribute("data-poll-ms"), 10) || 5000;
    var polling = false;
    function show(n, how) {
      if (typeof n !== "number") return;
      count.textContent = fmt(n);
      status.textContent = "Updated " + clock() + " (" + how + ").";
      el.setAttribute("data-live-state", how);
    }
    function poll() {
      if (polling) return;
      polling = true;
      var tick = function () {
        fetch(el.getAttribute("data-poll"), { headers: { accept: "application/json" } })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (d) { if (d) show(d.users_now, "polled"); })
          .catch(function () { status.textContent = "Cannot reach the figures; retrying."; })
          .then(function () { setTimeout(tick, pollMs); });
      };
      tick();
    }
    if (!window.EventSource) { poll(); return; }
    var source = new EventSource(el.getAttribute("data-stream"));
    source.addEventListener("figures", function (e) {
      try { show(JSON.parse(e.data).users_now, "live"); } catch (err) { /* a bad frame: keep the last figure */ }
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) { source.close(); poll(); }
    };
  }

  var els = document.querySelectorAll("[data-live-users]");
  for (var i = 0; i < els.length; i++) start(els[i]);
})();
