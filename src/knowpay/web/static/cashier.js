// The cashier's live parts: the countdown to expiry and the status poll. Without script
// the page still shows the expiry time and a link to refresh.
(function () {
  "use strict";
  var root = document.getElementById("cashier");
  if (!root) { return; }
  var state = root.getAttribute("data-state");
  // This page again, in the language a `?lang` link asked for (the rest of the query, such
  // as an error shown once, is not repeated).
  function here() {
    var lang = new URLSearchParams(window.location.search).get("lang");
    return window.location.pathname + (lang ? "?lang=" + encodeURIComponent(lang) : "");
  }
  var go = root.getAttribute("data-go-url");
  if (go && state === "pending") {
    window.location.assign(go);  // on to the gateway's own page
    return;
  }
  var left = parseInt(root.getAttribute("data-seconds-left") || "0", 10);
  var countdown = document.getElementById("countdown");
  var deadline = Date.now() + left * 1000;

  function two(n) { return (n < 10 ? "0" : "") + n; }
  function tick() {
    var seconds = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    if (countdown) {
      var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
      countdown.textContent = (h > 0 ? h + ":" + two(m) : two(m)) + ":" + two(s);
      countdown.hidden = false;
    }
    if (seconds === 0 && (state === "choose" || state === "pending" || state === "failed")) {
      window.location.replace(here());
      return;
    }
    window.setTimeout(tick, 1000);
  }
  if (countdown) { tick(); }

  var url = root.getAttribute("data-status-url");
  var live = { pending: true, review: true };
  if (!url || !live[state]) { return; }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (body && body.state && body.state !== state) {
          window.location.replace(here());
          return;
        }
        window.setTimeout(poll, 2000);
      })
      .catch(function () { window.setTimeout(poll, 4000); });
  }
  window.setTimeout(poll, 1500);
})();
