// The page's search box: a thin client of GET /v1/search. Each result links to its job at
// its time (`#/jobs/<job_id>?t=<seconds>`), which app.js opens; it uses app.js's apiJson
// (the key header included) and clock.
"use strict";

(() => {
  const PAGE = 20;
  const current = { params: null, cursor: null };
  const byId = (id) => document.getElementById(id);

  function resultItem(match) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.className = "entry";
    link.href = `#/jobs/${match.job_id}?t=${match.start_s}`;
    const label = match.kind === "object" ? match.class_name : match.text;
    const file = match.filename || match.job_id.slice(0, 8);
    const range = `${clock(match.start_s)}–${clock(match.end_s)}`;
    link.setAttribute("aria-label", `${label} in ${file} at ${range}, score ${match.score.toFixed(2)}`);
    const parts = [
      ["time", range],
      ["text", label],
      ["file", file],
      ["score", match.score.toFixed(2)],
    ];
    for (const [name, value] of parts) {
      const span = document.createElement("span");
      span.className = name;
      span.textContent = value;
      link.append(span);
    }
    item.append(link);
    return item;
  }

  async function fetchPage(more) {
    const status = byId("search-status");
    const list = byId("search-results");
    const query = new URLSearchParams(current.params);
    query.set("limit", String(PAGE));
    if (more && current.cursor) query.set("cursor", current.cursor);
    byId("search-button").disabled = true;
    try {
      const page = await apiJson(`/v1/search?${query}`);
      if (!more) list.replaceChildren();
      list.append(...page.matches.map(resultItem));
      current.cursor = page.next_cursor;
      byId("search-more").hidden = !page.next_cursor;
      const shown = list.children.length;
      status.textContent = shown ? `${shown}${page.next_cursor ? "+" : ""} match(es).` : "No matches.";
    } catch (error) {
      if (!more) list.replaceChildren();
      byId("search-more").hidden = true;
      status.textContent = error.message;
    } finally {
      byId("search-button").disabled = false;
    }
  }

  function submitSearch(event) {
    event.preventDefault();
    const q = byId("search-q").value.trim();
    if (q.replace(/\s/g, "").length < 2) {
      byId("search-status").textContent = "Type at least 2 characters to search.";
      byId("search-q").focus();
      return;
    }
    const params = { q, kind: byId("search-kind").value };
    const beside = byId("search-with").value.trim();
    if (beside && params.kind === "text") params.with = beside;
    current.params = params;
    current.cursor = null;
    fetchPage(false);
  }

  function kindChanged() {
    const objects = byId("search-kind").value === "object";
    byId("search-with").disabled = objects; // with= keeps text beside an object
    byId("search-q").placeholder = objects ? "person" : "PLATFORM 9";
  }

  document.addEventListener("DOMContentLoaded", () => {
    byId("search-form").addEventListener("submit", submitSearch);
    byId("search-kind").addEventListener("change", kindChanged);
    byId("search-more").addEventListener("click", () => fetchPage(true));
  });
})();
