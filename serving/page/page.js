"use strict";
// The public page: a short quiz, then /rank's list with reasons, a map and /eligibility.
// Every value from the service (partner texts included) is set with textContent, never as
// HTML; links only for http(s) URLs. The Content-Security-Policy forbids inline scripts.

const FIELDS = ["title", "organisation", "city", "postal_code", "start_at", "remote",
  "programme_label", "domain_label", "application_url", "lat", "lon"];
const POSTAL_CODE = /^(\d{5}|2[AB]\d{3})$/i;
const vocabulary = JSON.parse(document.getElementById("vocabulary").textContent);
let outline = null;

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function choices(fieldsetId, name, values) {
  const fieldset = document.getElementById(fieldsetId);
  for (const [value, label] of values) {
    const span = element("span", null, "choice");
    const input = element("input");
    input.type = "checkbox";
    input.name = name;
    input.value = value;
    input.id = `${name}-${value}`;
    const text = element("label", label);
    text.htmlFor = input.id;
    span.append(input, text);
    fieldset.append(span);
  }
}

function checked(name) {
  return [...document.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);
}

function readForm() {
  return {
    age: document.getElementById("age").value.trim(),
    disability: document.getElementById("disability").checked,
    place: document.getElementById("place").value.trim(),
    domains: checked("domains"),
    activities: checked("activities"),
    rhythm: document.getElementById("rhythm").value,
  };
}

function toQuery(state) {
  const query = new URLSearchParams();
  if (state.age) query.set("age", state.age);
  if (state.disability) query.set("handicap", "1");
  if (state.place) query.set("lieu", state.place);
  if (state.domains.length) query.set("domaines", state.domains.join(","));
  if (state.activities.length) query.set("activites", state.activities.join(","));
  if (state.rhythm) query.set("rythme", state.rhythm);
  return query;
}

function fromQuery(query) {
  document.getElementById("age").value = query.get("age") || "";
  document.getElementById("disability").checked = query.get("handicap") === "1";
  document.getElementById("place").value = query.get("lieu") || "";
  for (const [name, key] of [["domains", "domaines"], ["activities", "activites"]]) {
    const wanted = (query.get(key) || "").split(",");
    for (const input of document.querySelectorAll(`input[name="${name}"]`)) {
      input.checked = wanted.includes(input.value);
    }
  }
  const rhythm = query.get("rythme") || "";
  if (vocabulary.rhythms.some(([value]) => value === rhythm)) {
    document.getElementById("rhythm").value = rhythm;
  }
}

function requestBody(state) {
  const profile = { disability: state.disability };
  const body = { k: 10, fields: FIELDS, context: { source: "publisher", page: "/" } };
  const age = Number.parseInt(state.age, 10);
  if (Number.isFinite(age)) profile.age = age;
  if (POSTAL_CODE.test(state.place)) profile.postal_code = state.place.toUpperCase();
  else if (state.place) body.filters = { cities: [state.place] };
  const quiz = {};
  if (state.domains.length) quiz.domains = state.domains;
  if (state.activities.length) quiz.activities = state.activities;
  if (state.rhythm) quiz.rhythm = state.rhythm;
  if (Object.keys(quiz).length) profile.quiz = quiz;
  body.profile = profile;
  return body;
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    throw new Error(error.message || `erreur ${response.status}`);
  }
  return data;
}

function safeLink(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
  } catch {
    return null;
  }
}

function renderItem(item) {
  const li = element("li");
  li.dataset.offerId = item.offer_id;
  const title = element("h3", item.title || "Mission sans titre");
  const badges = element("p");
  if (item.programme_label) badges.append(element("span", item.programme_label, "badge"));
  if (item.domain_label) badges.append(element("span", item.domain_label, "badge"));
  const where = [item.organisation, [item.postal_code, item.city].filter(Boolean).join(" ")]
    .filter(Boolean).join(" · ");
  const meta = element("p", where, "meta");
  if (item.distance_km !== null && item.distance_km !== undefined) {
    meta.append(element("span", ` · à ${Math.round(item.distance_km)} km`, "distance"));
  }
  if (item.start_at) {
    const start = new Date(item.start_at);
    if (!Number.isNaN(start.getTime())) {
      meta.append(element("span", ` · dès le ${start.toLocaleDateString("fr-FR")}`));
    }
  }
  const reasons = element("ul", null, "reasons");
  reasons.setAttribute("aria-label", "Pourquoi cette mission");
  for (const reason of item.reasons) {
    const entry = element("li", reason.text, `reason reason-${reason.code}`);
    entry.dataset.code = reason.code;
    reasons.append(entry);
  }
  li.append(title, badges, meta, reasons);
  const link = item.application_url ? safeLink(item.application_url) : null;
  if (link) {
    const anchor = element("a", "Candidater");
    anchor.href = link;
    anchor.rel = "noopener noreferrer";
    li.append(anchor);
  }
  return li;
}

