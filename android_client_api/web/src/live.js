// The live side: one STOMP connection to RabbitMQ's Web STOMP with the user's own broker login
// (username + API token as passcode, docs/broker-auth.md). Subscriptions outlive reconnects:
// they are kept here and made again on every CONNECTED, and pages hear `reconnected` so they
// can catch up from stored state (what was published while the socket was down is gone).
import { Client } from "@stomp/stompjs";

const RECONNECT_MS = 2000;
const HEARTBEAT_MS = 10000; // a dropped network shows within ~2 heart-beats
const RECEIPT_TIMEOUT_MS = 10000;

/** The broker login and vhost the webhook announced (`amqp://user:token@host/vhost`). */
export function brokerLogin(amqpUrl) {
  const url = new URL(amqpUrl);
  const vhost = decodeURIComponent(url.pathname.slice(1)) || "/";
  return { login: decodeURIComponent(url.username), passcode: decodeURIComponent(url.password), host: vhost };
}

export class Live {
  constructor() {
    this.client = null;
    this.state = "off"; // off | connecting | live | down | refused
    this.detail = "";
    this.subs = new Map(); // id -> {destination, handler, stomp}
    this.listeners = new Set();
    this.pendingReceipts = new Map(); // receipt id -> reject
    this.everConnected = false;
    this.nextId = 1;
  }

  /** Connect as the session's user; `session` is GET /api/v1/session's answer. */
  start(session) {
    this.stop();
    this.login = brokerLogin(session.amqp_url);
    this.url = session.stomp_url;
    this.everConnected = false;
    this.client = this._client((client) => {
      this._set("live", "");
      for (const [id, sub] of this.subs) sub.stomp = this._subscribe(client, id, sub);
      if (this.everConnected) this._emit("reconnected");
      this.everConnected = true;
    });
    this._set("connecting", "");
    this.client.activate();
  }

  stop() {
    if (this.client) this.client.deactivate();
    this.client = null;
    this._set("off", "");
  }

  /** Call `handler(message, routingKey)` for every JSON message on `destination`; returns an unsubscribe. */
  subscribe(destination, handler) {
    const id = `s${this.nextId++}`;
    const sub = { destination, handler, stomp: null };
    this.subs.set(id, sub);
    if (this.client?.connected) sub.stomp = this._subscribe(this.client, id, sub);
    return () => {
      this.subs.delete(id);
      if (sub.stomp && this.client?.connected) sub.stomp.unsubscribe();
    };
  }

  /**
   * Publish `body` (an object, as JSON) to `destination`; resolves when the broker took it (its
   * RECEIPT). Rejects with one sentence when not connected, or when the broker closed the
   * connection instead (RabbitMQ answers a refused publish by closing it).
   */
  send(destination, body, headers = {}) {
    return new Promise((resolve, reject) => {
      if (!this.client?.connected) {
        reject(new Error("Not connected to the broker; the signal was not sent."));
        return;
      }
      const receipt = `r${this.nextId++}`;
      const timer = setTimeout(() => {
        this.pendingReceipts.delete(receipt);
        reject(new Error("The broker did not confirm the signal in time."));
      }, RECEIPT_TIMEOUT_MS);
      this.pendingReceipts.set(receipt, (error) => { clearTimeout(timer); reject(error); });
      this.client.watchForReceipt(receipt, () => {
        clearTimeout(timer);
        this.pendingReceipts.delete(receipt);
        resolve();
      });
      this.client.publish({
        destination, body: JSON.stringify(body),
        headers: { "content-type": "application/json", "user-id": this.login.login, receipt, ...headers },
      });
    });
  }

  /**
   * Try to subscribe to `destination` on a connection of its own (so a refusal cannot disturb the
   * page's); resolves "bound" when the broker accepted it, else "refused: <why>". For the tests
   * and the curious (`fitwire.probe("/exchange/fitwire.progress/alice.#")` in the console).
   */
  probe(destination) {
    return new Promise((resolve) => {
      let done = false;
      const finish = (answer) => {
        if (done) return;
        done = true;
        client.deactivate();
        resolve(answer);
      };
      const client = new Client({
        brokerURL: this.url, connectHeaders: { ...this.login }, reconnectDelay: 0,
        onConnect: () => {
          client.watchForReceipt("probe", () => finish("bound"));
          client.subscribe(destination, () => {}, { receipt: "probe" });
        },
        onStompError: (frame) => finish(`refused: ${frame.headers.message || frame.body}`),
        onWebSocketClose: () => finish("refused: the broker closed the connection"),
      });
      client.activate();
      setTimeout(() => finish("refused: no answer"), RECEIPT_TIMEOUT_MS);
    });
  }

  /** `listener(event)` for "state" (connection state changed) and "reconnected"; returns an unsubscribe. */
  on(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  _client(onConnect) {
    const client = new Client({
      brokerURL: this.url,
      connectHeaders: { ...this.login },
      reconnectDelay: RECONNECT_MS,
      heartbeatIncoming: HEARTBEAT_MS,
      heartbeatOutgoing: HEARTBEAT_MS,
      onConnect: () => onConnect(client),
      onStompError: (frame) => {
        // An ERROR frame at CONNECT is a refused login (expired token, revoked); later, a refused operation.
        const why = `${frame.headers.message || ""} ${frame.body || ""}`.trim();
        this._set(client.connected ? "down" : "refused", why);
      },
      onWebSocketClose: () => {
        for (const reject of this.pendingReceipts.values()) {
          reject(new Error("The broker refused the signal and closed the connection (is the run still yours?)."));
        }
        this.pendingReceipts.clear();
        if (this.client === client && this.state !== "refused") this._set(this.everConnected ? "down" : "connecting", "");
      },
    });
    return client;
  }

  _subscribe(client, id, sub) {
    return client.subscribe(sub.destination, (frame) => {
      let message;
      try {
        message = JSON.parse(frame.body);
      } catch {
        return; // not a fitwire message: skipped, as every watcher does
      }
      const key = (frame.headers.destination || "").split("/").pop();
      sub.handler(message, key);
    }, { id });
  }

  _set(state, detail) {
    if (state === this.state && detail === this.detail) return;
    this.state = state;
    this.detail = detail;
    this._emit("state");
  }

  _emit(event) {
    for (const listener of this.listeners) listener(event);
  }
}
