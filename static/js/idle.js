// Warns two minutes before the login's idle timeout; 继续办理 makes a request, which keeps it.
(function () {
  var box = document.getElementById("idle-warning");
  if (!box || !window.fetch) return;
  var minutes = +box.getAttribute("data-idle"), timer;
  var text = box.querySelector("p"), button = box.querySelector("button");
  function arm() {
    clearTimeout(timer);
    timer = setTimeout(warn, Math.max(minutes - 2, 1) * 60000);
  }
  function ended() {
    text.textContent = "登录已超时。现在提交，填写的内容会为您保留，重新登录后核对即可。";
    button.hidden = true;
  }
  function warn() {
    box.hidden = false;
    timer = setTimeout(ended, 120000);
  }
  button.addEventListener("click", function () {
    fetch(location.pathname, { credentials: "same-origin" }).then(function (r) {
      if (r.redirected) return ended(); // already timed out: sent to the login page
      box.hidden = true;
      arm();
    });
  });
  arm();
})();
