// mergegate status page: swap in the live part every few seconds, no page reload.
// Without JavaScript the server-rendered page is complete; this only keeps it fresh.
(function () {
  "use strict";
  var every = parseInt(document.body.getAttribute("data-refresh-ms"), 10) || 2000;
  var state = document.getElementById("live-state");
  var live = document.getElementById("live");
  var query = new URLSearchParams(window.location.search);
  query.set("part", "live");
  var url = window.location.pathname + "?" + query.toString();

  function clock() {
    return new Date().toISOString().slice(11, 19);
  }

  // A reader who opened a follow-up file keeps it open across refreshes.
  function openDetails() {
    var open = {};
    live.querySelectorAll("details").forEach(function (d) {
      var article = d.closest("article");
      open[(article ? article.id : "") + "/" + d.querySelector("summary").textContent] = d.open;
    });
    return open;
  }

  function restore(open) {
    live.querySelectorAll("details").forEach(function (d) {
      var article = d.closest("article");
      var key = (article ? article.id : "") + "/" + d.querySelector("summary").textContent;
      if (key in open) {
        d.open = open[key];
      }
    });
  }

  function tick() {
    fetch(url, { cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        var open = openDetails();
        live.innerHTML = html;
        restore(open);
        state.textContent = "Live: updated " + clock() + " UTC, every " + every / 1000 + " s";
        state.className = "live-state ok";
      })
      .catch(function (err) {
        state.textContent = "Connection lost (" + err.message + "); retrying";
        state.className = "live-state lost";
      })
      .finally(function () {
        window.setTimeout(tick, every);
      });
  }

  state.textContent = "Live: connecting";
  tick();
})();
