// Turns each playbook textarea into a CodeMirror YAML editor and marks the
// lines the validator reported (data-error-lines="3,7").
(function () {
  "use strict";

  function attach(textarea) {
    var editor = CodeMirror.fromTextArea(textarea, {
      mode: "yaml",
      lineNumbers: true,
      indentUnit: 2,
      tabSize: 2,
      indentWithTabs: false,
      extraKeys: {
        Tab: function (cm) {
          cm.replaceSelection("  ");
        },
      },
    });
    var lines = (textarea.dataset.errorLines || "").split(",").filter(Boolean);
    lines.forEach(function (line) {
      editor.addLineClass(Number(line) - 1, "background", "noetl-error-line");
    });
    if (lines.length) {
      editor.scrollIntoView({ line: Number(lines[0]) - 1, ch: 0 }, 100);
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (typeof CodeMirror === "undefined") {
      return;
    }
    document.querySelectorAll("textarea.noetl-yaml").forEach(attach);
  });
})();
