// Where there is no SharedWorker: the tabs of a browser elect one of
// them (a Web Lock) to hold the engine and its WebSocket; the others reach
// it over a BroadcastChannel.  So tabs still share one connection and never
// take the session over from each other.  When the leading tab closes, its
// lock passes to another tab, which starts an engine that resumes the
// session from storage, and every tab attaches to it again.
//
// Between a leader's going and the next one's election nobody listens on
// the channel, so a tab keeps each action it sends until the leader says it
// has it, and hands whatever is unacknowledged to the next leader (its own
// engine, if the lock passes to it).  A send carries the page's client id,
// so one handed over twice is still sent once.

const LOCK = "messenger-engine";
const CHANNEL = "messenger-tabs";

/** A MessagePort-like end of the engine for one remote tab. */
class RemotePort {
  constructor(channel, tab) {
    this.channel = channel;
    this.tab = tab;
    this.onmessage = null;
  }

  postMessage(message) {
    this.channel.postMessage({ to: this.tab, message });
  }

  start() {}
}

/**
 * The page's end of the engine, whichever tab holds it.  `makeEngine`
 * builds an engine (with an `attach(port)` method) when this tab leads;
 * `attachMessage` says who this page is, with what storage holds now.
 */
export function shareAcrossTabs(makeEngine, attachMessage) {
  const tab = crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2);
  const channel = new BroadcastChannel(CHANNEL);
  const { port1: router, port2: page } = new MessageChannel();
  let engine = null;
  const remotes = new Map();
  // This page's last view: said again to a new leader, after attaching.
  let view = null;
  // Actions sent to the leader that it has not acknowledged, by number.
  // Not the attach and the view: a new leader is told the current ones.
  const unacknowledged = new Map();
  let sent = 0;

  function post(message) {
    sent += 1;
    if (message.type !== "attach" && message.type !== "view") unacknowledged.set(sent, message);
    channel.postMessage({ to: "leader", from: tab, seq: sent, message });
  }

  function toEngine(message) {
    if (message.type === "view") view = message;
    if (engine) engineSide.deliver(message);
    else post(message);
  }

  /** Attach to a (new) leader: who this page is, what it sees, what is owed. */
  function reattach(deliver) {
    const owed = [...unacknowledged.values()];
    unacknowledged.clear();
    for (const message of [attachMessage(), view].filter(Boolean)) deliver(message);
    for (const message of owed) deliver(message);
  }

  // This tab's own attachment to an engine it holds.
  const engineSide = {
    port: null,
    deliver(message) {
      this.port.onmessage?.({ data: message });
    },
  };

  router.onmessage = (event) => toEngine(event.data);

  channel.onmessage = (event) => {
    const { to, from, seq, ack, message } = event.data;
    if (engine && to === "leader") {
      let remote = remotes.get(from);
      if (!remote) {
        remote = new RemotePort(channel, from);
        remotes.set(from, remote);
        engine.attach(remote);
      }
      remote.onmessage?.({ data: message });
      if (seq !== undefined) channel.postMessage({ to: from, ack: seq });
      if (message.type === "detach") remotes.delete(from);
    } else if (!engine && to === tab && ack !== undefined) {
      unacknowledged.delete(ack);
    } else if (!engine && to === tab) {
      router.postMessage(message);
    } else if (!engine && to === "all-tabs" && message.type === "leader") {
      // A new leader: attach to it again.
      reattach(post);
    }
  };

  function lead() {
    engine = makeEngine();
    const local = {
      postMessage: (message) => router.postMessage(message),
      onmessage: null,
      start() {},
    };
    engineSide.port = local;
    engine.attach(local);
    reattach((message) => engineSide.deliver(message));
    channel.postMessage({ to: "all-tabs", message: { type: "leader" } });
    return new Promise(() => {}); // hold the lock while this page lives
  }

  navigator.locks.request(LOCK, { ifAvailable: true }, (lock) => {
    if (lock) return lead();
    // Another tab leads: take over when it goes.
    navigator.locks.request(LOCK, () => lead());
    return undefined;
  });
  return page;
}
