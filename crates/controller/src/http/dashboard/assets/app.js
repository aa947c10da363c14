// The dashboard's script: live tables and logs over Server-Sent Events
// (no polling), and the autoscale charts (uPlot). Every page works without
// it; it only keeps what is shown current.
(function () {
  "use strict";

  function liveState(text) {
    document.querySelectorAll(".live-state").forEach(function (el) {
      el.textContent = text;
    });
  }

  // A stream that says on the page whether it is live; EventSource
  // reconnects by itself after a drop.
  function stream(url, handlers) {
    var source = new EventSource(url);
    source.onopen = function () { liveState("live"); };
    source.onerror = function () { liveState("reconnecting…"); };
    Object.keys(handlers).forEach(function (name) {
      source.addEventListener(name, handlers[name]);
    });
    window.addEventListener("pagehide", function () { source.close(); });
    return source;
  }

  // The processes table: the server sends its rendered (escaped) rows.
  var rows = document.querySelector("tbody[data-live]");
  if (rows) {
    stream(rows.dataset.live, {
      processes: function (event) {
        // Keep keyboard focus on the same button across an update.
        var focused = document.activeElement;
        var name = focused && rows.contains(focused) && focused.closest("tr")
          ? focused.closest("tr").dataset.name : null;
        rows.innerHTML = event.data;
        rows.dataset.updates = String(Number(rows.dataset.updates || 0) + 1);
        if (name) {
          var row = rows.querySelector('tr[data-name="' + CSS.escape(name) + '"] button');
          if (row) { row.focus(); }
        }
      },
      formation: function (event) { formation(event); },
    });
  }

  // The scale forms show the desired counts as they change, except one
  // being edited.
  function formation(event) {
    var counts = JSON.parse(event.data);
    Object.keys(counts).forEach(function (type) {
      var input = document.getElementById("count-" + type);
      if (input && input !== document.activeElement && input.value === input.defaultValue) {
        input.value = input.defaultValue = String(counts[type]);
      }
    });
  }

  // The log: the backlog replaces what the page was rendered with, then
  // each line is appended; the view follows the end unless scrolled up.
  var log = document.getElementById("log");
  var MAX_LINES = 2000;
  if (log) {
    var atEnd = function () {
      return log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    };
    log.scrollTop = log.scrollHeight;
    stream(log.dataset.stream, {
      backlog: function (event) {
        log.textContent = event.data ? event.data + "\n" : "";
        log.scrollTop = log.scrollHeight;
      },
      line: function (event) {
        var follow = atEnd();
        log.appendChild(document.createTextNode(event.data + "\n"));
        while (log.childNodes.length > MAX_LINES) { log.removeChild(log.firstChild); }
        if (follow) { log.scrollTop = log.scrollHeight; }
      },
    });
  }

  // Autoscale charts: CPU utilisation against the target and the number
  // of processes at each decision; rescales are marked, and the reason of
  // the decision under the cursor is written below the chart.
  var charts = document.querySelectorAll("figure.chart");
  if (charts.length && window.uPlot) {
    var css = getComputedStyle(document.documentElement);
    var color = function (name) { return css.getPropertyValue(name).trim(); };
    var loaders = [];
    charts.forEach(function (figure) { loaders.push(chart(figure, color)); });
    // The app's change stream also ticks while processes run: each event
    // is a moment to fetch the decisions made since.
    stream(charts[0].dataset.events, {
      processes: function () { loaders.forEach(function (load) { load(); }); },
    });
  }

  function chart(figure, color) {
    var plotEl = figure.querySelector(".plot");
    var reasonEl = figure.querySelector(".reason");
    var plot = null;
    var reasons = [];

    function size() {
      return { width: Math.max(240, plotEl.clientWidth), height: 260 };
    }

    function draw(history) {
      var points = history.results;
      var xs = points.map(function (p) { return p.t; });
      var cpu = points.map(function (p) { return p.utilization; });
      var target = points.map(function () { return history.target; });
      var replicas = points.map(function (p) { return p.current; });
      var rescales = points.map(function (p) { return p.rescaled ? p.desired : null; });
      reasons = points.map(function (p) { return p.reason; });
      var data = [xs, cpu, target, replicas, rescales];
      if (plot) {
        plot.setData(data);
      } else {
        var axis = { stroke: color("--fg"), grid: { stroke: color("--grid") }, ticks: { stroke: color("--grid") } };
        var opts = Object.assign(size(), {
          series: [
            {},
            { label: "CPU %", scale: "%", stroke: color("--accent"), width: 2, points: { show: true, size: 5 } },
            { label: "Target %", scale: "%", stroke: color("--muted"), dash: [6, 4], points: { show: false } },
            { label: "Processes", scale: "n", stroke: color("--second"), width: 2, paths: window.uPlot.paths.stepped({ align: 1 }), points: { show: true, size: 4 } },
            { label: "Rescale to", scale: "n", stroke: color("--alert"), fill: color("--alert"), paths: function () { return null; }, points: { show: true, size: 11, width: 2 } },
          ],
          scales: { "%": { range: [0, Math.max(100, history.target * 1.5)] }, n: { range: [0, Math.max(history.max, 1) + 1] } },
          axes: [
            Object.assign({}, axis),
            Object.assign({ scale: "%", label: "CPU %" }, axis),
            Object.assign({}, axis, { scale: "n", side: 1, label: "processes", grid: { show: false } }),
          ],
          hooks: {
            setCursor: [function (u) {
              var i = u.cursor.idx;
              reasonEl.textContent = i == null ? "" : (reasons[i] || "");
            }],
          },
        });
        plot = new window.uPlot(opts, data, plotEl);
        window.addEventListener("resize", function () { plot.setSize(size()); });
      }
      figure.dataset.points = String(xs.length);
      decisions(points);
      if (!reasonEl.textContent && reasons.length) {
        reasonEl.textContent = "Latest: " + reasons[reasons.length - 1];
      }
    }

    // The table of the latest decisions under the chart, newest first.
    var table = figure.parentNode.querySelector("table.decisions tbody");
    function decisions(points) {
      if (!table) { return; }
      var rows = points.slice(-10).reverse().map(function (p) {
        var tr = document.createElement("tr");
        [p.time, p.utilization == null ? "–" : p.utilization + "%", p.current + " → " + p.desired, p.reason]
          .forEach(function (text) {
            var td = document.createElement("td");
            td.textContent = text;
            tr.appendChild(td);
          });
        return tr;
      });
      table.replaceChildren.apply(table, rows);
    }

    function load() {
      fetch(figure.dataset.history, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(draw)
        .catch(function () { reasonEl.textContent = "The history could not be loaded."; });
    }

    load();
    return load;
  }
})();
