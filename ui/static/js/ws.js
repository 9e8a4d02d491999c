// The page's one WebSocket to the node: intents, events, broadcasts and the wake-word audio.
// Reconnects with exponential back-off (and jitter, so many pages don't come back in lockstep).

import { accessToken, sysopToken } from "./api.js";

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000];

export class Job {
  constructor(socket, ref, handlers) {
    this.socket = socket;
    this.ref = ref;
    this.handlers = handlers;
    this.id = null;
    this.done = false;
    this.cancelled = false;
  }
  cancel() {
    this.cancelled = true;
    if (this.id && !this.done) this.socket.send({ type: "cancel", id: this.id });
  }
  emit(name, ev) {
    const fn = this.handlers[name];
    if (fn) { try { fn(ev, this); } catch (e) { console.error(e); } }
  }
}

export class GridSocket extends EventTarget {
  constructor(user) {
    super();
    this.user = user;
    this.ws = null;
    this.attempt = 0;
    this.nextRef = 1;
    this.byRef = new Map();
    this.byId = new Map();
    this.state = "connecting";
  }

  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const t = accessToken();
    return `${proto}//${location.host}/ws` + (t ? `?token=${encodeURIComponent(t)}` : "");
  }

  connect() {
    this.setState("connecting");
    const ws = new WebSocket(this.url());
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.hello();
      this.setState("open");
    };
    ws.onmessage = (e) => {
      if (typeof e.data !== "string") return;
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      this.route(msg);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.setState("closed");
      this.failAll("the connection to the node was lost");
      const base = BACKOFF_MS[Math.min(this.attempt++, BACKOFF_MS.length - 1)];
      setTimeout(() => this.connect(), base * (0.75 + Math.random() / 2));
    };
  }

  // a page that knows the sysop token says so: the node then also sends it the watchdog's alerts
  hello() {
    const token = sysopToken();
    this.send({ type: "hello", user: this.user, queue: true, ...(token ? { sysop_token: token } : {}) });
  }

  setState(s) {
    this.state = s;
    this.dispatchEvent(new CustomEvent("state", { detail: s }));
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  sendBinary(buf) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.ws.bufferedAmount < 1 << 20) this.ws.send(buf);
  }

  // handlers: queued, started, chunk, progress, result, error (each gets the event and the job)
  submit(intent, handlers = {}) {
    const ref = String(this.nextRef++);
    const job = new Job(this, ref, handlers);
    if (!this.send({ type: "submit", ref, intent })) {
      job.done = true;
      queueMicrotask(() => job.emit("error", { type: "error", code: "offline", message: "not connected to the node" }));
      return job;
    }
    this.byRef.set(ref, job);
    return job;
  }

  route(msg) {
    switch (msg.type) {
      case "accepted": {
        const job = this.byRef.get(String(msg.ref));
        this.byRef.delete(String(msg.ref));
        if (!job) return;
        job.id = msg.id;
        this.byId.set(msg.id, job);
        if (job.cancelled) job.cancel();
        job.emit("accepted", msg);
        return;
      }
      case "rejected": {
        const job = this.byRef.get(String(msg.ref));
        this.byRef.delete(String(msg.ref));
        if (job) { job.done = true; job.emit("error", { ...msg, type: "error" }); }
        return;
      }
      case "queued": case "started": case "chunk": case "progress": case "result": case "error": {
        const job = msg.id && this.byId.get(msg.id);
        if (!job) {
          if (msg.type === "error") this.dispatchEvent(new CustomEvent("message", { detail: msg }));
          return;
        }
        if (msg.type === "result" || msg.type === "error") { job.done = true; this.byId.delete(msg.id); }
        job.emit(msg.type, msg);
        return;
      }
      default:
        this.dispatchEvent(new CustomEvent("message", { detail: msg }));
    }
  }

  failAll(message) {
    for (const job of [...this.byRef.values(), ...this.byId.values()]) {
      job.done = true;
      job.emit("error", { type: "error", code: "disconnected", message });
    }
    this.byRef.clear();
    this.byId.clear();
  }

  running() {
    return [...this.byRef.values(), ...this.byId.values()];
  }
}
