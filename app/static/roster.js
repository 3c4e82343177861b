/* Live roster: poll the same-origin changes endpoint and announce what changed (no inline
   script: the CSP forbids it). Rows never move by themselves: an official may be aiming at a
   row's Approve. New rows wait behind the "N new applications — show" button; without
   JavaScript the page's Refresh link does the same job. */
(function () {
  "use strict";
  var root = document.getElementById("roster");
  if (!root || !window.fetch) { return; }
  var url = root.getAttribute("data-changes-url");
  var marker = root.getAttribute("data-marker");
  var firstPage = root.getAttribute("data-first-page") === "1";
  var rows = document.getElementById("rows");
  var show = document.getElementById("live-show");
  var refresh = document.getElementById("refresh");
  var waiting = null;  // the newest rows' HTML, shown only when asked for
  var INTERVAL = 2000;

  function idsIn(container) {
    return Array.prototype.map.call(container.querySelectorAll("tr[data-id]"), function (tr) {
      return tr.getAttribute("data-id");
    });
  }

  function updateCounts(counts) {
    var total = 0;
    Object.keys(counts).forEach(function (status) {
      total += counts[status];
      var el = root.querySelector('[data-count="' + status + '"]');
      if (el) { el.textContent = counts[status]; }
    });
    var all = root.querySelector('[data-count="all"]');
    if (all) { all.textContent = total; }
  }

  function announce(html) {
    var scratch = document.createElement("tbody");
    scratch.innerHTML = html;
    var shown = idsIn(rows), fresh = idsIn(scratch);
    var added = fresh.filter(function (id) { return shown.indexOf(id) < 0; }).length;
    if (!added && fresh.join() === shown.join() && rows.innerHTML === scratch.innerHTML) { return; }
    waiting = html;
    document.getElementById("live-n").textContent = added ? String(added) : "";
    show.querySelector('[data-news="new"]').hidden = !added;
    show.querySelector('[data-news="changed"]').hidden = !!added;
    show.hidden = false;
    if (refresh) { refresh.hidden = true; }
  }

  function showWaiting() {
    if (waiting === null) { return; }
    var keep = {};
    rows.querySelectorAll("input[name=ids]:checked").forEach(function (box) { keep[box.value] = true; });
    rows.innerHTML = waiting;
    rows.querySelectorAll("input[name=ids]").forEach(function (box) { box.checked = !!keep[box.value]; });
    waiting = null;
    show.hidden = true;
    if (refresh) { refresh.hidden = false; }
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
      if (!data.changed) { return; }
      if (data.counts) { updateCounts(data.counts); }
      if (firstPage && typeof data.rows === "string") { announce(data.rows); }
    }).catch(function () { /* offline for a moment: try again next tick */ })
      .then(function () { window.setTimeout(poll, INTERVAL); });
  }

  // Enter in a field of the bulk form submits nothing at all (without JavaScript a checkbox's
  // Enter reaches the decide-nothing button, which reloads the page and decides no one).
  var bulk = document.getElementById("bulk-decide");
  if (bulk) {
    bulk.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && event.target.tagName !== "BUTTON") { event.preventDefault(); }
    });
  }
  show.addEventListener("click", showWaiting);
  window.setTimeout(poll, INTERVAL);
}());
