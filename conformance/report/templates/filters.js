(function () {
  "use strict";
  var bar = document.getElementById("filters");
  var verdict = document.getElementById("filter-verdict");
  var chapter = document.getElementById("filter-chapter");
  var shown = document.getElementById("filter-shown");
  if (!bar || !verdict || !chapter || !shown) {
    return;
  }
  var rows = document.querySelectorAll("tr.clause");
  function apply() {
    var verdicts = verdict.value ? verdict.value.split(",") : [];
    var count = 0;
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var keep = (verdicts.length === 0 || verdicts.indexOf(row.getAttribute("data-verdict")) >= 0) &&
        (!chapter.value || row.getAttribute("data-chapter") === chapter.value);
      row.hidden = !keep;
      if (keep) {
        count++;
      }
    }
    shown.textContent = String(count);
  }
  verdict.addEventListener("change", apply);
  chapter.addEventListener("change", apply);
  bar.hidden = false;
  apply();
})();
