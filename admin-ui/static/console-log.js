// Follows an app's log on its console page: asks the API for the lines after the last one
// shown every two seconds (while the tab is visible) and puts them on top of the table.
// Without this script the page still shows the latest lines and a link to reload them.
"use strict";

(function () {
  const table = document.getElementById("log");
  if (!table) return;
  const body = table.tBodies[0];
  const feed = table.dataset.feed;
  let next = table.dataset.next;
  const controls = document.getElementById("log-follow");
  const toggle = document.getElementById("log-toggle");
  const status = document.getElementById("log-status");
  const empty = document.getElementById("log-empty");
  const KEEP_ROWS = 500;
  const EVERY_MS = 2000;
  let following = true;
  let timer = null;

  controls.hidden = false;
  status.textContent = "Following new lines.";

  function cell(row, text, code) {
    const td = row.insertCell();
    if (code) {
      const c = document.createElement("code");
      c.textContent = text;
      td.appendChild(c);
    } else {
      td.textContent = text;
    }
    return td;
  }

  function time(ms) {
    return new Date(ms).toISOString().slice(11, 19);
  }

  function show(lines) {
    // Oldest first from the API; the table is newest first.
    for (const line of lines) {
      const row = body.insertRow(0);
      if (line.stream === "error") row.className = "log-error";
      cell(row, time(line.at));
      cell(row, String(line.version));
      cell(row, line.stream);
      cell(row, line.message, true);
      if (line.request_id) {
        cell(row, line.request_id, true);
      } else {
        const td = row.insertCell();
        const dash = document.createElement("span");
        dash.className = "muted";
        dash.textContent = "—";
        td.appendChild(dash);
      }
    }
    while (body.rows.length > KEEP_ROWS) body.deleteRow(body.rows.length - 1);
    if (lines.length && empty) empty.hidden = true;
  }

  async function poll() {
    timer = null;
    if (!following) return;
    if (document.visibilityState === "visible") {
      try {
        const url = feed + "?limit=500&after=" + encodeURIComponent(next);
        const response = await fetch(url, {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        if (response.status === 401) {
          status.textContent = "Signed out: reload the page to sign in again.";
          following = false;
          toggle.disabled = true;
          return;
        }
        if (!response.ok) throw new Error("the server answered " + response.status);
        const page = await response.json();
        show(page.lines);
        next = page.next;
        status.textContent = "Following new lines.";
      } catch (error) {
        status.textContent = "Could not read new lines (" + error.message + "); trying again.";
      }
    }
    if (following) timer = setTimeout(poll, EVERY_MS);
  }

  toggle.addEventListener("click", function () {
    following = !following;
    toggle.setAttribute("aria-pressed", String(following));
    status.textContent = following ? "Following new lines." : "Paused.";
    if (following && timer === null) poll();
  });

  timer = setTimeout(poll, EVERY_MS);
})();
