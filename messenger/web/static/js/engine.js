// The client engine: one WebSocket to the server and everything known about
// the conversation, shared by every tab of the browser.
//
// It runs inside a SharedWorker (or, where there is none, inside the tab)
// and talks to the tabs through MessagePorts: tabs send actions, the engine
// sends them state snapshots.  Storage belongs to the tabs (a worker has no
// localStorage): the engine asks them to persist what must survive a
// reload (token, unsent messages, direct conversations) and is given it back
// when a tab attaches.
//
// Delivery rules follow the terminal client: every message is sent with
// SEND and a client id kept until its OK, and sent again with the same id
// after a reconnect, so the server stores it once; every R is acknowledged
// and shown once (duplicates dropped by message id); after a reconnect each
// open conversation catches up with HISTORY ... after <newest id>.

import { fields, isRoom, newClientId } from "./protocol.js";

const PAGE = 50;
const CATCH_UP = 200;
const PING_EVERY = 60_000;
const BACKOFF = [500, 1000, 2000, 4000, 8000, 15000];
const RATE_RETRY = 1500;
const LOOKUPS_PER_TICK = 2;
const LOOKUP_TICK = 250;
const WHO_DETAILS = 30;

class Conversation {
  constructor(target) {
    this.target = target;
    this.messages = []; // sorted by id; unsent ones (id null) last
    this.byId = new Map();
    this.loaded = false;
    this.loading = false;
    this.complete = false;
    this.unread = 0;
    this.error = null;
  }

  newestId() {
    for (let i = this.messages.length - 1; i >= 0; i--) {
      const m = this.messages[i];
      if (m.id !== null && !m.event) return m.id;
    }
    return 0;
  }

  oldestId() {
    for (const m of this.messages) if (m.id !== null && !m.event) return m.id;
    return 0;
  }

  /** A membership change, placed after the messages that came before it. */
  addEvent(event) {
    event.id = this.newestId() + 0.5;
    let i = this.messages.length;
    while (i > 0 && (this.messages[i - 1].id === null || this.messages[i - 1].id > event.id)) i--;
    this.messages.splice(i, 0, event);
  }

  /** Adds a stored message unless its id is known; true if it was new. */
  add(message) {
    if (this.byId.has(message.id)) return false;
    this.byId.set(message.id, message);
    let i = this.messages.length;
    while (i > 0 && (this.messages[i - 1].id === null || this.messages[i - 1].id > message.id)) i--;
    this.messages.splice(i, 0, message);
    return true;
  }

  confirm(message, id) {
    message.id = id;
    const known = this.byId.get(id);
    const index = this.messages.indexOf(message);
    if (index >= 0) this.messages.splice(index, 1);
    if (known) {
      known.status = known.status === "delivered" ? "delivered" : message.status;
      known.own = true;
      return known;
    }
    this.add(message);
    return message;
  }
}

export class Engine {
  constructor(wsUrl) {
    this.wsUrl = wsUrl;
    this.ports = new Map(); // port -> {active, visible}
    this.ws = null;
    this.reset();
    this.flushScheduled = false;
  }

  reset() {
    this.status = "signed-out"; // signed-out | connecting | online | offline | taken-over
    this.me = null; // {username, display}
    this.token = null;
    this.remember = false;
    this.rooms = [];
    this.dms = [];
    this.people = new Map(); // username -> {display, online, lastSeen}
    this.lookups = [];
    this.namesVersion = 0;
    if (this.lookupTimer) clearTimeout(this.lookupTimer);
    this.lookupTimer = null;
    this.conversations = new Map();
    this.outbox = []; // {cid, target, body, ts}
    this.inFlight = new Set(); // client ids of SENDs awaiting their reply
    this.pending = []; // requests waiting for their reply, in order
    this.delivered = new Map(); // DLV before OK: id -> ts
    this.serverName = "";
    this.notice = null;
    this.attempt = 0;
    this.loginPending = null;
    this.ready = false;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.reconnectTimer = null;
    this.pingTimer = null;
  }

  // -- tabs ------------------------------------------------------------

  attach(port) {
    this.ports.set(port, { active: null, visible: true });
    port.onmessage = (event) => this.action(port, event.data);
    port.start?.();
  }

