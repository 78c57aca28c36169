/*
 * The exmta console's small enhancements; every page works without them.
 * Served as /ecp/static/console.js under the CSP script-src 'self': no
 * inline script, no build step.
 *
 *  - A button with data-confirm asks before its form is sent, and says
 *    so to the server (confirmed=yes) so that no confirmation page follows.
 *  - The #live element's data-source answers JSON {key: text}; every
 *    element with data-live="key" shows it, fetched again every
 *    data-interval seconds (10 by default).
 */
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-confirm]");
    if (!button) {
      return;
    }
    if (!window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
      return;
    }
    var confirmed = button.form.querySelector("input[name=confirmed]");
    if (!confirmed) {
      confirmed = document.createElement("input");
      confirmed.type = "hidden";
      confirmed.name = "confirmed";
      button.form.appendChild(confirmed);
    }
    confirmed.value = "yes";
  });

  var live = document.getElementById("live");
  if (!live) {
    return;
  }
  var source = live.getAttribute("data-source");
  var seconds = Number(live.getAttribute("data-interval") || "10");

  function refresh() {
    fetch(source, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (answer) {
        return answer.ok ? answer.json() : null;
      })
      .then(function (values) {
        if (!values) {
          return;
        }
        document.querySelectorAll("[data-live]").forEach(function (element) {
          var key = element.getAttribute("data-live");
          if (Object.prototype.hasOwnProperty.call(values, key)) {
            element.textContent = values[key];
          }
        });
        live.textContent = "Updated at " + new Date().toLocaleTimeString();
        live.setAttribute("data-updates", String(Number(live.getAttribute("data-updates") || "0") + 1));
      })
      .catch(function () {
        live.textContent = "The console could not be reached; the numbers shown may be old.";
      });
  }

  window.setInterval(refresh, seconds * 1000);
  refresh();
}());
