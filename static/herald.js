// herald's Management Console: a few lines of progressive enhancement. Every page works
// without them. Here: the Email settings form lists the changes made on it, against the
// settings in force, before it is saved; and a field with an error takes the focus.
(function () {
  "use strict";
  var form = document.getElementById("settings-form");
  var box = document.getElementById("changes");
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
  if (!form || !box) return;

  function value(el) {
    if (el.type === "checkbox") return el.checked ? "true" : "false";
    return el.value;
  }

  function shown(v) {
    return v === "" ? "\u2014" : v;
  }

  function update() {
    var seen = {};
    var items = [];
    var fields = form.querySelectorAll("[data-label]");
    for (var i = 0; i < fields.length; i++) {
      var el = fields[i];
      if (el.type === "radio" && !el.checked) continue;
      var name = el.name;
      if (seen[name]) continue;
      seen[name] = true;
      if (el.dataset.secret) {
        if (el.value !== "") items.push([el.dataset.label, null, null]);
        continue;
      }
      var now = value(el);
      if (now !== el.dataset.applied) items.push([el.dataset.label, el.dataset.applied, now]);
    }
    box.hidden = false;
    box.textContent = "";
    var title = document.createElement("strong");
    title.textContent = box.dataset.title;
    box.appendChild(title);
    if (items.length === 0) {
      var none = document.createElement("p");
      none.textContent = box.dataset.none;
      box.appendChild(none);
      return;
    }
    var list = document.createElement("ul");
    items.forEach(function (it) {
      var li = document.createElement("li");
      li.textContent = it[1] === null ? it[0] + ": ********" : it[0] + ": " + shown(it[1]) + " \u2192 " + shown(it[2]);
      list.appendChild(li);
    });
    box.appendChild(list);
  }

  form.addEventListener("input", update);
  form.addEventListener("change", update);
  update();
})();
