(function () {
  var top;
  try { top = window.top; if (top === window || !top.location.href) return; }
  catch (e) { return; }
  document.addEventListener("click", function (ev) {
    var a = ev.target.closest ? ev.target.closest("a[data-airflow]") : null;
    if (!a || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    var url = new URL(a.href);
    if (url.origin !== top.location.origin) return;
    ev.preventDefault();
    top.history.pushState(null, "", url.pathname + url.search + url.hash);
    top.dispatchEvent(new PopStateEvent("popstate", {state: null}));
  });
})();
