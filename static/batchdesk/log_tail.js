// Live tail of an execution's log on its admin page: fetch what was added since the last offset.
(function () {
  function tail(pre) {
    if (!pre.dataset.active) return;
    fetch(pre.dataset.tailUrl + "?offset=" + pre.dataset.offset, {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (data.offset < Number(pre.dataset.offset)) { pre.textContent = ""; }  // the middle was elided
        var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 5;
        if (data.text) { pre.textContent = (pre.textContent === "(no output yet)" ? "" : pre.textContent) + data.text; }
        pre.dataset.offset = data.offset;
        if (atBottom) pre.scrollTop = pre.scrollHeight;
        if (data.active) { setTimeout(function () { tail(pre); }, 1000); } else { location.reload(); }
      })
      .catch(function () { setTimeout(function () { tail(pre); }, 5000); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var pre = document.getElementById("execution-log");
    if (pre) { pre.scrollTop = pre.scrollHeight; setTimeout(function () { tail(pre); }, 1000); }
  });
})();
