// The SharedWorker that holds the one WebSocket of this browser, so that
// every tab shares a session instead of taking it over from the others.
import { Engine } from "./engine.js";

const url = new URL("../ws", self.location.href);
url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
const engine = new Engine(url.href);

self.onconnect = (event) => engine.attach(event.ports[0]);
