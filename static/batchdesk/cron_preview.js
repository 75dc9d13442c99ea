// The schedule form's live preview: as the operator types a cron expression (or changes the zone),
// ask POST /api/v1/cron/preview (the function the schedule's own next fire times use) and show
// the next five fire times, or the reason the expression is refused, under the field.
(function () {
  function csrfToken() {
    var match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    if (match) return decodeURIComponent(match[1]);
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }
  function show(box, lines, isError) {
    box.textContent = "";
    box.className = "help bd-cron-preview" + (isError ? " errornote" : "");
    lines.forEach(function (line) { var div = document.createElement("div"); div.textContent = line; box.appendChild(div); });
  }
  function preview(cron, zone, box) {
    if (!cron.value.trim()) { show(box, [], false); return; }
    fetch("/api/v1/cron/preview", {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken()},
      body: JSON.stringify({cron: cron.value, timezone: zone && zone.value ? zone.value : undefined, count: 5})
    }).then(function (r) { return r.json().then(function (body) { return [r.ok, body]; }); })
      .then(function (answer) {
        var ok = answer[0], body = answer[1];
        if (!ok) { show(box, [body.detail || "Not a valid expression."], true); return; }
        if (!body.local_times.length) { show(box, ["Never fires after now."], true); return; }
        show(box, ["Next fire times (" + body.timezone + "):"].concat(body.local_times), false);
      })
      .catch(function () { show(box, ["Preview unavailable."], true); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var cron = document.getElementById("id_cron");
    if (!cron) return;
    var zone = document.getElementById("id_timezone");
    var box = document.createElement("div");
    box.id = "cron-preview";
    cron.parentNode.appendChild(box);
    var timer = null;
    function later() { clearTimeout(timer); timer = setTimeout(function () { preview(cron, zone, box); }, 300); }
    cron.addEventListener("input", later);
    if (zone) zone.addEventListener("input", later);
    preview(cron, zone, box);
  });
})();
