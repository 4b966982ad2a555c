/* One-tap copy (templates/tasks.html). A button with data-copy="ID" copies the value of the
   read-only field #ID (the task's script, a material's link) to the clipboard and says so in the
   .copy-status beside it; if the browser refuses, the field is shown and selected so the person
   can copy it by hand. The words come from the page (data-copied and data-copy-failed on an
   ancestor), in the page's language. The buttons are hidden in the markup and shown here: without
   script the page is as before, the fields selectable by hand. No inline script: the console's
   Content-Security-Policy allows scripts from 'self' only. */
(function () {
  "use strict";

  var SHOWN_MS = 2000; // how long 已复制 / Copied stays
  var FAILED_MS = 8000; // the hand-copy hint stays longer: the person is busy selecting
  var timers = new WeakMap();

  // Without the Clipboard API (a plain-http address other than localhost, an old browser): a
  // read-only textarea out of sight, selected, and the old copy command.
  function copyBySelection(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.setAttribute("aria-hidden", "true");
    area.tabIndex = -1;
    // CSSOM, not a style attribute: the CSP forbids inline styles, not these.
    area.style.position = "fixed";
    area.style.top = "0";
    area.style.left = "-9999px";
    area.style.opacity = "0";
    area.style.fontSize = "16px"; // iOS zooms into a smaller field it focuses
    document.body.appendChild(area);
    var ok = false;
    try {
      area.focus({ preventScroll: true });
      area.select();
      area.setSelectionRange(0, text.length); // iOS selects nothing with select() alone
      ok = document.execCommand("copy");
    } catch (error) {
      ok = false;
    }
    document.body.removeChild(area);
    return ok;
  }

  function copyText(text) {
    if (navigator.clipboard && typeof navigator.clipboard.writeText === "function") {
      return navigator.clipboard.writeText(text).catch(function () {
        if (!copyBySelection(text)) {
          throw new Error("copy refused");
        }
      });
    }
    return copyBySelection(text) ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function selectByHand(field) {
    field.hidden = false;
    field.focus();
    field.select();
    field.setSelectionRange(0, field.value.length);
  }

  function report(button, state) {
    var status = button.nextElementSibling;
    var words = button.closest("[data-copied]");
    var previous = timers.get(button);
    if (previous) {
      clearTimeout(previous);
    }
    button.dataset.state = state;
    if (status && status.classList.contains("copy-status")) {
      status.textContent = words ? words.dataset[state === "copied" ? "copied" : "copyFailed"] || "" : "";
    }
    timers.set(
      button,
      setTimeout(
        function () {
          delete button.dataset.state;
          if (status && status.classList.contains("copy-status")) {
            status.textContent = "";
          }
          timers.delete(button);
        },
        state === "copied" ? SHOWN_MS : FAILED_MS
      )
    );
  }

  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest("button[data-copy]") : null;
    if (!button) {
      return;
    }
    var field = document.getElementById(button.dataset.copy);
    if (!field) {
      return;
    }
    copyText(field.value).then(
      function () {
        report(button, "copied");
      },
      function () {
        selectByHand(field);
        report(button, "failed");
      }
    );
  });

  var buttons = document.querySelectorAll("button[data-copy]");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].hidden = false;
  }
})();
