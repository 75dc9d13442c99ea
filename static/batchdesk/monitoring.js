// Batch Monitoring refreshes itself without a reload: every few seconds it asks for the sections of
// unfinished work (running, failures, waiting, held, counts, activity) and, for the timeline, only
// the bars of executions that were open at the last refresh or started since. Finished bars are
// never read again; the axis stretches as running bars grow (positions come from data-start/end).
(function () {
  var TICKS = [5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200];
  function openIds(svg) {
    if (!svg) return [];
    return Array.prototype.map.call(svg.querySelectorAll("rect.bd-bar[data-end='']"), function (r) { return r.dataset.id; });
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function rescale(svg, now) {
    var t0 = Number(svg.dataset.t0), t1 = Math.max(Number(svg.dataset.t1), now), width = Number(svg.dataset.width);
    svg.dataset.t1 = t1;
    var scale = width / (t1 - t0);
    svg.querySelectorAll("rect.bd-bar").forEach(function (r) {
      var start = Number(r.dataset.start), end = r.dataset.end ? Number(r.dataset.end) : now;
      r.setAttribute("x", ((start - t0) * scale).toFixed(2));
      r.setAttribute("width", Math.max((end - start) * scale, 2).toFixed(2));
    });
    var axis = svg.querySelector("g.bd-axis"), height = svg.viewBox.baseVal.height, span = t1 - t0;
    var step = TICKS.filter(function (s) { return span / s <= 12; })[0] || TICKS[TICKS.length - 1];
    var offset = new Date().getTimezoneOffset() * 60;  // ticks at round local (browser) times
    axis.innerHTML = "";
    for (var t = Math.ceil((t0 - offset) / step) * step + offset; t < t1; t += step) {
      var x = ((t - t0) * scale).toFixed(2), d = new Date(t * 1000);
      axis.insertAdjacentHTML("beforeend", '<line x1="' + x + '" x2="' + x + '" y1="14" y2="' + height +
        '" stroke="currentColor" stroke-opacity=".15"/><text x="' + x + '" y="11" font-size="10" text-anchor="middle" fill="currentColor">' +
        pad(d.getHours()) + ":" + pad(d.getMinutes()) + (step < 60 ? ":" + pad(d.getSeconds()) : "") + "</text>");
    }
  }
  function applyBars(root, bars, now) {
    var svg = document.getElementById("bd-timeline"), needTimeline = !svg && bars.length > 0;
    bars.forEach(function (bar) {
      if (!svg) return;
      var rect = svg.querySelector('rect.bd-bar[data-id="' + bar.id + '"]');
      if (!rect) {
        var lane = svg.querySelector('g.bd-lane[data-lane="' + bar.lane + '"] > g');
        if (!lane) { needTimeline = true; return; }
        lane.insertAdjacentHTML("beforeend", '<a href="' + root.dataset.executionUrl.replace("/0/", "/" + bar.id + "/") +
          '"><rect class="bd-bar" data-id="' + bar.id + '" data-start="' + bar.start + '" data-end="" y="2" height="' +
          svg.dataset.barHeight + '" rx="2"><title></title></rect></a>');
        rect = lane.querySelector('rect.bd-bar[data-id="' + bar.id + '"]');
      }
      rect.dataset.end = bar.end === null ? "" : bar.end;
      rect.setAttribute("class", "bd-bar " + bar.status + (bar.long_running ? " bd-long" : ""));
      rect.querySelector("title").textContent = bar.title;
    });
    if (svg) rescale(svg, now);
    return needTimeline;
  }
  function refresh(root) {
    var svg = document.getElementById("bd-timeline");
    var params = new URLSearchParams({date: root.dataset.date, cycle: root.dataset.cycle, open: openIds(svg).join(","),
                                      since: root.dataset.since || root.dataset.now || ""});
    return fetch(root.dataset.liveUrl + "?" + params, {credentials: "same-origin"})
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (data) {
        Object.keys(data.sections).forEach(function (name) {
          var box = document.getElementById("bd-section-" + name);
          if (box) box.innerHTML = data.sections[name];
        });
        root.dataset.since = data.now - 2;  // a little overlap: a start committed late is still seen
        document.getElementById("bd-updated").textContent = new Date(data.now * 1000).toLocaleTimeString();
        if (applyBars(root, data.bars, data.now)) {
          return fetch(root.dataset.liveUrl + "?" + new URLSearchParams({date: root.dataset.date, cycle: root.dataset.cycle, timeline: 1}),
                       {credentials: "same-origin"})
            .then(function (r) { return r.json(); })
            .then(function (t) { document.getElementById("bd-section-timeline").innerHTML = t.timeline; });
        }
      });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("bd-monitoring");
    if (!root) return;
    var every = Number(root.dataset.refresh || 10) * 1000;
    function loop() {
      refresh(root).catch(function () { document.getElementById("bd-updated").textContent += " (refresh failed)"; })
        .then(function () { setTimeout(loop, every); });
    }
    setTimeout(loop, every);
  });
})();
