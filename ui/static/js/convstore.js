// Conversations kept in this browser (IndexedDB): one record per chat with its messages and its
// own settings. Falls back to memory when IndexedDB is unavailable (private windows of some
// browsers), so the page still works, only without keeping chats across reloads.

const DB = "mtor";
const STORE = "conversations";
const IMAGES = "images";
const MAX_CONVERSATIONS = 500; // the oldest beyond this are dropped: bounded storage
const MAX_IMAGES = 40;

let dbPromise = null;
const memory = new Map();

function openDb() {
  if (!("indexedDB" in window)) return Promise.resolve(null);
  dbPromise ||= new Promise((resolve) => {
    const req = indexedDB.open(DB, 2);
    req.onupgradeneeded = () => { // v1: conversations; v2: the imagine gallery
      const db = req.result;
      if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE, { keyPath: "id" }).createIndex("updated", "updated");
      if (!db.objectStoreNames.contains(IMAGES)) db.createObjectStore(IMAGES, { keyPath: "id" });
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => resolve(null);
    req.onblocked = () => resolve(null);
  });
  return dbPromise;
}

function tx(db, mode, fn, store = STORE) {
  return new Promise((resolve, reject) => {
    const t = db.transaction(store, mode);
    const out = fn(t.objectStore(store));
    t.oncomplete = () => resolve(out && "result" in out ? out.result : undefined);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error);
  });
}

export function newConversation(settings = {}) {
  const now = Date.now();
  return {
    id: "c-" + now.toString(36) + "-" + Math.random().toString(36).slice(2, 8),
    title: "New chat", created: now, updated: now, messages: [],
    settings: { model: "", system: "", temperature: 0.7, max_tokens: 512, ...settings },
  };
}

export async function listConversations() {
  const db = await openDb();
  const all = db ? await tx(db, "readonly", (s) => s.getAll()) : [...memory.values()];
  return (all || []).sort((a, b) => b.updated - a.updated);
}

export async function saveConversation(conv) {
  conv.updated = Date.now();
  const copy = structuredClone(conv);
  const db = await openDb();
  if (!db) { memory.set(conv.id, copy); return; }
  await tx(db, "readwrite", (s) => s.put(copy));
  const all = await listConversations();
  if (all.length > MAX_CONVERSATIONS) {
    await tx(db, "readwrite", (s) => { for (const c of all.slice(MAX_CONVERSATIONS)) s.delete(c.id); });
  }
}

export async function deleteConversation(id) {
  const db = await openDb();
  if (!db) { memory.delete(id); return; }
  await tx(db, "readwrite", (s) => s.delete(id));
}

// ---- the imagine gallery: the last MAX_IMAGES pictures with their prompt, seed and cost ------
const memoryImages = new Map();

export async function listImages() {
  const db = await openDb();
  const all = db ? await tx(db, "readonly", (s) => s.getAll(), IMAGES) : [...memoryImages.values()];
  return (all || []).sort((a, b) => b.at - a.at);
}

export async function saveImage(image) {
  const db = await openDb();
  if (!db) { memoryImages.set(image.id, image); return; }
  await tx(db, "readwrite", (s) => s.put(image), IMAGES);
  const all = await listImages();
  if (all.length > MAX_IMAGES) await tx(db, "readwrite", (s) => { for (const i of all.slice(MAX_IMAGES)) s.delete(i.id); }, IMAGES);
}

export async function deleteImage(id) {
  const db = await openDb();
  if (!db) { memoryImages.delete(id); return; }
  await tx(db, "readwrite", (s) => s.delete(id), IMAGES);
}

// ---- export ---------------------------------------------------------------------------------
export function toMarkdown(conv) {
  const lines = [`# ${conv.title}`, ""];
  const s = conv.settings || {};
  lines.push(`_model: ${s.model || "default"} · temperature ${s.temperature} · max tokens ${s.max_tokens}_`, "");
  if (s.system) lines.push("> **System:** " + s.system.replace(/\n/g, "\n> "), "");
  for (const m of conv.messages) {
    lines.push(m.role === "user" ? "## You" : "## Assistant", "", m.content, "");
    if (m.role === "assistant" && m.meta) {
      const bits = [m.meta.peer ? `answered by ${m.meta.peer}` : null, m.meta.cost !== undefined ? `cost ${m.meta.cost} µ$9000` : null,
        m.meta.truncated ? "stopped at its token limit" : null].filter(Boolean);
      if (bits.length) lines.push(`<sub>${bits.join(" · ")}</sub>`, "");
    }
  }
  return lines.join("\n");
}

export function toJson(conv) {
  return JSON.stringify({ format: "mtor-conversation/1", ...conv }, null, 2);
}

export function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function fileName(conv, ext) {
  const base = conv.title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 48) || "chat";
  return `${base}.${ext}`;
}
