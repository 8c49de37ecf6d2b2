// The browser client for both parties: offers, the negotiation thread and the inbox, kept
// live by two feeds (live.js); commands go to the gateway (POST /commands), and their outcome
// is asked of GET /commands/{id}, so a refusal shows beside the field it is about.
import { Feed } from "./live.js";

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

const TERMS_FIELDS = [
  "title", "description", "contract_type", "currency", "hourly_rate", "weekly_limit_hours",
  "total_amount", "milestones", "start_date", "end_date", "talent_cloud_id", "po_number",
  "custom_fields",
];
const LABELS = {
  title: "title", description: "description", contract_type: "contract type",
  currency: "currency", hourly_rate: "hourly rate", weekly_limit_hours: "weekly limit",
  total_amount: "total", milestones: "milestones", start_date: "start", end_date: "end",
  talent_cloud_id: "Talent Cloud", po_number: "PO number", custom_fields: "custom fields",
};

const state = {
  me: null,
  role: "client",
  offers: new Map(),
  offer: null, // the open offer, as GET /api/offers/{id} returns it
  thread: new Map(), // message_id -> message (MessagePosted / TermsProposed)
  closed: null, // the open offer's ThreadClosed reason
  contract: null,
  notifications: new Map(),
  readHere: new Set(), // marked read on this page, before the service has said so
  inboxFeed: null,
  threadFeed: null,
  paused: false,
  modes: {},
};

// --- talking to the gateway ------------------------------------------------------------------

