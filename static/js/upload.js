// Uploads, progressively enhanced: the chosen files are named, the upload shows its progress,
// and the answer replaces the page's main part in place, the material kept where it stood
// and focus on its 已上传 line (or its error). Without JS the form posts and the redirect
// lands on #m-<code> with the same line.
(function () {
  if (!window.FormData || !window.XMLHttpRequest || !window.DOMParser) return;
  var BOTH = "您既选择了文件，又拍了照片，一次只能上传其中一种。请选择保留哪一种：";
  function bind(root) {
    root.querySelectorAll("form.upload-form").forEach(function (form) {
      var inputs = form.querySelectorAll("input[type=file]");
      var bar = form.querySelector("progress");
      var out = document.createElement("p");
      out.className = "chosen";
      out.setAttribute("aria-live", "polite");
      bar.parentNode.insertBefore(out, bar);
      function chosen() {
        var names = [], kinds = 0;
        inputs.forEach(function (i) {
          if (i.files.length) kinds++;
          for (var k = 0; k < i.files.length; k++) names.push(i.files[k].name);
        });
        out.textContent = kinds > 1 ? BOTH : names.length ? "已选择：" + names.join("、") : "";
        out.className = kinds > 1 ? "chosen error-message" : "chosen";
        if (kinds > 1) inputs.forEach(function (keep) { // one button per choice: keep it, drop the other
          var b = document.createElement("button");
          b.type = "button";
          b.className = "btn btn-secondary";
          b.textContent = keep.name === "file" ? "保留文件“" + keep.files[0].name + "”" : "保留 " + keep.files.length + " 张照片";
          b.onclick = function () {
            inputs.forEach(function (i) { if (i !== keep) i.value = ""; });
            chosen();
            form.querySelector("button[type=submit]").focus();
          };
          out.appendChild(b);
        });
        return kinds;
      }
      inputs.forEach(function (i) { i.addEventListener("change", chosen); });
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        if (chosen() > 1) { out.setAttribute("tabindex", "-1"); out.focus(); return; }
        var li = form.closest("li[id]"), id = li.id, top = li.getBoundingClientRect().top;
        var xhr = new XMLHttpRequest();
        xhr.open("POST", form.action);
        xhr.upload.onprogress = function (e) {
          if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100);
        };
        xhr.onload = function () {
          var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
          var main = doc.getElementById("main"), url = xhr.responseURL;
          if (!main) { // not one of our pages: show what came
            document.replaceChild(document.adoptNode(doc.documentElement), document.documentElement);
            return;
          }
          if (url !== form.action && url.split(/[?#]/)[0] !== location.href.split(/[?#]/)[0]) {
            window.location.href = url; // sent elsewhere (signed out, say): go there
            return;
          }
          document.getElementById("main").replaceWith(document.adoptNode(main));
          document.title = doc.title;
          bind(main);
          var again = document.getElementById(id);
          if (!again) { main.focus(); return; }
          window.scrollBy(0, again.getBoundingClientRect().top - top);
          var note = again.querySelector(".upload-done, .error-message");
          if (!note && (note = main.querySelector(".notice[role=status]"))) {
            again.appendChild(note); // a page that confirms at the top: show it here
            note.tabIndex = -1;
          }
          note = note || main;
          note.focus({ preventScroll: true });
          if (note.getBoundingClientRect().bottom > window.innerHeight) note.scrollIntoView({ block: "center" });
        };
        xhr.onerror = function () { form.submit(); };
        bar.hidden = false;
        bar.value = 0;
        form.querySelector("button[type=submit]").disabled = true;
        xhr.send(new FormData(form));
      });
    });
  }
  bind(document);
})();