  post(port, message) {
    try {
      port.postMessage(message);
    } catch {
      this.ports.delete(port);
    }
  }

  broadcast(message) {
    for (const port of this.ports.keys()) this.post(port, message);
  }

  changed() {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setTimeout(() => {
      this.flushScheduled = false;
      this.broadcast({ type: "state", state: this.snapshot() });
    }, 0);
  }

  persist() {
    if (!this.me || !this.token) return;
    this.broadcast({
      type: "persist",
      remember: this.remember,
      data: {
        username: this.me.username,
        token: this.token,
        dms: this.dms,
        outbox: this.outbox,
      },
    });
  }

  snapshot() {
    const conversations = {};
    for (const [target, c] of this.conversations) {
      conversations[target] = {
        messages: c.messages,
        loaded: c.loaded,
        loading: c.loading,
        complete: c.complete,
        unread: c.unread,
        error: c.error,
      };
    }
    return {
      status: this.status,
      me: this.me,
      serverName: this.serverName,
      rooms: this.rooms,
      dms: this.dms,
      people: Object.fromEntries(this.people),
      conversations,
      notice: this.notice,
      outbox: this.outbox.length,
      namesVersion: this.namesVersion,
    };
  }

  isViewed(target) {
    for (const view of this.ports.values()) {
      if (view.visible && view.active === target) return true;
    }
    return false;
  }

  anyVisible() {
    for (const view of this.ports.values()) if (view.visible) return true;
    return false;
  }

  async action(port, message) {
    const view = this.ports.get(port);
    const reply = (ok, data) => message.rid && this.post(port, { type: "result", rid: message.rid, ok, ...data });
    try {
      switch (message.type) {
        case "attach":
          if (view) Object.assign(view, message.view);
          if (!this.me && message.saved && message.saved.token && this.status === "signed-out") {
            this.restore(message.saved, message.remember);
          }
          this.post(port, { type: "state", state: this.snapshot() });
          break;
        case "detach":
          this.ports.delete(port);
          break;
        case "view":
          if (view) Object.assign(view, { active: message.active, visible: message.visible });
          if (message.active && message.visible) this.markRead(message.active);
          break;
        case "login":
        case "signup":
          reply(true, await this.logIn(message));
          break;
        case "send":
          this.send(message.target, message.body, message.cid);
          break;
        case "open":
          await this.open(message.target);
          break;
        case "older":
          await this.older(message.target);
          break;
        case "join": {
          const r = await this.request(`JOIN|${message.room}`);
          if (!r.ok) return reply(false, { error: r.reason });
          const room = r.fields[0];
          if (!this.rooms.includes(room)) this.rooms = [...this.rooms, room].sort();
          this.changed();
          reply(true, { target: room });
          break;
        }
        case "part": {
          const r = await this.request(`PART|${message.room}`);
          if (r.ok || r.code === 404) {
            this.rooms = this.rooms.filter((x) => x !== message.room);
            this.conversations.delete(message.room);
            this.changed();
          }
          reply(r.ok, { error: r.reason });
          break;
        }
        case "dm": {
          const r = await this.request(`WHOIS|${message.username}`);
          if (!r.ok) return reply(false, { error: r.code === 404 ? "No such user." : r.reason });
          this.notePerson(r.fields);
          const name = r.fields[0];
          this.addDm(name);
          reply(true, { target: name });
          break;
        }
        case "who": {
          const r = await this.request("WHO");
          if (!r.ok) return reply(false, { error: r.reason });
          const users = r.fields.filter(Boolean);
          for (const u of users) this.person(u).online = true;
          const unknown = users.filter((u) => !this.person(u).known).slice(0, WHO_DETAILS);
          const people = await Promise.all(unknown.map((u) => this.request(`WHOIS|${u}`)));
          for (const p of people) if (p.ok) this.notePerson(p.fields);
          this.changed();
          reply(true, { users: users.map((u) => ({ username: u, display: this.person(u).display })) });
          break;
        }
        case "members": {
          const r = await this.request(`MEMBERS|${message.room}`);
          reply(r.ok, { members: r.ok ? r.fields.slice(1) : [], error: r.reason });
          break;
        }
        case "name": {
          const r = await this.request(`NAME|${message.display}`);
          if (r.ok) {
            this.me = { ...this.me, display: r.fields[0] };
            this.person(this.me.username).display = r.fields[0];
            this.namesVersion++;
            this.changed();
          }
          reply(r.ok, { error: r.reason });
          break;
        }
        case "passwd": {
          const r = await this.request(`PASSWD|${message.old}|${message.new}`);
          if (r.ok) await this.newToken(); // PASSWD revokes every token
          reply(r.ok, { error: r.code === 401 ? "The current password is wrong." : r.reason });
          break;
        }
        case "logout":
          this.logOut();
          reply(true, {});
          break;
        case "reclaim":
          this.notice = null;
          this.status = "connecting";
          this.attempt = 0;
          this.connect();
          this.changed();
          break;
      }
    } catch (error) {
      reply(false, { error: String(error && error.message ? error.message : error) });
    }
  }

