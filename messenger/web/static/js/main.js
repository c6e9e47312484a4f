// The page: renders the engine's state and turns what the user does into
// actions for it.  Message text is only ever put in the page as text
// (textContent), never as HTML; links are made with createElement.

import { Engine } from "./engine.js";
import { shareAcrossTabs } from "./tabs.js";
import {
  ROOM,
  USERNAME,
  cleanField,
  escapeBody,
  isRoom,
  newClientId,
  unescapeBody,
} from "./protocol.js";

const KEY = "messenger.session";
// A line is at most 8192 bytes (the server's default --max-line); leave
// room for "SEND|<client id>|<target>|".
const MAX_BODY_BYTES = 8000;
const $ = (id) => document.getElementById(id);

let port = null;
let state = null;
let active = null;
let nextRid = 1;
const waiting = new Map();
let signup = false;
const memberCounts = new Map();

// -- storage: the token only where "stay signed in" says --------------------

function loadSaved() {
  for (const [storage, remember] of [[localStorage, true], [sessionStorage, false]]) {
    try {
      const saved = JSON.parse(storage.getItem(KEY) || "null");
      if (saved && saved.token) return { saved, remember };
    } catch {
      /* unreadable: ignore */
    }
  }
  return { saved: null, remember: false };
}

function persist(remember, data) {
  try {
    if (data === null) {
      localStorage.removeItem(KEY);
      sessionStorage.removeItem(KEY);
      return;
    }
    (remember ? localStorage : sessionStorage).setItem(KEY, JSON.stringify(data));
    (remember ? sessionStorage : localStorage).removeItem(KEY);
  } catch {
    /* storage full or disabled: the session lasts as long as the page */
  }
}

// -- the engine: one per browser in a SharedWorker, else one per tab ---------

