/* Export progress: while a job runs, poll the same-origin progress endpoint and redraw the list
   (no inline script: the CSP forbids it). Without JavaScript a <meta refresh> in <noscript>
   reloads the page instead. */
(function () {
  "use strict";
  var root = document.getElementById("exports");
  if (!root || !window.fetch) { return; }
  var url = root.getAttribute("data-progress-url");
  var list = document.getElementById("jobs");
  var INTERVAL = 1500;

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (!body) { return; }
        list.innerHTML = body.rows;
        root.setAttribute("data-running", body.running ? "1" : "0");
        if (body.running) { window.setTimeout(poll, INTERVAL); }
      })
      .catch(function () { window.setTimeout(poll, INTERVAL * 4); });
  }

  if (root.getAttribute("data-running") === "1") { window.setTimeout(poll, INTERVAL); }
}());
