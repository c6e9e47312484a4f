// Where there is no SharedWorker: the tabs of a browser elect one of
// them (a Web Lock) to hold the engine and its WebSocket; the others reach
// it over a BroadcastChannel.  So tabs still share one connection and never
// take the session over from each other.  When the leading tab closes, its
// lock passes to another tab, which starts an engine that resumes the
// session from storage, and every tab attaches to it again.

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

  function toEngine(message) {
    if (message.type === "view") view = message;
    if (engine) engineSide.deliver(message);
    else channel.postMessage({ to: "leader", from: tab, message });
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
    const { to, from, message } = event.data;
    if (engine && to === "leader") {
      let remote = remotes.get(from);
      if (!remote) {
        remote = new RemotePort(channel, from);
        remotes.set(from, remote);
        engine.attach(remote);
      }
      remote.onmessage?.({ data: message });
      if (message.type === "detach") remotes.delete(from);
    } else if (!engine && to === tab) {
      router.postMessage(message);
    } else if (!engine && to === "all-tabs" && message.type === "leader") {
      // A new leader: attach to it again.
      for (const message of [attachMessage(), view].filter(Boolean)) {
        channel.postMessage({ to: "leader", from: tab, message });
      }
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
    for (const message of [attachMessage(), view].filter(Boolean)) engineSide.deliver(message);
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