function startEngine() {
  // ?engine=tab keeps the connection in the tab (for testing the fallback).
  const inTab = new URLSearchParams(location.search).get("engine") === "tab";
  if (typeof SharedWorker === "function" && !inTab) {
    try {
      const worker = new SharedWorker(new URL("./worker.js", import.meta.url), {
        type: "module",
        name: "messenger",
      });
      return worker.port;
    } catch {
      /* fall through to an engine in this tab */
    }
  }
  const url = new URL("ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const alone = new URLSearchParams(location.search).get("tabs") === "alone";
  if (navigator.locks && typeof BroadcastChannel === "function" && !alone) {
    return shareAcrossTabs(() => new Engine(url.href), attachMessage);
  }
  const channel = new MessageChannel();
  new Engine(url.href).attach(channel.port1);
  return channel.port2;
}

/** Who this page is, with what storage holds now. */
function attachMessage() {
  const { saved, remember } = loadSaved();
  return {
    type: "attach",
    saved,
    remember,
    view: { active, visible: document.visibilityState === "visible" },
  };
}

function call(message) {
  const rid = nextRid++;
  return new Promise((resolve) => {
    waiting.set(rid, resolve);
    port.postMessage({ ...message, rid });
  });
}

function tell(message) {
  port.postMessage(message);
}

function tellView() {
  tell({ type: "view", active, visible: document.visibilityState === "visible" });
}

function received(event) {
  const message = event.data;
  switch (message.type) {
    case "state":
      state = message.state;
      render();
      break;
    case "persist":
      persist(message.remember, message.data);
      break;
    case "result": {
      const resolve = waiting.get(message.rid);
      waiting.delete(message.rid);
      resolve?.(message);
      break;
    }
    case "notify":
      notify(message);
      break;
  }
}

// -- rendering ------------------------------------------------------------------

function render() {
  const signedIn = state.me && state.status !== "signed-out";
  $("auth").hidden = Boolean(signedIn);
  $("app").hidden = !signedIn;
  if (!signedIn) {
    if (state.notice) $("auth-error").textContent = state.notice;
    document.title = "Messenger";
    return;
  }
  if (!active || !(state.rooms.includes(active) || state.dms.includes(active))) {
    const wanted = location.hash.slice(1) ? decodeURIComponent(location.hash.slice(1)) : null;
    const target =
      (wanted && (state.rooms.includes(wanted) || state.dms.includes(wanted)) && wanted) ||
      (state.rooms.includes("#general") ? "#general" : state.rooms[0] || state.dms[0] || null);
    if (target) select(target, false);
  }
  renderHeader();
  renderLists();
  renderConversation();
  const unread = Object.values(state.conversations).reduce((n, c) => n + c.unread, 0);
  $("open-sidebar").classList.toggle("has-unread", unread > 0);
  $("open-sidebar").setAttribute("aria-label", unread ? `Show conversations, ${unread} unread` : "Show conversations");
  document.title = (unread ? `(${unread}) ` : "") + (active ? `${label(active)} · ` : "") + (state.serverName || "Messenger");
}

function label(target) {
  if (isRoom(target)) return target;
  return displayOf(target);
}

function displayOf(username) {
  const p = state.people[username];
  return (p && p.display) || username;
}

function isOnline(username) {
  const p = state.people[username];
  return Boolean(p && p.online);
}

function renderHeader() {
  $("server-name").textContent = state.serverName || "Messenger";
  const text = {
    online: "Connected",
    connecting: "Connecting…",
    offline: "Offline, reconnecting…",
    "taken-over": "Disconnected",
  }[state.status] || "";
  $("connection-text").textContent = text;
  $("connection").dataset.status = state.status;
  $("me-display").textContent = state.me.display;
  $("me-username").textContent = "@" + state.me.username;
  avatar($("me-avatar"), state.me.username, state.me.display);

  const banner = $("banner");
  const action = $("banner-action");
  action.hidden = true;
  if (state.status === "taken-over") {
    banner.hidden = false;
    banner.dataset.kind = "warning";
    $("banner-text").textContent = state.notice || "You were signed in from another place.";
    action.hidden = false;
    action.textContent = "Use Messenger here";
    action.onclick = () => tell({ type: "reclaim" });
  } else if (state.status === "offline" || state.status === "connecting") {
    banner.hidden = false;
    banner.dataset.kind = "info";
    $("banner-text").textContent =
      "Connection lost. Reconnecting…" + (state.outbox ? ` ${state.outbox} message(s) will be sent.` : "");
  } else {
    banner.hidden = true;
  }
  renderNotifySetting();
}

function renderNotifySetting() {
  const supported = "Notification" in window;
  const permission = supported ? Notification.permission : "unsupported";
  $("notify").hidden = permission !== "default";
  $("notify-state").textContent = {
    granted: "On: direct messages notify you while this page is in the background.",
    denied: "Blocked in this browser's site settings.",
    default: "Get a notification for direct messages while this page is in the background.",
    unsupported: "Not available in this browser.",
  }[permission];
}

function renderLists() {
  fillList($("rooms"), state.rooms, (room, a) => {
    const hash = document.createElement("span");
    hash.className = "hash";
    hash.textContent = "#";
    hash.setAttribute("aria-hidden", "true");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = room.slice(1);
    a.append(hash, name);
  });
  fillList($("dms"), state.dms, (user, a) => {
    const dot = document.createElement("span");
    dot.className = "presence" + (isOnline(user) ? " online" : "");
    dot.setAttribute("role", "img");
    dot.setAttribute("aria-label", isOnline(user) ? "online" : "offline");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = displayOf(user);
    a.append(dot, name);
  });
}

function fillList(list, targets, fill) {
  list.replaceChildren(
    ...targets.map((target) => {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = "#" + encodeURIComponent(target);
      a.dataset.target = target;
      fill(target, a);
      const c = state.conversations[target];
      if (c && c.unread && target !== active) {
        a.classList.add("unread");
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = c.unread > 99 ? "99+" : String(c.unread);
        badge.setAttribute("aria-label", `${c.unread} unread`);
        a.append(badge);
      }
      if (target === active) a.setAttribute("aria-current", "page");
      a.addEventListener("click", (event) => {
        event.preventDefault();
        select(target, true);
        closeSidebar();
      });
      li.append(a);
      return li;
    }),
  );
}

let renderedKey = null;

function renderConversation() {
  const title = $("conv-title");
  const subtitle = $("conv-subtitle");
  const box = $("messages");
  if (!active) {
    title.textContent = "No conversation";
    subtitle.textContent = "";
    box.replaceChildren();
    return;
  }
  title.textContent = isRoom(active) ? active : displayOf(active);
  if (isRoom(active)) {
    const n = memberCounts.get(active);
    subtitle.textContent = n ? `${n} member${n === 1 ? "" : "s"}` : "Channel";
  } else {
    const p = state.people[active];
    subtitle.textContent = isOnline(active)
      ? `@${active} · online`
      : `@${active}` + (p && p.lastSeen ? ` · last seen ${when(p.lastSeen)}` : " · offline");
  }
  $("leave-room").hidden = !isRoom(active) || active === "#general";
  $("composer-label").textContent = `Message ${label(active)}`;
  $("composer-text").placeholder = `Message ${label(active)}`;

  const c = state.conversations[active];
  const messages = c ? c.messages : [];
  const key = JSON.stringify([active, state.namesVersion, messages.length, messages.map((m) => `${m.id}:${m.status}`).join(), c && c.loading, c && c.complete, c && c.error]);
  if (key === renderedKey) return;
  renderedKey = key;

  const fromBottom = box.scrollHeight - box.scrollTop - box.clientHeight;
  const sameConversation = box.dataset.target === active;
  const nodes = [];
  if (c && c.error) nodes.push(note(c.error, "error"));
  else if (c && c.loading) nodes.push(note("Loading…"));
  else if (c && c.complete) nodes.push(beginning());
  let lastDay = null;
  let last = null;
  for (const m of messages) {
    const day = dayOf(m.ts);
    if (day !== lastDay) {
      nodes.push(daySeparator(m.ts));
      lastDay = day;
      last = null;
    }
    if (m.event) {
      nodes.push(note(`${displayOf(m.sender)} ${m.text}`, "event"));
      last = null;
      continue;
    }
    const compact = last && last.sender === m.sender && Date.parse(m.ts) - Date.parse(last.ts) < 5 * 60_000;
    nodes.push(messageNode(m, compact));
    last = m;
  }
  box.replaceChildren(...nodes);
  box.dataset.target = active;
  if (!sameConversation || fromBottom < 80) box.scrollTop = box.scrollHeight;
  else box.scrollTop = box.scrollHeight - box.clientHeight - fromBottom;
}

function note(text, kind = "") {
  const p = document.createElement("p");
  p.className = "note " + kind;
  p.textContent = text;
  return p;
}

function beginning() {
  const div = document.createElement("div");
  div.className = "beginning";
  const h = document.createElement("h3");
  h.textContent = isRoom(active) ? `Welcome to ${active}` : displayOf(active);
  const p = document.createElement("p");
  p.className = "muted";
  p.textContent = isRoom(active)
    ? `This is the very beginning of ${active}.`
    : `This is the beginning of your direct conversation with @${active}.`;
  div.append(h, p);
  return div;
}

function dayOf(ts) {
  const d = new Date(ts);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

function daySeparator(ts) {
  const div = document.createElement("div");
  div.className = "day";
  div.setAttribute("role", "separator");
  const span = document.createElement("span");
  const d = new Date(ts);
  const today = new Date();
  // The calendar's day before, not 24 hours ago: a day is 23 or 25 hours
  // long when summer time starts or ends.
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  span.textContent =
    dayOf(ts) === dayOf(today) ? "Today"
      : dayOf(ts) === dayOf(yesterday) ? "Yesterday"
        : d.toLocaleDateString(undefined, { weekday: "long", month: "long", day: "numeric", year: d.getFullYear() === today.getFullYear() ? undefined : "numeric" });
  div.append(span);
  return div;
}

function time(ts) {
  return new Date(ts).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

function when(ts) {
  const d = new Date(ts);
  return dayOf(ts) === dayOf(new Date()) ? `at ${time(ts)}` : d.toLocaleDateString();
}

function messageNode(m, compact) {
  const article = document.createElement("article");
  article.className = "message" + (compact ? " compact" : "") + (m.own ? " own" : "");
  if (m.id !== null) article.dataset.id = m.id;
  if (m.cid) article.dataset.cid = m.cid;
  const side = document.createElement("div");
  side.className = "side";
  if (compact) {
    const t = document.createElement("time");
    t.className = "hover-time";
    t.dateTime = m.ts;
    t.textContent = time(m.ts);
    side.append(t);
  } else {
    const a = document.createElement("span");
    avatar(a, m.sender, displayOf(m.sender));
    a.className += " avatar";
    a.setAttribute("aria-hidden", "true");
    side.append(a);
  }
  const main = document.createElement("div");
  main.className = "body";
  if (!compact) {
    const head = document.createElement("div");
    head.className = "head";
    const who = document.createElement("strong");
    who.textContent = displayOf(m.sender);
    const t = document.createElement("time");
    t.dateTime = m.ts;
    t.textContent = time(m.ts);
    head.append(who, " ", t);
    main.append(head);
  } else {
    const hidden = document.createElement("span");
    hidden.className = "visually-hidden";
    hidden.textContent = `${displayOf(m.sender)}, ${time(m.ts)}: `;
    main.append(hidden);
  }
  const line = document.createElement("div");
  line.className = "line";
  const text = document.createElement("span");
  text.className = "text";
  appendLinked(text, unescapeBody(m.text));
  line.append(text);
  if (m.own && (m.status === "pending" || m.status === "failed" || (m.status && !isRoom(active)))) {
    line.append(statusNode(m));
  }
  main.append(line);
  if (m.status === "pending") article.classList.add("pending");
  article.append(side, main);
  return article;
}

function statusNode(m) {
  const s = document.createElement("span");
  s.className = `status-mark ${m.status}`;
  s.dataset.status = m.status;
  const words = {
    pending: "Sending…",
    sent: "Sent",
    delivered: m.deliveredAt ? `Delivered ${time(m.deliveredAt)}` : "Delivered",
    failed: `Not sent: ${m.error || "error"}`,
  }[m.status];
  s.title = words;
  s.textContent = { sent: "✓", delivered: "✓✓" }[m.status] || words;
  if (s.textContent !== words) s.setAttribute("aria-label", words);
  return s;
}

const LINK = /\bhttps?:\/\/[^\s<>"]+/gi;

/** The text, with http(s) links as anchors; everything else as text. */
function appendLinked(parent, text) {
  let at = 0;
  for (const match of text.matchAll(LINK)) {
    let href = match[0].replace(/[.,;:!?)\]}'"]+$/, "");
    const start = match.index;
    parent.append(text.slice(at, start));
    let url = null;
    try {
      url = new URL(href);
    } catch {
      url = null;
    }
    if (url && (url.protocol === "http:" || url.protocol === "https:")) {
      const a = document.createElement("a");
      a.href = url.href;
      a.textContent = href;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      parent.append(a);
    } else {
      parent.append(href);
    }
    at = start + href.length;
  }
  parent.append(text.slice(at));
}

function avatar(element, username, display) {
  let hash = 0;
  for (const ch of username) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  const words = (display || username).trim().split(/\s+/);
  const initials = (words[0][0] + (words.length > 1 ? words[words.length - 1][0] : "")).toUpperCase();
  element.textContent = initials;
  element.style.setProperty("--hue", String(hash % 360));
}

// -- actions ----------------------------------------------------------------------

function select(target, focusComposer) {
  active = target;
  renderedKey = null;
  if (location.hash.slice(1) !== encodeURIComponent(target)) {
    history.replaceState(null, "", "#" + encodeURIComponent(target));
  }
  tell({ type: "open", target });
  tellView();
  if (isRoom(target)) {
    call({ type: "members", room: target }).then((r) => {
      if (r.ok) memberCounts.set(target, r.members.length);
      if (active === target && state) {
        renderedKey = null;
        renderConversation();
      }
    });
  }
  if (state) {
    renderLists();
    renderConversation();
  }
  if (focusComposer) $("composer-text").focus();
}

function sendComposer() {
  const area = $("composer-text");
  const text = area.value.replace(/\s+$/, "");
  if (!text.trim() || !active) return;
  const body = escapeBody(text);
  const size = new TextEncoder().encode(body).length;
  if (size > MAX_BODY_BYTES) {
    $("composer-error").textContent = `This message is too long to send (${size} bytes, at most ${MAX_BODY_BYTES}).`;
    return;
  }
  $("composer-error").textContent = "";
  // The client id is made here, so an action handed to a new leading tab
  // a second time (see tabs.js) is recognised and not sent twice.
  tell({ type: "send", cid: newClientId(), target: active, body });
  area.value = "";
  autosize();
}

function autosize() {
  const area = $("composer-text");
  area.style.height = "auto";
  area.style.height = Math.min(area.scrollHeight, 200) + "px";
}

function notify(message) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  if (document.visibilityState === "visible") return;
  const n = new Notification(message.title, { body: unescapeBody(message.body), tag: message.tag });
  n.onclick = () => {
    window.focus();
    select(message.target, true);
    n.close();
  };
}

function openDialog(id) {
  const dialog = $(id);
  for (const error of dialog.querySelectorAll(".error, .status")) error.textContent = "";
  dialog.showModal();
}

function closeSidebar() {
  document.body.classList.remove("sidebar-open");
  $("scrim").hidden = true;
}

function setMode(isSignup) {
  signup = isSignup;
  $("tab-signin").setAttribute("aria-selected", String(!isSignup));
  $("tab-signup").setAttribute("aria-selected", String(isSignup));
  $("auth-display-label").hidden = !isSignup;
  $("auth-submit").textContent = isSignup ? "Create account" : "Sign in";
  $("auth-password").autocomplete = isSignup ? "new-password" : "current-password";
  $("auth-error").textContent = "";
}

function wire() {
  $("tab-signin").addEventListener("click", () => setMode(false));
  $("tab-signup").addEventListener("click", () => setMode(true));
  $("auth-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = $("auth-username").value.trim();
    const password = $("auth-password").value;
    const display = cleanField($("auth-display").value.trim()) || username;
    const error = $("auth-error");
    if (!USERNAME.test(username)) {
      error.textContent = "A username is 1-32 letters, digits, '.', '_' or '-'.";
      return;
    }
    if (!password || password.includes("|")) {
      error.textContent = "Enter a password (without '|').";
      return;
    }
    error.textContent = "";
    const submit = $("auth-submit");
    submit.disabled = true;
    const result = await call({
      type: signup ? "signup" : "login",
      username,
      password,
      display,
      remember: $("auth-remember").checked,
    });
    submit.disabled = false;
    if (!result.ok) {
      error.textContent = result.error || "Cannot sign in.";
      $("auth-password").focus();
    } else {
      $("auth-password").value = "";
      $("composer-text").focus();
    }
  });

  const area = $("composer-text");
  area.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      sendComposer();
    }
  });
  area.addEventListener("input", autosize);
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    sendComposer();
    area.focus();
  });

  $("messages").addEventListener("scroll", () => {
    const box = $("messages");
    const c = state && active && state.conversations[active];
    if (box.scrollTop < 120 && c && c.loaded && !c.loading && !c.complete) {
      tell({ type: "older", target: active });
    }
  });

  document.addEventListener("visibilitychange", tellView);
  window.addEventListener("focus", tellView);
  window.addEventListener("pagehide", () => tell({ type: "detach" }));

  for (const button of document.querySelectorAll("[data-close]")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }

  $("add-room").addEventListener("click", () => {
    $("room-name").value = "";
    openDialog("dialog-room");
  });
  $("form-room").addEventListener("submit", async (event) => {
    event.preventDefault();
    let room = $("room-name").value.trim().toLowerCase();
    if (!room.startsWith("#")) room = "#" + room;
    if (!ROOM.test(room)) {
      $("room-error").textContent = "A channel name is # and 1-32 of a-z, 0-9, - and _.";
      return;
    }
    const result = await call({ type: "join", room });
    if (!result.ok) {
      $("room-error").textContent = result.error;
      return;
    }
    $("dialog-room").close();
    select(result.target, true);
  });

  $("add-dm").addEventListener("click", () => {
    $("dm-name").value = "";
    openDialog("dialog-dm");
  });
  $("form-dm").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("dm-name").value.trim().replace(/^@/, "");
    if (!USERNAME.test(name)) {
      $("dm-error").textContent = "Enter a username.";
      return;
    }
    const result = await call({ type: "dm", username: name });
    if (!result.ok) {
      $("dm-error").textContent = result.error;
      return;
    }
    $("dialog-dm").close();
    select(result.target, true);
  });

  $("open-who").addEventListener("click", async () => {
    const list = $("who-list");
    list.replaceChildren(note("Loading…"));
    openDialog("dialog-who");
    const result = await call({ type: "who" });
    if (!result.ok) {
      list.replaceChildren(note(result.error, "error"));
      return;
    }
    list.replaceChildren(
      ...result.users.map((u) => {
        const li = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "person";
        const a = document.createElement("span");
        avatar(a, u.username, u.display);
        a.className = "avatar";
        a.setAttribute("aria-hidden", "true");
        const names = document.createElement("span");
        const strong = document.createElement("strong");
        strong.textContent = u.display;
        const small = document.createElement("span");
        small.className = "muted";
        small.textContent = ` @${u.username}`;
        names.append(strong, small);
        const dot = document.createElement("span");
        dot.className = "presence online";
        dot.setAttribute("aria-hidden", "true");
        button.append(a, names, dot);
        if (u.username === state.me.username) {
          small.textContent += " (you)";
          button.disabled = true;
        } else {
          button.addEventListener("click", async () => {
            const r = await call({ type: "dm", username: u.username });
            $("dialog-who").close();
            if (r.ok) select(r.target, true);
          });
        }
        li.append(button);
        return li;
      }),
    );
  });

  $("open-settings").addEventListener("click", () => {
    $("settings-display").value = state.me.display;
    $("settings-old").value = "";
    $("settings-new").value = "";
    openDialog("dialog-settings");
  });
  $("form-name").addEventListener("submit", async (event) => {
    event.preventDefault();
    const display = cleanField($("settings-display").value.trim());
    if (!display) return;
    const result = await call({ type: "name", display });
    $("name-status").textContent = result.ok ? "Saved." : result.error;
  });
  $("form-password").addEventListener("submit", async (event) => {
    event.preventDefault();
    const old = $("settings-old").value;
    const fresh = $("settings-new").value;
    if (old.includes("|") || fresh.includes("|")) {
      $("password-status").textContent = "A password cannot contain '|'.";
      return;
    }
    const result = await call({ type: "passwd", old, new: fresh });
    $("password-status").textContent = result.ok ? "Password changed. Other devices are signed out." : result.error;
    if (result.ok) {
      $("settings-old").value = "";
      $("settings-new").value = "";
    }
  });
  $("sign-out").addEventListener("click", async () => {
    $("dialog-settings").close();
    active = null;
    await call({ type: "logout" });
  });
  $("leave-room").addEventListener("click", async () => {
    const room = active;
    const result = await call({ type: "part", room });
    if (result.ok) {
      active = null;
      render();
    }
  });
  $("notify").addEventListener("click", async () => {
    await Notification.requestPermission();
    renderNotifySetting();
  });
  $("open-sidebar").addEventListener("click", () => {
    document.body.classList.add("sidebar-open");
    $("scrim").hidden = false;
    $("sidebar").querySelector("a, button")?.focus();
  });
  $("close-sidebar").addEventListener("click", closeSidebar);
  $("scrim").addEventListener("click", closeSidebar);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && document.body.classList.contains("sidebar-open")) closeSidebar();
  });
}

function main() {
  wire();
  port = startEngine();
  port.onmessage = received;
  port.start?.();
  const message = attachMessage();
  $("auth-remember").checked = message.remember;
  tell(message);
}

main();
