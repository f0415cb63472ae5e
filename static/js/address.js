// Delivery page, progressively enhanced: the next division select fills itself from
// /api/v1/divisions/{code} and only the chosen method's section shows. Without
// JavaScript the "下一步" buttons do the same on the server.
(function () {
  // The delivery page, and the originals page (上门取件 address) which works the same way.
  var form = document.getElementById("delivery-form") || document.getElementById("originals-form");
  if (!form || !window.fetch) return;
  form.querySelectorAll(".js-cascade").forEach(function (b) { b.remove(); });
  var levels = ["province", "city", "district"].map(function (n) {
    return document.getElementById("f-address." + n);
  });
  var waiting = ["请先选择省份", "请先选择城市"];
  var choose = ["请选择城市", "请选择区县"];
  function fill(select, items, placeholder) {
    select.length = 0;
    select.add(new Option(placeholder, ""));
    items.forEach(function (d) { select.add(new Option(d.name, d.code)); });
  }
  [0, 1].forEach(function (i) {
    var select = levels[i], next = levels[i + 1];
    if (!select || !next) return;
    select.addEventListener("change", function () {
      if (i === 0) fill(levels[2], [], waiting[1]);
      if (!select.value) { fill(next, [], waiting[i]); return; }
      fetch("/api/v1/divisions/" + encodeURIComponent(select.value))
        .then(function (r) { if (!r.ok) throw r; return r.json(); })
        .then(function (d) {
          fill(next, d.divisions, choose[i]);
          if (d.divisions.length === 1) { // 市辖区, or a city that is its own district
            next.value = d.divisions[0].code;
            next.dispatchEvent(new Event("change"));
          }
        })
        .catch(function () { // offline or failing: let the server cascade instead
          var step = document.createElement("input");
          step.type = "hidden"; step.name = "action"; step.value = "cascade";
          form.appendChild(step);
          form.submit();
        });
    });
  });
  var radios = form.querySelectorAll("input[name=method]");
  function reveal() {
    var chosen = form.querySelector("input[name=method]:checked");
    form.querySelectorAll(".method-section").forEach(function (s) {
      // data-method may name several methods, separated by spaces.
      var methods = s.getAttribute("data-method").split(" ");
      s.hidden = radios.length > 0 && (!chosen || methods.indexOf(chosen.value) < 0);
    });
  }
  radios.forEach(function (r) { r.addEventListener("change", reveal); });
  reveal();
})();
