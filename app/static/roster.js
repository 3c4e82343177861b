/* Live roster: poll the same-origin changes endpoint and swap in new rows (no inline script:
   the CSP forbids it). Without JavaScript the page's Refresh link does the same job. */
(function () {
  "use strict";
  var root = document.getElementById("roster");
  if (!root || !window.fetch) { return; }
  var url = root.getAttribute("data-changes-url");
  var marker = root.getAttribute("data-marker");
  var firstPage = root.getAttribute("data-first-page") === "1";
  var rows = document.getElementById("rows");
  var note = document.getElementById("live-note");
  var INTERVAL = 2000;

  function checkedIds() {
    var ids = {};
    rows.querySelectorAll("input[name=ids]:checked").forEach(function (box) { ids[box.value] = true; });
    return ids;
  }

  function apply(data) {
    if (data.counts) {
      var total = 0;
      Object.keys(data.counts).forEach(function (status) {
        total += data.counts[status];
        var el = root.querySelector('[data-count="' + status + '"]');
        if (el) { el.textContent = data.counts[status]; }
      });
      var all = root.querySelector('[data-count="all"]');
      if (all) { all.textContent = total; }
    }
    if (firstPage && typeof data.rows === "string") {
      var keep = checkedIds();
      rows.innerHTML = data.rows;
      rows.querySelectorAll("input[name=ids]").forEach(function (box) { box.checked = !!keep[box.value]; });
    }
    if (note) { note.hidden = false; }
  }

  function poll() {
    var sep = url.indexOf("?") < 0 ? "?" : "&";
    fetch(url + sep + "marker=" + encodeURIComponent(marker), {
      credentials: "same-origin", headers: { "Accept": "application/json" }
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (data) {
      if (!data) { return; }
      marker = data.marker;
      if (data.changed) { apply(data); }
    }).catch(function () { /* offline for a moment: try again next tick */ })
      .then(function () { window.setTimeout(poll, INTERVAL); });
  }

  window.setTimeout(poll, INTERVAL);
}());
