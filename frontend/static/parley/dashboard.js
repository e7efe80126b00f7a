/* Parley dashboard: the few things plain HTML cannot do.
 *
 * - copy the embed snippet (#copy-snippet → #embed-snippet), with a "Copied" confirmation;
 * - confirm dangerous POSTs (forms with data-confirm), auto-submit filter selects,
 *   dismiss toasts, focus the error summary of a refused form;
 * - show only the chosen scenario's tools on the agent form;
 * - the test-call side panel: tool calls and per-turn latency from the widget's
 *   `parley:event` / `parley:state` DOM events (docs/dashboard.md).
 *
 * Everything is written with textContent: nothing a call sends is ever parsed as HTML.
 */
(function () {
  "use strict";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /* Copy the embed snippet --------------------------------------------------------------- */

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain-http pages on a LAN address have no Clipboard API: fall back to a selection.
    return new Promise(function (resolve, reject) {
      var area = el("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      document.body.removeChild(area);
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  function initCopy() {
    var button = document.getElementById("copy-snippet");
    if (!button) return;
    var label = button.querySelector("[data-copy-label]") || button;
    var timer = null;
    button.addEventListener("click", function () {
      var target = document.querySelector(button.getAttribute("data-copy-target") || "#embed-snippet");
      if (!target) return;
      copyText(target.textContent.trim()).then(function () {
        label.textContent = "Copied";
        button.classList.add("is-done");
      }, function () {
        label.textContent = "Press Ctrl+C";
        var range = document.createRange();
        range.selectNodeContents(target);
        var selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      });
      clearTimeout(timer);
      timer = setTimeout(function () {
        label.textContent = "Copy";
        button.classList.remove("is-done");
      }, 2000);
    });
  }

  /* Small behaviours ------------------------------------------------------------------- */

  function initForms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
      });
    });
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
    });
    document.querySelectorAll("[data-toast] [data-dismiss]").forEach(function (button) {
      button.addEventListener("click", function () {
        button.closest("[data-toast]").remove();
      });
    });
    var summary = document.querySelector("[data-autofocus]");
    if (summary) summary.focus();
  }

  function slugify(text) {
    return text.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
      .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 50);
  }

  function initSlug() {
    // New agents: the slug follows the name until someone edits it.
    var name = document.getElementById("id_name");
    var slug = document.getElementById("id_slug");
    if (!name || !slug) return;
    var follow = !slug.value || slug.value === slugify(name.value);
    slug.addEventListener("input", function () { follow = !slug.value; });
    name.addEventListener("input", function () {
      if (follow) slug.value = slugify(name.value);
    });
  }

  function initTools() {
    var scenario = document.getElementById("id_scenario");
    var groups = document.querySelectorAll(".tool-group[data-scenario]");
    if (!scenario || !groups.length) return;
    function show() {
      groups.forEach(function (group) {
        var on = group.getAttribute("data-scenario") === scenario.value;
        group.hidden = !on;
        // Hidden groups send nothing: only the chosen scenario's tools are submitted.
        group.querySelectorAll("input").forEach(function (input) { input.disabled = !on; });
      });
    }
    scenario.addEventListener("change", show);
    show();
    document.querySelectorAll("[data-tools-all], [data-tools-none]").forEach(function (button) {
      button.addEventListener("click", function () {
        var on = button.hasAttribute("data-tools-all");
        button.closest(".tool-group").querySelectorAll("input[type=checkbox]").forEach(function (box) {
          box.checked = on;
        });
      });
    });
  }

  /* Test-call side panel ----------------------------------------------------------------- */

  var LATENCY_COLUMNS = ["stt_final_ms", "llm_ttft_ms", "tts_ttfb_ms", "ttfa_ms", "ear_ttfa_ms"];
  var STATE_LABELS = {
    idle: "Idle", connecting: "Connecting", connected: "Connected", listening: "Listening",
    thinking: "Thinking", speaking: "Agent speaking", reconnecting: "Reconnecting",
    ended: "Call ended", error: "Error",
  };

  function formatMs(value) {
    if (typeof value !== "number" || !isFinite(value)) return "—";
    return Math.round(value).toLocaleString("en-US");
  }

  function valueText(value) {
    if (value === null || value === undefined) return "null";
    if (typeof value === "string") return value;
    return JSON.stringify(value);
  }

  function initCallPanel() {
    var panel = document.getElementById("call-panel");
    if (!panel) return;
    var stateNode = document.getElementById("call-state");
    var errors = document.getElementById("call-errors");
    var toolList = document.getElementById("tool-calls");
    var toolCount = document.getElementById("tool-count");
    var toolsEmpty = document.getElementById("tools-empty");
    var latencyRows = document.getElementById("latency-rows");
    var toolItems = {};
    var turnRows = {};
    var tools = 0;

    function setState(state) {
      state = String(state || "idle");
      stateNode.setAttribute("data-state", state);
      stateNode.textContent = STATE_LABELS[state] || state.charAt(0).toUpperCase() + state.slice(1);
    }

    function addError(code, message) {
      var item = el("p", "call-error");
      if (code) { item.appendChild(el("code", "", code)); item.appendChild(document.createTextNode(" ")); }
      item.appendChild(document.createTextNode(message || "Something went wrong."));
      errors.appendChild(item);
      errors.hidden = false;
    }

    function toolCall(event) {
      tools += 1;
      toolCount.textContent = tools;
      toolsEmpty.hidden = true;
      var item = el("li", "tool-call");
      var head = el("div", "tool-call-head");
      head.appendChild(el("span", "tool-call-name", event.name || "tool"));
      if (typeof event.turn === "number") head.appendChild(el("span", "tool-call-turn", "turn " + event.turn));
      var meta = el("span", "tool-call-meta");
      var status = el("span", "tool-status tool-status-running", "running");
      var duration = el("span", "tool-call-duration", "");
      meta.appendChild(duration);
      meta.appendChild(status);
      head.appendChild(meta);
      item.appendChild(head);

      var args = event.arguments;
      if (args && typeof args === "object" && !Array.isArray(args)) {
        var keys = Object.keys(args);
        if (keys.length) {
          var table = el("table", "args");
          var body = el("tbody");
          keys.forEach(function (key) {
            var row = el("tr");
            row.appendChild(el("th", "", key));
            row.appendChild(el("td", "", valueText(args[key])));
            body.appendChild(row);
          });
          table.appendChild(body);
          item.appendChild(table);
        } else {
          item.appendChild(el("p", "muted small", "No arguments"));
        }
      } else if (args !== undefined) {
        // Malformed arguments arrive as the raw string the LLM produced.
        var raw = el("table", "args");
        var rawRow = el("tr");
        rawRow.appendChild(el("th", "", "raw"));
        rawRow.appendChild(el("td", "", valueText(args)));
        raw.appendChild(rawRow);
        item.appendChild(raw);
      }
      toolList.appendChild(item);
      toolList.scrollTop = toolList.scrollHeight;
      toolItems[event.id || ("n" + tools)] = { item: item, status: status, duration: duration };
    }

    function toolResult(event) {
      var entry = toolItems[event.id];
      if (!entry) { toolCall({ id: event.id, name: event.name, turn: event.turn }); entry = toolItems[event.id]; }
      var ok = event.ok !== false;
      entry.status.className = "tool-status " + (ok ? "tool-status-ok" : "tool-status-error");
      entry.status.textContent = ok ? "ok" : "error";
      if (typeof event.duration_ms === "number") entry.duration.textContent = formatMs(event.duration_ms) + " ms";
      if (event.result !== undefined && event.result !== null && event.result !== "") {
        var details = el("details", "tool-result");
        details.appendChild(el("summary", "", ok ? "Result" : "Error"));
        details.appendChild(el("pre", "", valueText(event.result)));
        if (!ok) details.open = true;
        entry.item.appendChild(details);
      }
    }

    function metrics(event) {
      var turn = typeof event.turn === "number" ? event.turn : "?";
      var row = turnRows[turn];
      if (!row) {
        var empty = latencyRows.querySelector(".empty-row");
        if (empty) empty.remove();
        row = el("tr");
        row.appendChild(el("td", "", turn === 0 ? "0 · greeting" : turn));
        LATENCY_COLUMNS.forEach(function (name) {
          var cell = el("td", "num", "—");
          cell.setAttribute("data-metric", name);
          row.appendChild(cell);
        });
        latencyRows.appendChild(row);
        turnRows[turn] = row;
      }
      LATENCY_COLUMNS.forEach(function (name) {
        if (typeof event[name] !== "number") return;
        var cell = row.querySelector('[data-metric="' + name + '"]');
        cell.textContent = formatMs(event[name]);
        if (name === "ttfa_ms" || name === "ear_ttfa_ms") {
          cell.classList.toggle("is-fast", event[name] < 800);
          cell.classList.toggle("is-slow", event[name] > 1500);
        }
      });
    }

    document.addEventListener("parley:state", function (e) {
      setState(e.detail && e.detail.state);
      stateNode.title = (e.detail && e.detail.detail) || "";
    });
    document.addEventListener("parley:event", function (e) {
      var event = e.detail || {};
      switch (event.type) {
        case "tool.call": toolCall(event); break;
        case "tool.result": toolResult(event); break;
        case "turn.metrics": metrics(event); break;
        case "error": addError(event.code, event.message); break;
        case "call.ended": setState("ended"); break;
        default: break;
      }
    });
  }

  function init() {
    initCopy();
    initForms();
    initSlug();
    initTools();
    initCallPanel();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();

/* Exports page: progress of the exports being written (docs/reports.md).
 *
 * Rows with data-status "queued" or "running" poll their data-progress-url every 1.5 s and
 * update the bar, the counter, the status badge, the size and the download link, until the
 * export is done or failed.
 */
(function () {
  "use strict";

  var POLL_MS = 1500;
  var LABELS = { queued: "Queued", running: "Running", done: "Done", failed: "Failed" };
  var BADGES = { queued: "badge-neutral", running: "badge-info", done: "badge-live", failed: "badge-error" };

  function size(bytes) {
    if (bytes === null || bytes === undefined) return "—";
    var units = ["B", "KB", "MB", "GB"];
    var value = bytes;
    var i = 0;
    while (value >= 1000 && i < units.length - 1) { value /= 1000; i += 1; }
    return i === 0 ? value + " B" : value.toFixed(1) + " " + units[i];
  }

  function render(row, state) {
    row.setAttribute("data-status", state.status);
    var bar = row.querySelector("[data-export-bar]");
    if (bar) {
      bar.style.width = state.percent + "%";
      bar.classList.toggle("is-failed", state.status === "failed");
      bar.parentNode.setAttribute("aria-valuenow", String(state.percent));
    }
    var count = row.querySelector("[data-export-count]");
    if (count) count.textContent = state.done + " / " + state.total + " calls";
    var badge = row.querySelector("[data-job-status]");
    if (badge && LABELS[state.status]) {
      badge.className = "badge " + BADGES[state.status];
      badge.textContent = LABELS[state.status];
      if (state.error) badge.title = state.error;
    }
    var error = row.querySelector("[data-export-error]");
    if (error) {
      error.textContent = state.error ? state.error.slice(0, 80) : "";
      error.hidden = state.status !== "failed";
    }
    var sizeCell = row.querySelector("[data-export-size]");
    if (sizeCell) sizeCell.textContent = size(state.size_bytes);
    var link = row.querySelector("[data-export-download]");
    if (link && state.download_url) {
      link.href = state.download_url;
      link.hidden = false;
    }
  }

  function poll(row) {
    var url = row.getAttribute("data-progress-url");
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (state) {
        if (!state) return;
        render(row, state);
        if (state.status === "queued" || state.status === "running") {
          setTimeout(function () { poll(row); }, POLL_MS);
        }
      })
      .catch(function () { setTimeout(function () { poll(row); }, POLL_MS * 4); });
  }

  function init() {
    document.querySelectorAll("tr[data-progress-url]").forEach(function (row) {
      var status = row.getAttribute("data-status");
      if (status === "queued" || status === "running") setTimeout(function () { poll(row); }, POLL_MS);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