function project([lon, lat]) {
  return [(lon + 5.5) * Math.cos((46.5 * Math.PI) / 180) * 6, (51.5 - lat) * 6];
}

function svg(tag, attributes) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

async function drawMap(items) {
  const map = document.getElementById("map");
  if (outline === null) {
    const response = await fetch("/page/france.json");
    outline = (await response.json()).polygons;
  }
  map.replaceChildren();
  map.setAttribute("viewBox", "0 0 80 62");
  for (const polygon of outline) {
    const points = polygon.map((p) => project(p).map((v) => v.toFixed(2)).join(",")).join(" ");
    map.append(svg("polygon", { points, class: "land" }));
  }
  let shown = 0;
  for (const item of items) {
    if (typeof item.lat !== "number" || typeof item.lon !== "number") continue;
    const [x, y] = project([item.lon, item.lat]);
    const dot = svg("circle", { cx: x.toFixed(2), cy: y.toFixed(2), r: 0.9, class: "offer" });
    const label = svg("title", {});
    label.textContent = item.title || item.offer_id;
    dot.append(label);
    map.append(dot);
    shown += 1;
  }
  document.getElementById("map-caption").textContent =
    `Carte : ${shown} mission(s) sur place, sur un fond de carte de la France`;
}

async function search(state) {
  const status = document.getElementById("status");
  const list = document.getElementById("offers");
  status.textContent = "Recherche en cours…";
  try {
    const answer = await post("/rank", requestBody(state));
    list.replaceChildren(...answer.items.map(renderItem));
    status.textContent = answer.items.length
      ? `${answer.items.length} mission(s) proposée(s).`
      : "Aucune mission ouverte à votre profil ne correspond pour l’instant.";
    history.replaceState(null, "", `?${toQuery(state)}`);
    await drawMap(answer.items);
  } catch (error) {
    list.replaceChildren();
    status.textContent = `La recherche n’a pas abouti : ${error.message}`;
  }
}

async function askEligibility() {
  const state = readForm();
  const target = document.getElementById("eligibility");
  const age = Number.parseInt(state.age, 10);
  const body = { disability: state.disability };
  if (Number.isFinite(age)) body.age = age;
  try {
    const answer = await post("/eligibility", body);
    const list = element("ul");
    for (const programme of answer.programmes) {
      const entry = element("li", null, programme.eligible ? "ok" : "no");
      entry.dataset.programme = programme.programme;
      entry.append(element("strong", programme.eligible ? "Oui — " : "Non — "));
      entry.append(element("span", programme.reason));
      for (const note of programme.notes) entry.append(element("span", ` (${note})`));
      list.append(entry);
    }
    target.replaceChildren(list);
  } catch (error) {
    target.replaceChildren(element("p", `La question n’a pas abouti : ${error.message}`));
  }
}

function start() {
  choices("domains", "domains", vocabulary.domains);
  choices("activities", "activities", vocabulary.activities);
  const rhythm = document.getElementById("rhythm");
  for (const [value, label] of vocabulary.rhythms) {
    const option = element("option", label);
    option.value = value;
    rhythm.append(option);
  }
  document.getElementById("quiz").addEventListener("submit", (event) => {
    event.preventDefault();
    search(readForm()).then(() => document.getElementById("results").focus());
  });
  document.getElementById("print").addEventListener("click", () => window.print());
  document.getElementById("share").addEventListener("click", () => {
    navigator.clipboard?.writeText(window.location.href);
  });
  document.getElementById("ask-eligibility").addEventListener("click", askEligibility);
  const query = new URLSearchParams(window.location.search);
  if ([...query.keys()].length) {
    fromQuery(query);
    search(readForm());
  }
}

start();
