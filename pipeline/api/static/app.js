// newspipe web page: a plain ES module over the HTTP API (docs/api.md). No build step.

const $ = (selector) => document.querySelector(selector);
const FACET_TITLES = {
  persons: ["People", "entity"], organizations: ["Organisations", "entity"],
  locations: ["Places", "entity"], groups: ["Groups", "entity"], misc: ["Other names", "entity"],
  events: ["Events", "event"], sources: ["Sources", "source"], languages: ["Languages", "lang"],
};
const FILTER_NAMES = { entity: "entity", event: "event", source: "source", lang: "language" };

// --- token --------------------------------------------------------------------------------
function takeTokenFromAddress() {
  const match = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (match) {
    localStorage.setItem("newspipe-token", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}
const token = () => localStorage.getItem("newspipe-token") || "";

let asking = null; // one dialog, however many requests were refused

function askToken(refused = false) {
  if (!asking) {
    if (refused) localStorage.removeItem("newspipe-token");
    $("#login-error").textContent = refused ? "That key was refused (unknown or revoked): enter another." : "";
    $("#login-error").hidden = !refused;
  }
  asking ||= new Promise((resolve) => {
    const dialog = $("#login");
    $("#login-form").onsubmit = () => {
      localStorage.setItem("newspipe-token", $("#token").value.trim());
      asking = null;
      resolve();
    };
    dialog.showModal();
  });
  return asking;
}

async function api(path, options = {}) {
  for (;;) {
    const used = token();
    const response = await fetch(path, {
      ...options,
      headers: { ...(options.headers || {}), Authorization: `Bearer ${used}` },
    });
    if (response.status === 401) {
      if (token() === used) await askToken(Boolean(used)); // else a new key came meanwhile: retry
      continue;
    }
    if (response.status === 204) return null;
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = body.detail;
      const message = typeof detail === "string" ? detail
        : detail && detail.error ? `${detail.error} (at character ${detail.position})`
        : `${response.status} ${response.statusText}`;
      throw new Error(message);
    }
    return body;
  }
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "html") node.innerHTML = value; // only for server HTML (escaped snippets)
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

const day = (iso) => (iso ? new Date(iso).toISOString().slice(0, 10) : "");

// --- search -----------------------------------------------------------------------------
const state = { q: "", sort: "relevance", filters: [], cursor: null };

function searchParams(cursor) {
  const params = new URLSearchParams();
  if (state.q) params.set("q", state.q);
  params.set("sort", state.sort);
  for (const [name, value] of state.filters) params.append(name, value);
  params.set("size", "10");
  if (cursor) params.set("cursor", cursor);
  return params;
}

function saveToAddress() {
  const params = searchParams();
  params.delete("size");
  if (params.get("sort") === "relevance") params.delete("sort");
  const query = params.toString();
  history.replaceState(null, "", query ? `/?${query}` : "/");
}

function loadFromAddress() {
  const params = new URLSearchParams(location.search);
  state.q = params.get("q") || "";
  state.sort = params.get("sort") || "relevance";
  state.filters = [];
  for (const name of ["entity", "event", "source", "lang", "from", "to"]) {
    for (const value of params.getAll(name)) state.filters.push([name, value]);
  }
  $("#q").value = state.q;
  $("#sort").value = state.sort;
}

async function runSearch({ append = false } = {}) {
  $("#error").hidden = true;
  if (!append) saveToAddress();
  let result;
  try {
    result = await api(`/search?${searchParams(append ? state.cursor : null)}`);
  } catch (error) {
    $("#error").textContent = `Search failed: ${error.message}`;
    $("#error").hidden = false;
    return;
  }
  state.cursor = result.next_cursor;
  if (!append) {
    $("#hits").replaceChildren();
    renderFacets(result.facets);
    renderFilters();
  }
  $("#status").textContent = `${result.total} article${result.total === 1 ? "" : "s"}` +
    (state.q ? ` match ${state.q}` : "");
  $("#hits").append(...result.hits.map(renderHit));
  $("#more").hidden = !state.cursor;
}

function renderHit(hit) {
  const tags = [
    ...hit.persons.map((n) => [n, "person"]),
    ...hit.organizations.map((n) => [n, "organization"]),
    ...hit.locations.map((n) => [n, "location"]),
    ...hit.events.map((n) => [n.replaceAll("_", " "), "event"]),
  ];
  return el("li", { class: "hit", "data-id": hit.id },
    el("h3", {}, el("button", { onclick: () => openArticle(hit.id) }, hit.title || hit.id)),
    el("div", { class: "muted" }, [hit.source, day(hit.published_at)].filter(Boolean).join(" · ")),
    hit.snippets.map((html) => el("p", { class: "snippet", html: `…${html}…` })),
    el("div", { class: "tags" }, tags.map(([name, kind]) => el("span", { class: `tag ${kind}` }, name))),
  );
}

function renderFacets(facets) {
  const box = $("#facets");
  box.replaceChildren();
  for (const [name, [title, filter]] of Object.entries(FACET_TITLES)) {
    const buckets = facets[name] || [];
    if (!buckets.length) continue;
    box.append(el("div", { class: "facet", "data-facet": name },
      el("h3", {}, title),
      el("ul", {}, buckets.map((b) => el("li", {},
        el("button", { onclick: () => addFilter(filter, b.value), title: `${FILTER_NAMES[filter]}: ${b.value}` },
          el("span", {}, filter === "event" ? b.value.replaceAll("_", " ") : b.value),
          el("span", { class: "count" }, String(b.count))))))));
  }
  if ((facets.dates || []).length) {
    box.append(el("div", { class: "facet", "data-facet": "dates" },
      el("h3", {}, "Dates"),
      el("ul", {}, facets.dates.map((b) => el("li", {},
        el("button", { onclick: () => addDateFilter(b.start, b.end) },
          el("span", {}, dateRange(b.start, b.end)),
          el("span", { class: "count" }, String(b.count))))))));
  }
  if (!box.children.length) box.append(el("p", { class: "muted" }, "No facets."));
}

function dateRange(start, end) {
  const a = day(start);
  const b = day(new Date(new Date(end).getTime() - 1).toISOString());
  return a === b ? a : `${a} – ${b}`;
}

function renderFilters() {
  $("#filters").replaceChildren(...state.filters.map(([name, value], index) =>
    el("button", { class: "chip", title: "remove this filter",
                   onclick: () => { state.filters.splice(index, 1); runSearch(); } },
      `${FILTER_NAMES[name] || name}: ${name === "from" || name === "to" ? day(value) : value} ×`)));
}

function addFilter(name, value) {
  if (!state.filters.some(([n, v]) => n === name && v === value)) state.filters.push([name, value]);
  runSearch();
}

function addDateFilter(start, end) {
  state.filters = state.filters.filter(([n]) => n !== "from" && n !== "to");
  state.filters.push(["from", start], ["to", end]);
  runSearch();
}

// --- article view -----------------------------------------------------------------------
async function openArticle(id) {
  let article;
  try {
    article = await api(`/articles/${encodeURIComponent(id)}`);
  } catch (error) {
    $("#error").textContent = `Article ${id}: ${error.message}`;
    $("#error").hidden = false;
    return;
  }
  $("#article-title").textContent = article.title;
  $("#article-meta").textContent = [article.source, day(article.published_at || article.ingested_at),
    article.language, article.url].filter(Boolean).join(" · ");
  const byType = {};
  for (const entity of article.entities) (byType[entity.type] ||= []).push(entity);
  $("#article-entities").replaceChildren(...Object.entries(byType).map(([type, list]) =>
    el("div", { class: "tags" }, el("strong", {}, `${type}:`),
      list.map((e) => el("button", { class: `tag ${type}`, title: `${e.id}, ${e.mentions} mention(s)`,
                                     onclick: () => addFilter("entity", e.name) }, e.name)))));
  $("#article-events").replaceChildren(...article.events.map((event) =>
    el("p", { class: "event-item" }, el("span", { class: "tag event" }, event.type.replaceAll("_", " ")),
      " ", event.evidence.join(" … "))));
  $("#article-body").replaceChildren(...markEntities(article.body, article.entities));
  $("#article").hidden = false;
  $("#article").dataset.id = id;
  $("#article").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

function markEntities(body, entities) {
  const spans = entities.flatMap((e) => e.offsets.map((o) => ({ ...o, type: e.type, name: e.name })))
    .sort((a, b) => a.start - b.start);
  const parts = [];
  let at = 0;
  for (const span of spans) {
    if (span.start < at || span.end > body.length) continue;
    parts.push(body.slice(at, span.start));
    parts.push(el("span", { class: `ent ${span.type}`, title: `${span.type}: ${span.name}` },
      body.slice(span.start, span.end)));
    at = span.end;
  }
  parts.push(body.slice(at));
  return parts;
}

// --- subscriptions ------------------------------------------------------------------------
async function loadSubscriptions() {
  const list = await api("/subscriptions");
  $("#subscription-list").replaceChildren(...list.map((s) =>
    el("li", { "data-id": s.id },
      el("span", {}, el("code", {}, s.query), el("span", { class: "muted" }, ` ${s.owner}`)),
      el("span", {},
        el("a", { href: `/subscriptions/${s.id}/feed.atom?access_token=${encodeURIComponent(token())}`,
                  title: "Atom feed", class: "muted" }, "feed"), " ",
        el("button", { onclick: () => removeSubscription(s.id), "aria-label": `remove ${s.query}` }, "Remove")))));
  if (!list.length) $("#subscription-list").append(el("li", { class: "muted" }, "No subscriptions yet."));
}

async function addSubscription(query) {
  $("#subscribe-error").hidden = true;
  try {
    await api("/subscriptions", { method: "POST", headers: { "Content-Type": "application/json" },
                                  body: JSON.stringify({ query, owner: "web" }) });
  } catch (error) {
    $("#subscribe-error").textContent = error.message;
    $("#subscribe-error").hidden = false;
    return;
  }
  $("#subscribe-query").value = "";
  await loadSubscriptions();
}

async function removeSubscription(id) {
  await api(`/subscriptions/${encodeURIComponent(id)}`, { method: "DELETE" });
  await loadSubscriptions();
}

// --- live alerts --------------------------------------------------------------------------
const shownAlerts = new Set();

function renderAlert(alert, fresh) {
  if (shownAlerts.has(alert.id)) return;
  shownAlerts.add(alert.id);
  const snippet = alert.snippet.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`)
    .replaceAll("«", "<mark>").replaceAll("»", "</mark>");
  const item = el("li", { class: `alert${fresh ? " new" : ""}`, "data-id": alert.id,
                          "data-subscription": alert.subscription_id },
    el("div", { class: "query" }, alert.query, alert.backfill ? " (earlier article)" : ""),
    el("button", { onclick: () => openArticle(alert.article_id) }, alert.title),
    el("p", { html: snippet }),
    el("div", { class: "muted" }, [alert.source, new Date(alert.created_at).toLocaleTimeString()]
      .filter(Boolean).join(" · ")));
  const list = $("#alert-list");
  if (fresh) list.prepend(item); else list.append(item);
}

function connectAlerts() {
  const source = new EventSource(`/alerts/stream?access_token=${encodeURIComponent(token())}`);
  source.addEventListener("ready", () => {
    $("#live").textContent = "live";
    $("#live").className = "badge on";
  });
  source.addEventListener("alert", (event) => renderAlert(JSON.parse(event.data), true));
  source.onerror = () => {
    $("#live").textContent = "reconnecting";
    $("#live").className = "badge off";
  };
}

async function loadAlertHistory() {
  for (const alert of await api("/alerts?size=20")) renderAlert(alert, false);
}

// --- start --------------------------------------------------------------------------------
async function start() {
  takeTokenFromAddress();
  if (!token()) await askToken();
  loadFromAddress();
  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.q = $("#q").value.trim();
    state.sort = $("#sort").value;
    runSearch();
  });
  $("#sort").addEventListener("change", () => { state.sort = $("#sort").value; runSearch(); });
  $("#more").addEventListener("click", () => runSearch({ append: true }));
  $("#article-close").addEventListener("click", () => { $("#article").hidden = true; });
  $("#subscribe-form").addEventListener("submit", (event) => {
    event.preventDefault();
    addSubscription($("#subscribe-query").value.trim());
  });
  $("#change-key").addEventListener("click", () => {
    localStorage.removeItem("newspipe-token");
    location.reload();
  });
  const me = await api("/me"); // asks for the key until the API takes it
  $("#who-owner").textContent = me.admin ? `${me.owner} (admin: every owner's)` : me.owner;
  connectAlerts();
  await Promise.all([runSearch(), loadSubscriptions(), loadAlertHistory()]);
  document.body.dataset.ready = "true";
}

start();
