// mergegate status page: swap in the live part as the queue moves, no page reload.
// Without JavaScript the server-rendered page is complete; this only keeps it fresh.
// It does not poll: it asks for the live part after the change-feed cursor it
// has, and the server answers once the log moved past it, or after the refresh
// interval (elapsed times and an integrator's silence change without a move).
(function () {
  "use strict";
  var every = parseInt(document.body.getAttribute("data-refresh-ms"), 10) || 2000;
  var cursor = document.body.getAttribute("data-cursor");
  var state = document.getElementById("live-state");
  var live = document.getElementById("live");
  var query = new URLSearchParams(window.location.search);
  query.set("part", "live");
  // /?wait=0: the server answers at once, so this polls every refresh instead.
  var holds = query.get("wait") !== "0";

  function url() {
    if (cursor !== null) {
      query.set("after", cursor);
    }
    return window.location.pathname + "?" + query.toString();
  }

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
    // The server waited for us when it knows the feed; otherwise wait here.
    var next = every;
    fetch(url(), { cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        var head = response.headers.get("X-Mergegate-Cursor");
        if (head !== null && cursor !== null) {
          cursor = head;
          if (holds) {
            next = 50;
          }
        }
        return response.text();
      })
      .then(function (html) {
        var open = openDetails();
        live.innerHTML = html;
        restore(open);
        state.textContent =
          "Live: updated " +
          clock() +
          " UTC, " +
          (holds && cursor !== null ? "on every move (at least every " : "every ") +
          every / 1000 +
          (holds && cursor !== null ? " s)" : " s");
        state.className = "live-state ok";
      })
      .catch(function (err) {
        next = every;
        state.textContent = "Connection lost (" + err.message + "); retrying";
        state.className = "live-state lost";
      })
      .finally(function () {
        window.setTimeout(tick, next);
      });
  }

  state.textContent = "Live: connecting";
  tick();
})();
