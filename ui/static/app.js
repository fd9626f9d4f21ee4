// sand web UI: the little the pages need beyond HTML. Every form works
// without it; it adds live refresh of the home page, copy buttons and
// protection against double submits.
"use strict";

(function () {
  // Live refresh: an element with data-refresh="URL" is replaced by a
  // fresh server-rendered copy every data-interval ms, without a reload.
  function startRefresh(el) {
    var url = el.getAttribute("data-refresh");
    var every = parseInt(el.getAttribute("data-interval"), 10) || 3000;
    var live = document.getElementById(el.id + "-live");
    var last = null;
    var busy = false;
    function say(msg) {
      if (live && live.textContent !== msg) live.textContent = msg;
    }
    function tick() {
      if (busy || document.hidden) return;
      busy = true;
      fetch(url, { credentials: "same-origin", cache: "no-store", headers: { "Accept": "text/html" } })
        .then(function (resp) {
          if (resp.status === 401) {
            window.location.assign("/ui/login?next=" + encodeURIComponent(window.location.pathname));
            return null;
          }
          if (!resp.ok) {
            say("This panel could not be refreshed (HTTP " + resp.status + "); retrying.");
            return null;
          }
          return resp.text();
        })
        .then(function (html) {
          if (html === null) return;
          say("");
          // Only the changing parts matter; skip the update stamp when
          // comparing so an idle panel is left alone (and focus with it).
          var key = html.replace(/<p class="updated[\s\S]*?<\/p>/, "");
          if (key === last) {
            var stamp = el.querySelector(".updated");
            var fresh = new DOMParser().parseFromString(html, "text/html").querySelector(".updated");
            if (stamp && fresh) stamp.replaceWith(fresh);
            return;
          }
          last = key;
          el.innerHTML = html;
        })
        .catch(function () {
          say("Lost contact with sand; retrying.");
        })
        .finally(function () {
          busy = false;
        });
    }
    last = el.innerHTML.replace(/<p class="updated[\s\S]*?<\/p>/, "");
    window.setInterval(tick, every);
    document.addEventListener("visibilitychange", tick);
  }

  // Copy buttons: data-copy="ID" copies the text of element ID. The
  // Clipboard API needs a secure context (HTTPS or localhost); on a plain
  // HTTP lab address the selection and execCommand do it.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    return new Promise(function (resolve, reject) {
      var ta = document.createElement("textarea");
      ta.value = text;
      ta.setAttribute("readonly", "");
      ta.className = "sr-only";
      document.body.appendChild(ta);
      ta.select();
      var ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (e) {
        ok = false;
      }
      document.body.removeChild(ta);
      if (ok) resolve();
      else reject(new Error("copy refused"));
    });
  }

  function setupCopy(button) {
    button.addEventListener("click", function () {
      var src = document.getElementById(button.getAttribute("data-copy"));
      var status = document.getElementById("copy-status");
      if (!src) return;
      copyText(src.textContent).then(
        function () {
          button.setAttribute("data-copied", "true");
          if (status) status.textContent = "Copied to the clipboard.";
        },
        function () {
          // Select the text so the admin can copy it by hand.
          var range = document.createRange();
          range.selectNodeContents(src);
          var sel = window.getSelection();
          sel.removeAllRanges();
          sel.addRange(range);
          if (status) status.textContent = "The browser refused to copy: the text is selected, press Ctrl+C.";
        }
      );
    });
  }

  // A second click on a submit button while the first request runs would
  // repeat the change: disable the form's buttons once it is submitted.
  function setupForm(form) {
    form.addEventListener("submit", function (ev) {
      if (form.getAttribute("data-submitted") === "true") {
        ev.preventDefault();
        return;
      }
      form.setAttribute("data-submitted", "true");
      // Let the browser take the clicked button's name=value first.
      window.setTimeout(function () {
        form.querySelectorAll("button[type=submit]").forEach(function (b) {
          b.disabled = true;
        });
      }, 0);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(startRefresh);
    document.querySelectorAll("button[data-copy]").forEach(setupCopy);
    document.querySelectorAll("form[method=post]").forEach(setupForm);
  });
})();
