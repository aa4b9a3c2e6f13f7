// The plan page's "stage" selects (stage-exit checklists, sign-off rules) offer the stage
// inline's blank rows as "New stage row N", so a whole plan is built in one save
// (apps/releases/plan_stages.py). This names each such option after what its row holds, as the
// person types: "New stage row 2: canary (5 %)". Without JavaScript the numbered options work.
(function () {
  "use strict";
  var PREFIX = "stages";

  function rowLabel(n) {
    var initial = document.getElementById("id_" + PREFIX + "-INITIAL_FORMS");
    var index = (initial ? parseInt(initial.value, 10) || 0 : 0) + n - 1;
    var name = document.querySelector("[name='" + PREFIX + "-" + index + "-name']");
    var pct = document.querySelector("[name='" + PREFIX + "-" + index + "-traffic_percentage']");
    var label = "New stage row " + n;
    if (name && name.value.trim()) {
      label += ": " + name.value.trim();
      if (pct && pct.value.trim()) label += " (" + pct.value.trim() + " %)";
    } else {
      label += " (empty)";
    }
    return label;
  }

  function relabel() {
    var selects = document.querySelectorAll("select[name$='-stage_template']");
    selects.forEach(function (select) {
      Array.prototype.forEach.call(select.options, function (option) {
        var match = /^new-(\d+)$/.exec(option.value);
        if (match) option.textContent = rowLabel(parseInt(match[1], 10));
      });
    });
  }

  document.addEventListener("input", function (event) {
    if (event.target.name && event.target.name.indexOf(PREFIX + "-") === 0) relabel();
  });
  document.addEventListener("formset:added", relabel);
  document.addEventListener("DOMContentLoaded", relabel);
})();
