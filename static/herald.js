// herald's Management Console: a few lines of progressive enhancement. Every page works
// without them. Here: the Email settings form lists the changes made on it (against the saved
// settings it was loaded with) before it is saved, in the words the form shows; a field with
// an error takes the focus; an SMTP conversation opens scrolled to its end; the reply lab reads
// an .eml file into its form.
(function () {
  "use strict";
  var form = document.getElementById("settings-form");
  var box = document.getElementById("changes");
  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
  var talks = document.querySelectorAll("pre.transcript");
  for (var t = 0; t < talks.length; t++) talks[t].scrollTop = talks[t].scrollHeight;
  // The reply lab: an .eml file is read into the message box (shown only with script).
  var file = document.getElementById("lab-file");
  var raw = document.getElementById("lab-raw");
  if (file && raw) {
    document.getElementById("lab-file-field").hidden = false;
    file.addEventListener("change", function () {
      var f = file.files[0];
      if (!f) return;
      var reader = new FileReader();
      reader.onload = function () { raw.value = reader.result; };
      reader.readAsText(f);
    });
  }
  if (!form || !box) return;

  function value(el) {
    if (el.type === "checkbox") return el.checked ? "true" : "false";
    return el.value;
  }

  // A value as the form words it: On/Off, an option's or a radio button's label.
  function shown(el, v) {
    if (el.type === "checkbox") return v === "true" ? box.dataset.on : box.dataset.off;
    if (el.tagName === "SELECT") {
      for (var i = 0; i < el.options.length; i++) {
        if (el.options[i].value === v) return el.options[i].text;
      }
    }
    if (el.type === "radio") {
      var radios = form.querySelectorAll("input[type=radio]");
      for (var j = 0; j < radios.length; j++) {
        if (radios[j].name === el.name && radios[j].value === v && radios[j].labels.length) {
          return radios[j].labels[0].textContent.trim();
        }
      }
    }
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
      if (now !== el.dataset.saved) {
        items.push([el.dataset.label, shown(el, el.dataset.saved), shown(el, now)]);
      }
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
      li.textContent = it[1] === null ? it[0] + ": ********" : it[0] + ": " + it[1] + " \u2192 " + it[2];
      list.appendChild(li);
    });
    box.appendChild(list);
  }

  form.addEventListener("input", update);
  form.addEventListener("change", update);
  update();
})();
