// Progressive enhancement: show upload progress. Without JS the form posts normally.
(function () {
  if (!window.FormData || !window.XMLHttpRequest || !window.DOMParser) return;
  document.querySelectorAll("form.upload-form").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      var bar = form.querySelector("progress");
      var button = form.querySelector("button[type=submit]");
      event.preventDefault();
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) { bar.value = Math.round((e.loaded / e.total) * 100); }
      };
      xhr.onload = function () {
        if (xhr.status < 400) { window.location.href = xhr.responseURL; return; }
        // Show the server's error page (the message sits next to the material).
        var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
        document.replaceChild(document.adoptNode(doc.documentElement), document.documentElement);
        var summary = document.getElementById("error-summary");
        if (summary) summary.focus();
      };
      xhr.onerror = function () { form.submit(); };
      bar.hidden = false;
      bar.value = 0;
      button.disabled = true;
      xhr.send(new FormData(form));
    });
  });
})();