// Every read is made as the page's party: the services show each resource to its parties
// only. Behind the authenticating proxy, the proxy's own X-Actor-Id replaces this one.
async function api(path) {
  const response = await fetch(`/api${path}`, { headers: { "X-Actor-Id": state.me } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw Object.assign(new Error(body.message || response.statusText), { response, body });
  return body;
}

// An EventSource cannot set X-Actor-Id: on the local stand-in the gateway takes the party
// from `actor_id` instead (GATEWAY_PAGE_ACTOR); behind the proxy, the proxy's header wins.
function asMe() {
  return `actor_id=${encodeURIComponent(state.me)}`;
}

function newId() {
  return crypto.randomUUID();
}

// Sends a command and waits for its outcome. Resolves to {ok, event} or {ok: false, problem}
// where problem is {message, errors} (a 400 from the gateway, or a CommandRejected later).
// `wait`: how long to wait for the answer; a command that has no event when it succeeds
// (MarkNotificationsRead) only waits for a quick refusal.
async function send(command, { wait = 15 } = {}) {
  const body = { command_id: newId(), ...command };
  let response;
  try {
    response = await fetch("/commands", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Actor-Id": state.me },
      body: JSON.stringify(body),
    });
  } catch {
    return { ok: false, problem: { message: "The gateway is not answering: is `make run` going?" } };
  }
  const answer = await response.json().catch(() => ({ message: response.statusText }));
  if (response.status !== 202) return { ok: false, problem: answer };
  const waited = await fetch(`/commands/${answer.command_id}?wait=${wait}`, {
    headers: { "X-Actor-Id": state.me },
  }).then((r) => r.json());
  if (waited.status === "rejected") return { ok: false, problem: waited.rejection };
  return { ok: true, event: waited.event ?? null, pending: waited.status === "pending" };
}

// --- showing errors beside their fields ----------------------------------------------------

function clearErrors(form) {
  for (const element of $$(".invalid", form)) element.classList.remove("invalid");
  for (const element of $$(".error, .form-errors", form)) element.textContent = "";
}

// The element for a field path: the path itself, or the nearest enclosing field shown.
function fieldElement(form, path) {
  const parts = path.split(".");
  while (parts.length) {
    const found = form.querySelector(`[data-field="${CSS.escape(parts.join("."))}"]`);
    if (found) return found;
    parts.pop();
  }
  return null;
}

function showProblem(form, problem) {
  clearErrors(form);
  const general = [];
  for (const { field, message } of problem.errors ?? []) {
    const element = field ? fieldElement(form, field) : null;
    const slot = element && $(":scope > .error", element);
    if (slot) {
      element.classList.add("invalid");
      slot.textContent = slot.textContent ? `${slot.textContent}; ${message}` : message;
    } else general.push(`${field ? `${field}: ` : ""}${message}`);
  }
  const summary = $(".form-errors", form) ?? $(".form-errors");
  summary.textContent = [problem.message, ...general].filter(Boolean).join(" — ");
  summary.classList.add("invalid");
}

async function submitting(form, command, onDone) {
  const buttons = $$("button", form);
  buttons.forEach((b) => (b.disabled = true));
  try {
    const result = await send(command);
    if (!result.ok) {
      showProblem(form, result.problem);
      return false;
    }
    clearErrors(form);
    await onDone?.(result);
    return true;
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

// --- rendering -------------------------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") element.className = value;
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  element.append(...children.flat().filter((c) => c !== null && c !== undefined));
  return element;
}

function show(value) {
  if (value === undefined || value === null) return "—";
  if (Array.isArray(value)) {
    return value.map((m) => `${m.description}: ${m.amount}${m.due_date ? ` by ${m.due_date}` : ""}`).join("; ");
  }
  if (typeof value === "object") return Object.entries(value).map(([k, v]) => `${k}=${v}`).join(", ") || "—";
  return String(value);
}

function price(terms) {
  return terms.contract_type === "hourly"
    ? `${terms.hourly_rate} ${terms.currency}/h${terms.weekly_limit_hours ? `, up to ${terms.weekly_limit_hours} h/week` : ""}`
    : `${terms.total_amount} ${terms.currency} fixed`;
}

function differences(before, after) {
  return TERMS_FIELDS.filter((f) => JSON.stringify(before[f] ?? null) !== JSON.stringify(after[f] ?? null))
    .map((field) => ({ field, current: before[field], proposed: after[field] }));
}

function differencesTable(rows, headings = ["", "was", "now"]) {
  if (!rows.length) return el("p", { class: "hint" }, "no change to the terms");
  return el("table", { class: "diff" },
    el("thead", {}, el("tr", {}, headings.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((d) => el("tr", { "data-field": d.field },
      el("th", {}, LABELS[d.field] ?? d.field), el("td", { class: "old" }, show(d.current)),
      el("td", { class: "new" }, show(d.proposed))))));
}

function termsTable(terms) {
  return el("table", { class: "terms" }, el("tbody", {},
    TERMS_FIELDS.filter((f) => terms[f] !== undefined && terms[f] !== null)
      .map((f) => el("tr", { "data-field": f }, el("th", {}, LABELS[f]), el("td", {}, show(terms[f]))))));
}

function who(id) {
  return id === state.me ? "you" : id;
}

function renderOffers() {
  const list = $("#offers");
  const offers = [...state.offers.values()].sort((a, b) => b.created_at.localeCompare(a.created_at));
  list.replaceChildren(...offers.map((offer) => el("li", {
    class: offer.offer_id === state.offer?.offer_id ? "selected" : "",
    "data-offer-id": offer.offer_id,
  }, el("button", { type: "button", onclick: () => openOffer(offer.offer_id) },
    el("strong", {}, offer.terms.title), " ", el("span", { class: `status ${offer.status}` }, offer.status),
    el("br"), el("small", {}, `${price(offer.terms)} · ${who(offer.client_id)} → ${who(offer.freelancer_id)}`)))));
  if (!offers.length) list.append(el("li", { class: "hint" }, "no offers yet"));
}

function renderOffer() {
  const offer = state.offer;
  $("#offer").hidden = !offer;
  if (!offer) return;
  const mine = offer.client_id === state.me ? "client" : "freelancer";
  const pending = offer.status === "pending";
  $("#offer").dataset.status = offer.status;
  $("#offer-title").textContent = offer.terms.title;
  $("#offer-summary").replaceChildren(
    el("span", { class: `status ${offer.status}`, id: "offer-status" }, offer.status), " ",
    `version ${offer.version} · ${price(offer.terms)} · client ${who(offer.client_id)}, freelancer ${who(offer.freelancer_id)}`,
    pending ? ` · expires ${new Date(offer.expires_at).toLocaleString()}` : "",
    offer.close_reason ? ` · ${offer.close_reason}` : "");
  $("#accept").hidden = $("#decline").hidden = !(pending && mine === "freelancer");
  $("#accept").textContent = `Accept version ${offer.version}`;
  $("#change").hidden = $("#withdraw").hidden = !(pending && mine === "client");
  $("#close-reason").hidden = !pending;
  $("#chat-form").hidden = $("#propose").hidden = !pending || state.closed !== null;

  const versions = offer.versions.map((version, i) => el("li", { "data-version": version.version },
    el("h4", {}, `Version ${version.version}`, el("small", {}, ` sent ${new Date(version.sent_at).toLocaleString()}`),
      version.in_response_to ? el("small", {}, " · answers a proposal") : null),
    version.message ? el("blockquote", {}, version.message) : null,
    i === 0 ? termsTable(version.terms) : differencesTable(differences(offer.versions[i - 1].terms, version.terms),
      ["", `version ${offer.versions[i - 1].version}`, `version ${version.version}`])));
  $("#versions").replaceChildren(...versions.reverse());
  renderContract();
  renderThread();
}

function renderContract() {
  const box = $("#contract");
  const contract = state.contract;
  box.hidden = !contract;
  if (!contract) return;
  box.replaceChildren(el("h3", {}, "Contract ", el("span", { class: `status ${contract.status}` }, contract.status)),
    el("p", {}, `Contract ${contract.contract_id} · offer version ${contract.offer_version} · ${price(contract.terms)} · `,
      `${contract.terms.start_date} to ${contract.terms.end_date}`,
      contract.terms.talent_cloud_id ? ` · Talent Cloud ${contract.terms.talent_cloud_id}` : ""));
  box.dataset.contractId = contract.contract_id;
}

function answeredBy(messageId) {
  return state.offer?.versions.find((v) => v.in_response_to === messageId)?.version ?? null;
}

function renderThread() {
  const messages = [...state.thread.values()].sort((a, b) => a.sent_at.localeCompare(b.sent_at));
  const canAnswer = state.offer?.status === "pending" && state.offer.client_id === state.me;
  $("#thread").replaceChildren(...messages.map((m) => el("li", {
    class: `${m.kind} ${m.sender_id === state.me ? "mine" : "theirs"}`, "data-message-id": m.message_id,
  }, el("small", {}, `${who(m.sender_id)} · ${new Date(m.sent_at).toLocaleTimeString()}`),
  m.text ? el("p", { class: "text" }, m.text) : null,
  m.kind === "terms_proposal" ? [
    el("p", { class: "hint" }, `${who(m.sender_id)} proposed other terms:`),
    differencesTable(m.differences, ["", "current", "proposed"]),
    answeredBy(m.message_id) ? el("p", { class: "hint answered" }, `answered by version ${answeredBy(m.message_id)}`)
      : canAnswer ? el("button", { type: "button", class: "answer", onclick: () => editOffer("change", m) }, "Answer with a new offer…") : null,
  ] : null)));
  $("#thread-status").textContent = state.closed ? `The thread is closed (${state.closed}).` : messages.length ? "" : "No messages yet.";
}

function renderInbox() {
  const items = [...state.notifications.values()].sort((a, b) => b.created_at.localeCompare(a.created_at));
  const isRead = (n) => n.read || state.readHere.has(n.notification_id);
  $("#unread-count").textContent = items.filter((n) => !isRead(n)).length;
  $("#inbox").replaceChildren(...items.map((n) => el("li", {
    class: `notification ${isRead(n) ? "read" : "unread"}`, "data-notification-id": n.notification_id, "data-kind": n.kind,
  }, el("strong", {}, n.title), el("p", {}, n.body),
  el("small", {}, new Date(n.created_at).toLocaleString()), " ",
  n.offer_id ? el("button", { type: "button", onclick: () => openOffer(n.offer_id) }, "Open") : null,
  isRead(n) ? null : el("button", { type: "button", class: "mark-read", onclick: () => markRead([n.notification_id]) }, "Mark read"))));
  if (!items.length) $("#inbox").append(el("li", { class: "hint" }, "nothing yet"));
}

function renderLive() {
  const modes = Object.values(state.modes);
  const mode = state.paused ? "paused"
    : ["reconnecting", "connecting", "polling", "stream"].find((m) => modes.includes(m)) ?? "off";
  const words = {
    stream: "live", polling: "live (polling: no stream here)", connecting: "connecting…",
    reconnecting: "reconnecting…", paused: "paused", off: "not connected",
  };
  $("#live-status").textContent = words[mode];
  $("#live-status").dataset.mode = mode;
  $("#live-toggle").textContent = state.paused ? "Resume live updates" : "Pause live updates";
}

// --- loading ---------------------------------------------------------------------------------

async function loadOffers() {
  const party = state.role === "client" ? "client_id" : "freelancer_id";
  const page = await api(`/offers?${party}=${encodeURIComponent(state.me)}&limit=200`);
  state.offers = new Map(page.items.map((o) => [o.offer_id, o]));
  renderOffers();
}

async function loadOffer(offerId) {
  const offer = await api(`/offers/${encodeURIComponent(offerId)}`);
  if (state.offer?.offer_id !== offerId && state.offer !== null) return; // another one opened meanwhile
  state.offer = offer;
  state.offers.set(offer.offer_id, offer);
  if (offer.status === "accepted") await loadContract(offer);
  renderOffers();
  renderOffer();
}

async function loadContract(offer) {
  const party = offer.client_id === state.me ? "client_id" : "freelancer_id";
  const page = await api(`/contracts?${party}=${encodeURIComponent(state.me)}&limit=200`);
  state.contract = page.items.find((c) => c.offer_id === offer.offer_id) ?? null;
  if (!state.contract) setTimeout(() => state.offer?.offer_id === offer.offer_id && loadOffer(offer.offer_id), 1000);
}

function threadItem(type, item) {
  if (item.offer_id && item.offer_id !== state.offer?.offer_id) return; // an earlier offer's
  if (type === "ThreadClosed") {
    state.closed = item.reason;
    loadOffer(item.offer_id);
    return;
  }
  const kind = type === "TermsProposed" ? "terms_proposal" : "message";
  state.thread.set(item.message_id, { kind, ...item });
  renderThread();
}

async function threadHistory(offerId) {
  try {
    const page = await api(`/threads/${encodeURIComponent(offerId)}/messages?limit=200`);
    const items = page.items.map((m) => [m.kind === "terms_proposal" ? "TermsProposed" : "MessagePosted", { offer_id: offerId, ...m }]);
    if (page.closed) items.push(["ThreadClosed", { offer_id: offerId, reason: page.close_reason }]);
    return items;
  } catch (error) {
    if (error.response?.status === 404) return []; // the thread opens with the offer's first event
    throw error;
  }
}

async function openOffer(offerId) {
  state.threadFeed?.close();
  state.offer = null;
  state.contract = null;
  state.thread = new Map();
  state.closed = null;
  $("#offer-editor").hidden = true;
  history.replaceState(null, "", `?as=${encodeURIComponent(state.me)}&role=${state.role}&offer=${encodeURIComponent(offerId)}`);
  $("#offer-missing").hidden = true;
  try {
    await loadOffer(offerId);
  } catch (error) {
    if (error.response?.status !== 404) throw error;
    // An unknown offer and another party's look the same: the services show neither.
    $("#offer-missing").textContent = `There is no offer ${offerId} for ${state.me}: it does not exist, or it is not yours.`;
    $("#offer-missing").hidden = false;
    return;
  }
  state.threadFeed = new Feed({
    stream: `/api/threads/${encodeURIComponent(offerId)}/stream?${asMe()}`,
    history: () => threadHistory(offerId),
    types: ["MessagePosted", "TermsProposed", "ThreadClosed"],
    onItem: threadItem,
    onMode: (mode) => { state.modes.thread = mode; renderLive(); },
  });
  if (!state.paused) state.threadFeed.start();
}

function notificationItem(_type, item) {
  const known = state.notifications.get(item.notification_id);
  state.notifications.set(item.notification_id, { ...known, ...item, read: item.read ?? known?.read ?? false });
  renderInbox();
  if (!known) refreshSoon(item.offer_id);
}

// Something happened to offers (a notification says so): read them again, once per burst.
let refreshing = null;
const touched = new Set();
function refreshSoon(offerId) {
  if (offerId) touched.add(offerId);
  clearTimeout(refreshing);
  refreshing = setTimeout(() => {
    loadOffers();
    if (state.offer && touched.has(state.offer.offer_id)) loadOffer(state.offer.offer_id);
    touched.clear();
  }, 100);
}

function follow() {
  state.inboxFeed?.close();
  state.notifications = new Map();
  state.inboxFeed = new Feed({
    stream: `/api/notifications/stream?recipient_id=${encodeURIComponent(state.me)}&${asMe()}`,
    history: async () => (await api(`/notifications?recipient_id=${encodeURIComponent(state.me)}&limit=200`)).items
      .map((n) => ["NotificationCreated", n]),
    types: ["NotificationCreated"],
    onItem: notificationItem,
    onMode: (mode) => { state.modes.inbox = mode; renderLive(); },
  }).start();
}

// --- commands --------------------------------------------------------------------------------

async function markRead(ids) {
  if (!ids.length) return;
  ids.forEach((id) => state.readHere.add(id));
  renderInbox();
  const result = await send({ type: "MarkNotificationsRead", recipient_id: state.me, notification_ids: ids }, { wait: 3 });
  if (!result.ok) {
    ids.forEach((id) => state.readHere.delete(id));
    renderInbox();
    alert(result.problem.message);
  }
}

function offerAction(type, extra = {}) {
  return () => submitting($("#actions"), { type, offer_id: state.offer.offer_id, ...extra() }, async () => {
    $("#close-reason").value = "";
    await loadOffer(state.offer.offer_id);
  });
}
const reason = () => ({ reason: $("#close-reason").value.trim() || undefined });

// --- the offer form (extend, or change in answer to a proposal) ------------------------------

function addRow(listId, templateId, values = {}) {
  const row = $(`#${templateId}`).content.firstElementChild.cloneNode(true);
  for (const [name, value] of Object.entries(values)) {
    const input = $(`[name="${name}"]`, row);
    if (input) input.value = value ?? "";
  }
  $(".remove", row).addEventListener("click", () => { row.remove(); numberRows(); });
  $(`#${listId}`).append(row);
  numberRows();
  return row;
}

// Field paths of the rows, as the contracts name them (terms.milestones.2.amount, …).
function numberRows() {
  $$("#milestones > li").forEach((row, i) => {
    for (const label of $$("[data-field]", row)) {
      const name = label.dataset.name ?? (label.dataset.name = label.dataset.field);
      label.dataset.field = `terms.milestones.${i}.${name}`;
    }
  });
  $$("#custom-fields > li").forEach((row) => {
    row.dataset.field = `terms.custom_fields.${$("[name=cf_key]", row).value.trim()}`;
  });
}

function showContractType() {
  const fixed = $("#offer-form").elements.contract_type.value === "fixed";
  $$("#offer-form .hourly").forEach((e) => (e.hidden = fixed));
  $$("#offer-form .fixed").forEach((e) => (e.hidden = !fixed));
  if (fixed && !$("#milestones").children.length) addRow("milestones", "milestone-row");
}

const given = (value) => (value.trim() === "" ? undefined : value.trim());
// A whole number goes as a number; anything else as typed, for the gateway to name the problem.
const wholeOrAsTyped = (value) => (/^\d+$/.test(value.trim()) ? Number(value) : given(value));

function customValue(value, kind) {
  if (kind === "number" && value.trim() !== "" && Number.isFinite(Number(value))) return Number(value);
  if (kind === "boolean" && /^(true|yes)$/i.test(value.trim())) return true;
  if (kind === "boolean" && /^(false|no)$/i.test(value.trim())) return false;
  return value;
}

function termsFromForm(form) {
  const f = form.elements;
  const fixed = f.contract_type.value === "fixed";
  const terms = {
    title: given(f.title.value), description: given(f.description.value), contract_type: f.contract_type.value,
    currency: given(f.currency.value), start_date: given(f.start_date.value), end_date: given(f.end_date.value),
    talent_cloud_id: given(f.talent_cloud_id.value), po_number: given(f.po_number.value),
  };
  if (fixed) {
    terms.milestones = $$("#milestones > li").map((row) => ({
      description: given($("[name=ms_description]", row).value),
      amount: given($("[name=ms_amount]", row).value),
      due_date: given($("[name=ms_due_date]", row).value),
    }));
    const sum = terms.milestones.reduce((total, m) => total + (Number(m.amount) || 0), 0);
    terms.total_amount = given(f.total_amount.value) ?? (sum > 0 ? sum.toFixed(2) : undefined);
  } else {
    terms.hourly_rate = given(f.hourly_rate.value);
    terms.weekly_limit_hours = wholeOrAsTyped(f.weekly_limit_hours.value);
  }
  const custom = $$("#custom-fields > li").filter((row) => $("[name=cf_key]", row).value.trim() !== "");
  if (custom.length) {
    terms.custom_fields = Object.fromEntries(custom.map((row) => [
      $("[name=cf_key]", row).value.trim(), customValue($("[name=cf_value]", row).value, $("[name=cf_kind]", row).value),
    ]));
  }
  return terms;
}

function fillForm(form, terms) {
  const f = form.elements;
  for (const name of ["title", "description", "currency", "hourly_rate", "weekly_limit_hours", "total_amount",
    "start_date", "end_date", "talent_cloud_id", "po_number"]) f[name].value = terms[name] ?? "";
  f.contract_type.value = terms.contract_type ?? "hourly";
  $("#milestones").replaceChildren();
  for (const m of terms.milestones ?? []) addRow("milestones", "milestone-row", { ms_description: m.description, ms_amount: m.amount, ms_due_date: m.due_date });
  $("#custom-fields").replaceChildren();
  for (const [key, value] of Object.entries(terms.custom_fields ?? {})) {
    addRow("custom-fields", "custom-field-row", { cf_key: key, cf_value: String(value), cf_kind: typeof value === "number" ? "number" : typeof value === "boolean" ? "boolean" : "text" });
  }
  numberRows();
  showContractType();
}

function isoDay(offsetDays) {
  return new Date(Date.now() + offsetDays * 86400000).toISOString().slice(0, 10);
}

// mode "extend": a new offer; "change": the open offer's next version, answering `proposal`.
function editOffer(mode, proposal = null) {
  const form = $("#offer-form");
  form.reset();
  clearErrors(form);
  form.dataset.mode = mode;
  form.dataset.inResponseTo = proposal?.message_id ?? "";
  $("#extend-only").hidden = mode !== "extend";
  $("#editor-title").textContent = mode === "extend" ? "New offer" : `A different offer: version ${state.offer.version + 1}`;
  $("#send-offer").textContent = mode === "extend" ? "Send the offer" : "Send the new version";
  $("#responding").hidden = !proposal;
  $("#responding").textContent = proposal ? `Answering ${who(proposal.sender_id)}'s proposal: its changes are filled in.` : "";
  if (mode === "extend") {
    fillForm(form, { contract_type: "hourly", currency: "USD", start_date: isoDay(1), end_date: isoDay(91) });
    form.elements.job_id.value = `job-${newId().slice(0, 8)}`;
    form.elements.proposal_id.value = `proposal-${newId().slice(0, 8)}`;
  } else {
    fillForm(form, { ...state.offer.terms, ...(proposal?.changes ?? {}) });
  }
  $("#offer-editor").hidden = false;
  $("#offer-editor").scrollIntoView({ block: "start" });
}

async function submitOffer(event) {
  event.preventDefault();
  const form = event.target;
  const f = form.elements;
  numberRows();
  const terms = termsFromForm(form);
  const message = given(f.message.value);
  if (form.dataset.mode === "extend") {
    const offerId = `offer-${newId()}`;
    await submitting(form, {
      type: "ExtendOffer", offer_id: offerId, job_id: given(f.job_id.value), proposal_id: given(f.proposal_id.value),
      client_id: state.me, freelancer_id: given(f.freelancer_id.value), terms, message,
    }, async () => { $("#offer-editor").hidden = true; await loadOffers(); await openOffer(offerId); });
  } else {
    await submitting(form, {
      type: "ChangeOffer", offer_id: state.offer.offer_id, terms, message,
      in_response_to: form.dataset.inResponseTo || undefined,
    }, async () => { $("#offer-editor").hidden = true; await loadOffer(state.offer.offer_id); });
  }
}

// --- email preferences -----------------------------------------------------------------------

const KINDS = ["offer_received", "offer_changed", "offer_withdrawn", "offer_accepted", "offer_declined",
  "offer_expired", "offer_expiring", "contract_active", "talent_cloud_joined", "new_message", "terms_proposed"];

function renderEmailForm(chosen) {
  const form = $("#email-form");
  $("#email-kinds").replaceChildren(...KINDS.map((kind) =>
    el("label", {}, el("input", { type: "checkbox", name: "kind", value: kind }), ` ${kind.replaceAll("_", " ")}`)));
  form.elements.email.value = chosen.email ?? "";
  for (const box of form.elements.kind) box.checked = chosen.email_kinds.includes(box.value);
  form.elements.digest.checked = chosen.email ? chosen.digest_kinds.includes("new_message") : true;
  $("#email-saved").textContent = chosen.email ? `emailing ${chosen.email}` : "no email";
}

async function loadEmailSettings() {
  try {
    renderEmailForm(await api(`/notifications/preferences?recipient_id=${encodeURIComponent(state.me)}`));
  } catch {
    $("#email-saved").textContent = "preferences not available (is notification_service running?)";
  }
}

async function saveEmailSettings(event) {
  event.preventDefault();
  const form = event.target;
  const kinds = [...form.elements.kind].filter((box) => box.checked).map((box) => box.value);
  const email = form.elements.email.value.trim() || null;
  await submitting(form, {
    type: "SetNotificationPreferences", recipient_id: state.me, email,
    email_kinds: kinds.includes("all") ? ["all"] : kinds,
    digest_kinds: form.elements.digest.checked ? ["new_message"] : [],
  }, ({ event: changed }) => changed && renderEmailForm(changed));
}

// --- wiring ----------------------------------------------------------------------------------

async function enter(me, role) {
  state.me = me;
  state.role = role;
  $("#who").elements.me.value = me;
  $("#who").elements.role.value = role;
  document.title = `Offers — ${me} (${role})`;
  $("#welcome").hidden = true;
  $("#workspace").hidden = false;
  $("#live-toggle").hidden = false;
  $("#new-offer").hidden = role !== "client";
  $("#offer-editor").hidden = true;
  state.threadFeed?.close(); // another party now: the offer open before is not theirs
  delete state.modes.thread;
  state.offer = state.contract = null;
  state.readHere.clear();
  renderOffer();
  follow();
  loadEmailSettings();
  $("#email-settings").open = new URLSearchParams(location.search).get("settings") === "email";
  await loadOffers();
  const offerId = new URLSearchParams(location.search).get("offer");
  if (offerId) await openOffer(offerId);
  else history.replaceState(null, "", `?as=${encodeURIComponent(me)}&role=${role}`);
}

function wire() {
  $("#who").addEventListener("submit", (event) => {
    event.preventDefault();
    const me = event.target.elements.me.value.trim();
    if (me) {
      history.replaceState(null, "", `?as=${encodeURIComponent(me)}&role=${event.target.elements.role.value}`);
      enter(me, event.target.elements.role.value);
    }
  });
  $("#live-toggle").addEventListener("click", () => {
    state.paused = !state.paused;
    for (const feed of [state.inboxFeed, state.threadFeed]) feed && (state.paused ? feed.pause() : feed.resume());
    renderLive();
  });
  $("#new-offer").addEventListener("click", () => editOffer("extend"));
  $("#cancel-offer").addEventListener("click", () => ($("#offer-editor").hidden = true));
  $("#add-milestone").addEventListener("click", () => addRow("milestones", "milestone-row"));
  $("#add-custom-field").addEventListener("click", () => addRow("custom-fields", "custom-field-row"));
  $("#custom-fields").addEventListener("input", numberRows);
  for (const radio of $("#offer-form").elements.contract_type) radio.addEventListener("change", showContractType);
  $("#offer-form").addEventListener("submit", submitOffer);
  $("#email-form").addEventListener("submit", saveEmailSettings);
  $("#mark-all-read").addEventListener("click", () => markRead([...state.notifications.values()]
    .filter((n) => !n.read && !state.readHere.has(n.notification_id)).map((n) => n.notification_id)));
  $("#accept").addEventListener("click", offerAction("AcceptOffer", () => ({ version: state.offer.version })));
  $("#decline").addEventListener("click", offerAction("DeclineOffer", reason));
  $("#withdraw").addEventListener("click", offerAction("WithdrawOffer", reason));
  $("#change").addEventListener("click", () => editOffer("change"));
  $("#chat-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const text = form.elements.text.value;
    await submitting(form, { type: "PostMessage", offer_id: state.offer.offer_id, message_id: newId(), text },
      () => { form.reset(); });
  });
  $("#propose-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const f = form.elements;
    const changes = Object.fromEntries(Object.entries({
      hourly_rate: given(f.hourly_rate.value), weekly_limit_hours: wholeOrAsTyped(f.weekly_limit_hours.value),
      total_amount: given(f.total_amount.value), start_date: given(f.start_date.value), end_date: given(f.end_date.value),
    }).filter(([, value]) => value !== undefined));
    await submitting(form, {
      type: "ProposeTerms", offer_id: state.offer.offer_id, message_id: newId(), changes, text: given(f.text.value),
    }, () => { form.reset(); $("#propose").open = false; });
  });
  const params = new URLSearchParams(location.search);
  if (params.get("as")) enter(params.get("as"), params.get("role") === "freelancer" ? "freelancer" : "client");
}

wire();
