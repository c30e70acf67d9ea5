// Live updates for the runs list and the run page, by polling: each poll
// sends back the ETag of the last answer, so nothing-changed costs a 304.
// No long-lived connections; without JavaScript the pages still work.
(function () {
  "use strict";
  var POLL_MS = 1500;

  function poller(url, onData) {
    var etag = null;
    var stopped = false;
    function tick() {
      if (stopped) return;
      var headers = etag ? {"If-None-Match": etag} : {};
      fetch(url(), {headers: headers, credentials: "same-origin"})
        .then(function (response) {
          if (response.status === 304) return null;
          if (!response.ok) throw new Error("poll " + response.status);
          etag = response.headers.get("ETag");
          return response.json();
        })
        .then(function (data) { if (data && onData(data) === false) stopped = true; })
        .catch(function () {})
        .then(function () { if (!stopped) setTimeout(tick, POLL_MS); });
    }
    setTimeout(tick, POLL_MS);
  }

  // As the server's "duration" filter writes it.
  function duration(ms) {
    if (ms < 1000) return Math.round(ms) + " ms";
    var s = ms / 1000;
    if (s < 60) return s.toFixed(1) + " s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + " min " + Math.floor(s % 60) + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function setStatus(el, status) {
    el.className = el.className.replace(/status-\w+/, "status-" + status);
    el.textContent = status;
  }

  // -- the runs list: running rows change status; newer runs are announced.
  var table = document.querySelector("table.runs[data-live]");
  if (table) {
    var newest = table.dataset.newest;
    var watched = function () {
      return Array.prototype.map.call(
        table.querySelectorAll('tr[data-status="running"]'),
        function (row) { return row.dataset.run; });
    };
    poller(function () {
      return table.dataset.live + "?ids=" + watched().join(",") +
        (newest ? "&newest=" + encodeURIComponent(newest) : "");
    }, function (data) {
      Object.keys(data.runs).forEach(function (id) {
        var row = table.querySelector('tr[data-run="' + id + '"]');
        if (!row) return;
        var run = data.runs[id];
        row.dataset.status = run.status;
        setStatus(row.querySelector(".status"), run.status);
        row.querySelector(".duration").textContent = duration(run.duration_ms);
      });
      if (data.newer) document.getElementById("newer").hidden = false;
    });
  }

  // -- the run page: step colours, status, duration and new events.
  var config = document.getElementById("run-live");
  if (config) {
    var live = JSON.parse(config.textContent);
    var afterSeq = live.after_seq;
    var graph = document.getElementById("graph");
    var panel = document.getElementById("step-panel");

    graph.addEventListener("click", function (event) {
      var node = event.target.closest("a.node");
      if (!node) return;
      event.preventDefault();
      var url = node.getAttribute("href");
      Array.prototype.forEach.call(graph.querySelectorAll(".node.selected"),
        function (n) { n.classList.remove("selected"); });
      node.classList.add("selected");
      fetch(url + "?partial=1", {credentials: "same-origin"})
        .then(function (r) { return r.text(); })
        .then(function (html) { panel.innerHTML = html; });
    });

    if (live.status === "running") {
      poller(function () {
        // A log longer than one page is not appended to: ask for no events.
        return live.url + "?after_seq=" + (afterSeq === null ? 2147483647 : afterSeq);
      }, function (data) {
        Object.keys(data.steps).forEach(function (step) {
          var node = graph.querySelector('a.node[data-step="' + CSS.escape(step) + '"]');
          if (node) node.setAttribute("class",
            node.getAttribute("class").replace(/status-\w+/, "status-" + data.steps[step]));
        });
        setStatus(document.getElementById("run-status"), data.status);
        document.getElementById("run-duration").textContent =
          duration(data.duration_ms);
        if (afterSeq !== null) appendEvents(data.events);
        if (data.status !== "running") {
          // The header, result and timeline are drawn by the server.
          window.location.reload();
          return false;
        }
      });
    }

    function appendEvents(events) {
      var body = document.querySelector("#events tbody");
      events.forEach(function (e) {
        var row = document.createElement("tr");
        row.dataset.seq = e.seq;
        [e.seq, e.ts.slice(11, 23), e.kind, e.step, e.status, e.payload.slice(0, 300)]
          .forEach(function (value, i) {
            var cell = document.createElement("td");
            if (i === 5) cell.className = "payload";
            cell.textContent = value;
            row.appendChild(cell);
          });
        body.appendChild(row);
        afterSeq = e.seq;
      });
    }
  }
})();