  // -- connection --------------------------------------------------------

  connect() {
    if (this.ws) return;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    let ws;
    try {
      ws = new WebSocket(this.wsUrl);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    this.greeted = false;
    ws.onmessage = (event) => {
      if (this.ws === ws && typeof event.data === "string") this.line(event.data);
    };
    ws.onclose = () => {
      if (this.ws === ws) this.closed();
    };
  }

  write(line) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(line);
  }

  /** Sends a command; resolves with its reply (ok, code, reason, fields, lines). */
  request(line, { history = false } = {}) {
    return new Promise((resolve) => {
      if (!this.ws || !this.ready) {
        resolve({ ok: false, code: 0, reason: "Not connected.", fields: [], lines: [] });
        return;
      }
      this.pending.push({ resolve, lines: [], history });
      this.write(line);
    });
  }

  /** Like request, but for the login commands before `ready`. */
  rawRequest(line) {
    return new Promise((resolve) => {
      this.pending.push({ resolve, lines: [] });
      this.write(line);
    });
  }

  closed() {
    this.ws = null;
    this.ready = false;
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    const pending = this.pending;
    this.pending = [];
    for (const p of pending) {
      p.resolve({ ok: false, code: 0, reason: "The connection was lost.", fields: [], lines: [] });
    }
    for (const c of this.conversations.values()) c.loading = false;
    if (this.status === "taken-over" || this.status === "signed-out" || !this.token) {
      if (this.status !== "taken-over" && !this.loginPending) this.status = "signed-out";
      if (!this.loginPending) {
        this.changed();
        return;
      }
    }
    if (this.loginPending) {
      const login = this.loginPending;
      this.loginPending = null;
      login.fail("Cannot reach the server.");
      this.status = "signed-out";
      this.changed();
      return;
    }
    this.status = "offline";
    this.changed();
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    if (this.reconnectTimer || !this.token) return;
    const base = BACKOFF[Math.min(this.attempt, BACKOFF.length - 1)];
    this.attempt++;
    const delay = base / 2 + Math.random() * base;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.status = "connecting";
      this.changed();
      this.connect();
    }, delay);
  }

  line(line) {
    const verb = line.split("|", 1)[0];
    switch (verb) {
      case "HELLO":
        this.serverName = fields(line, 3)[2] || "";
        this.hello();
        return;
      case "OK":
      case "ERR":
        return this.reply(line);
      case "H": {
        const head = this.pending[0];
        if (head) head.lines.push(line);
        return;
      }
      case "R":
        return this.directMessage(fields(line, 4));
      case "C":
        return this.roomMessage(fields(line, 5));
      case "DLV":
        return this.receipt(fields(line, 4));
      case "ON":
      case "OFF": {
        const [, user] = fields(line, 2);
        this.person(user).online = verb === "ON";
        if (verb === "OFF") this.person(user).lastSeen = new Date().toISOString();
        this.changed();
        return;
      }
      case "JOINED":
      case "PARTED": {
        const [, room, user] = fields(line, 3);
        if (this.me && user === this.me.username) {
          if (verb === "JOINED" && !this.rooms.includes(room)) this.rooms = [...this.rooms, room].sort();
          if (verb === "PARTED") this.rooms = this.rooms.filter((r) => r !== room);
        } else {
          const c = this.conversations.get(room);
          if (c && c.loaded) {
            c.addEvent({
              event: true, sender: user, ts: new Date().toISOString(),
              text: verb === "JOINED" ? "joined" : "left",
            });
          }
          this.lookUp(user);
        }
        this.changed();
        return;
      }
      case "BYE":
        return this.bye(fields(line, 3));
    }
  }

  reply(line) {
    const head = this.pending.shift();
    if (!head) return;
    const [kind, , ...rest] = line.split("|");
    if (kind === "OK") {
      head.resolve({ ok: true, code: 200, reason: "", fields: rest, lines: head.lines });
    } else {
      const [, , code, ...reason] = line.split("|");
      head.resolve({ ok: false, code: Number(code), reason: reason.join("|"), fields: [], lines: head.lines });
    }
  }

  bye([, code, reason]) {
    const n = Number(code);
    if (n === 409) {
      this.status = "taken-over";
      this.notice = "You signed in from another place, so this window was disconnected.";
    } else if (n === 429) {
      this.status = "signed-out";
      this.notice = "Too many failed sign-ins. Wait a minute and try again.";
    } else if (n === 200) {
      return;
    } else {
      this.notice = null;
    }
    this.changed();
    void reason;
  }

  async hello() {
    this.attempt = 0;
    if (this.loginPending) {
      const login = this.loginPending;
      this.loginPending = null;
      await login.run();
      return;
    }
    if (this.me && this.token) {
      const r = await this.rawRequest(`RESUME|${this.me.username}|${this.token}`);
      if (r.ok) {
        await this.loggedIn(r.fields, true);
      } else if (r.code === 401) {
        this.status = "signed-out";
        this.notice = "Your session has expired. Please sign in again.";
        this.broadcast({ type: "persist", remember: this.remember, data: null });
        this.me = null;
        this.token = null;
        this.ws?.close();
        this.changed();
      } else if (r.code === 409) {
        this.status = "taken-over";
        this.notice = "This account is already connected in another place.";
        this.ws?.close();
        this.changed();
      } else if (r.code !== 0) {
        this.ws?.close(); // 429 or a server error: try again after a while
      }
    }
  }

  restore(saved, remember) {
    this.me = { username: saved.username, display: saved.username };
    this.token = saved.token;
    this.remember = Boolean(remember);
    this.dms = Array.isArray(saved.dms) ? saved.dms : [];
    this.outbox = Array.isArray(saved.outbox)
      ? saved.outbox.map(({ cid, target, body, ts }) => ({ cid, target, body, ts }))
      : [];
    for (const item of this.outbox) this.showUnsent(item);
    this.status = "connecting";
    this.connect();
    this.changed();
  }

  logIn(message) {
    return new Promise((resolve) => {
      const fail = (error) => resolve({ ok: false, error });
      const run = async () => {
        const { username, password } = message;
        if (message.type === "signup") {
          const r = await this.rawRequest(`USR|${username}|${password}|${message.display || username}`);
          if (!r.ok) {
            this.ws?.close();
            return fail(r.code === 409 ? "That username is taken." : r.reason || "Cannot sign up.");
          }
        }
        const r = await this.rawRequest(`LOGIN|${username}|${password}`);
        if (!r.ok) {
          this.ws?.close();
          return fail(r.code === 401 ? "Wrong username or password." : r.reason || "Cannot sign in.");
        }
        this.remember = Boolean(message.remember);
        await this.loggedIn(r.fields, false);
        resolve({ ok: true });
      };
      this.reset();
      this.notice = null;
      this.status = "connecting";
      this.loginPending = { run, fail };
      this.ws?.close();
      this.ws = null;
      this.connect();
      this.changed();
    });
  }

  logOut() {
    const ws = this.ws;
    this.status = "signed-out";
    this.ws = null;
    if (ws) {
      try {
        ws.send("QUIT");
      } catch {
        /* closing anyway */
      }
      ws.close();
    }
    this.broadcast({ type: "persist", remember: this.remember, data: null });
    this.reset();
    this.changed();
  }

  async newToken() {
    const r = await this.request("TOKEN");
    if (r.ok) {
      this.token = r.fields[0];
      this.persist();
    }
  }

  async loggedIn([username, display], resumed) {
    this.me = { username, display };
    this.person(username).display = display;
    this.person(username).known = true;
    this.namesVersion++;
    this.ready = true;
    this.status = "online";
    this.notice = null;
    this.changed();
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.request("PING"), PING_EVERY);
    if (!resumed) await this.newToken();
    else this.persist();
    this.flushOutbox();
    const [rooms, who] = await Promise.all([this.request("ROOMS"), this.request("WHO")]);
    if (rooms.ok) this.rooms = rooms.fields.filter(Boolean).sort();
    if (who.ok) {
      const online = new Set(who.fields);
      for (const [name, p] of this.people) p.online = online.has(name);
      for (const name of online) if (name) this.person(name).online = true;
    }
    this.changed();
    for (const name of this.dms) {
      this.person(name).known = false; // presence and name may have changed
      this.lookUp(name);
    }
    // Catch up on whatever each open conversation missed while away, and
    // load the ones tabs show but could not read before the login.
    const shown = new Set([...this.ports.values()].map((view) => view.active).filter(Boolean));
    await Promise.all([
      ...[...this.conversations.values()].filter((c) => c.loaded).map((c) => this.catchUp(c)),
      ...[...shown].filter((t) => !this.conversations.get(t)?.loaded).map((t) => this.open(t)),
    ]);
    this.changed();
  }

  person(username) {
    let p = this.people.get(username);
    if (!p) {
      p = { display: username, online: false, lastSeen: null };
      this.people.set(username, p);
    }
    return p;
  }

  /** Asks once for the display name of someone not met yet. */
  lookUp(username) {
    if (!username || !this.ready) return;
    const p = this.person(username);
    if (p.known || p.asking) return;
    p.asking = true;
    this.lookups.push(username);
    this.drainLookups();
  }

  /** Look-ups go out a few at a time, well inside the rate limit, so a
   * page of history from many people never crowds out the user's own
   * commands. */
  drainLookups() {
    if (this.lookupTimer || !this.lookups.length) return;
    for (const username of this.lookups.splice(0, LOOKUPS_PER_TICK)) {
      const p = this.person(username);
      this.request(`WHOIS|${username}`).then((r) => {
        p.asking = false;
        if (r.ok) this.notePerson(r.fields);
        else if (r.code === 404) p.known = true;
      });
    }
    this.lookupTimer = setTimeout(() => {
      this.lookupTimer = null;
      this.drainLookups();
    }, LOOKUP_TICK);
  }

  notePerson([username, state, lastSeen, display]) {
    const p = this.person(username);
    p.online = state === "online";
    p.lastSeen = lastSeen === "-" ? null : lastSeen;
    p.known = true;
    if (display && display !== p.display) {
      p.display = display;
      this.namesVersion++;
    }
    this.changed();
  }

  addDm(name) {
    if (this.me && name === this.me.username) return;
    if (!this.dms.includes(name)) {
      this.dms = [...this.dms, name];
      this.persist();
    }
    this.changed();
  }

  conversation(target) {
    let c = this.conversations.get(target);
    if (!c) {
      c = new Conversation(target);
      this.conversations.set(target, c);
    }
    return c;
  }

  markRead(target) {
    const c = this.conversations.get(target);
    if (c && c.unread) {
      c.unread = 0;
      this.changed();
    }
  }

  // -- messages ------------------------------------------------------------

  directMessage([, sender, id, body]) {
    const msgid = Number(id);
    this.write(`ACK|${msgid}`);
    this.addDm(sender);
    this.lookUp(sender);
    const isNew = this.conversation(sender).add({
      id: msgid, sender, text: body, ts: new Date().toISOString(), status: null,
    });
    if (isNew) this.arrived(sender, sender, body, true);
  }

  roomMessage([, room, sender, id, body]) {
    const c = this.conversation(room);
    this.lookUp(sender);
    const isNew = c.add({ id: Number(id), sender, text: body, ts: new Date().toISOString(), status: null });
    if (isNew) this.arrived(room, sender, body, false);
  }

  arrived(target, sender, body, direct) {
    if (!this.isViewed(target)) this.conversation(target).unread++;
    if (direct && !this.anyVisible()) {
      this.broadcast({
        type: "notify",
        target,
        title: this.person(sender).display || sender,
        body,
        tag: `dm-${target}`,
      });
    }
    this.changed();
  }

  receipt([, id, recipient, ts]) {
    const msgid = Number(id);
    const c = this.conversations.get(recipient);
    const m = c && c.byId.get(msgid);
    if (m) {
      m.status = "delivered";
      m.deliveredAt = ts;
      this.changed();
    } else {
      this.delivered.set(msgid, ts);
    }
  }

  send(target, body, cid = newClientId()) {
    if (this.outbox.some((x) => x.cid === cid)) return;
    if (this.conversation(target).messages.some((m) => m.cid === cid)) return;
    const item = { cid, target, body, ts: new Date().toISOString() };
    this.outbox.push(item);
    this.persist();
    this.showUnsent(item);
    if (!isRoom(target)) this.addDm(target);
    this.changed();
    if (this.ready) this.transmit(item);
  }

  showUnsent(item) {
    const c = this.conversation(item.target);
    if (c.messages.some((m) => m.cid === item.cid)) return;
    c.messages.push({
      id: null, cid: item.cid, sender: this.me ? this.me.username : "", text: item.body,
      ts: item.ts, status: "pending", own: true,
    });
  }

  flushOutbox() {
    for (const item of this.outbox) this.transmit(item);
  }

  async transmit(item) {
    // Kept apart from the item, which is persisted as it is.
    if (this.inFlight.has(item.cid)) return;
    this.inFlight.add(item.cid);
    const r = await this.request(`SEND|${item.cid}|${item.target}|${item.body}`);
    this.inFlight.delete(item.cid);
    const c = this.conversation(item.target);
    const message = c.messages.find((m) => m.cid === item.cid);
    if (r.ok) {
      this.outbox = this.outbox.filter((x) => x !== item);
      this.persist();
      if (message) {
        message.status = "sent";
        const id = Number(r.fields[0]);
        const kept = c.confirm(message, id);
        const ts = this.delivered.get(id);
        if (ts) {
          kept.status = "delivered";
          kept.deliveredAt = ts;
          this.delivered.delete(id);
        }
      }
    } else if (r.code === 0) {
      return; // disconnected: sent again after the reconnect
    } else if (r.code === 429 && /rate/.test(r.reason)) {
      setTimeout(() => this.ready && this.transmit(item), RATE_RETRY);
      return;
    } else {
      this.outbox = this.outbox.filter((x) => x !== item);
      this.persist();
      if (message) {
        message.status = "failed";
        message.error = r.reason;
      }
    }
    this.changed();
  }

  historyMessages(c, lines) {
    let added = 0;
    for (const line of lines) {
      const [, , id, sender, ts, body] = fields(line, 6);
      const own = this.me && sender === this.me.username;
      this.lookUp(sender);
      if (c.add({ id: Number(id), sender, ts, text: body, status: own ? "sent" : null, own })) added++;
    }
    return added;
  }

  async open(target) {
    const c = this.conversation(target);
    if (!isRoom(target)) this.addDm(target);
    this.markRead(target);
    if (c.loaded || c.loading || !this.ready) return;
    c.loading = true;
    this.changed();
    const r = await this.request(`HISTORY|${target}|${PAGE}`);
    c.loading = false;
    if (r.ok) {
      this.historyMessages(c, r.lines);
      c.loaded = true;
      c.complete = Number(r.fields[1]) < PAGE;
      c.error = null;
    } else if (r.code !== 0) {
      c.error = r.code === 404 ? "No such conversation." : r.reason;
    }
    this.changed();
  }

  async older(target) {
    const c = this.conversations.get(target);
    if (!c || !c.loaded || c.loading || c.complete || !this.ready) return;
    const before = c.oldestId();
    if (!before) {
      c.complete = true;
      return;
    }
    c.loading = true;
    this.changed();
    const r = await this.request(`HISTORY|${target}|${PAGE}|before|${before}`);
    c.loading = false;
    if (r.ok) {
      this.historyMessages(c, r.lines);
      c.complete = Number(r.fields[1]) < PAGE;
    }
    this.changed();
  }

  async catchUp(c) {
    for (;;) {
      const after = c.newestId();
      const r = await this.request(`HISTORY|${c.target}|${CATCH_UP}|after|${after}`);
      if (!r.ok) return;
      const added = this.historyMessages(c, r.lines);
      if (added && !this.isViewed(c.target)) c.unread += added;
      if (Number(r.fields[1]) < CATCH_UP) return;
    }
  }
}
