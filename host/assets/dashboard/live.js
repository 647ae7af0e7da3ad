// The organization's own events as they happen: one server-sent event stream
// (GET /api/v1/events/stream) shared by every page that listens. EventSource
// cannot send an Authorization header, so the stream is read with fetch() and
// a ReadableStream; the token never goes into a URL. The stream resumes with
// Last-Event-ID after a drop, refreshes the access token on a 401, and tells
// pages whether it is up so that they poll only while it is not.
import { session, refreshTokens } from "./api.js";

const listeners = new Set();
let controller = null;
let up = false;
let lastId = null;
let retryMs = 1000;
let key = null;

/** Is the stream connected right now? Pages poll only while it is not. */
export function connected() {
  return up;
}

/** Calls `fn({id, name, data, ...})` for each event; answers the unsubscribe. */
export function subscribe(fn) {
  listeners.add(fn);
  const s = session();
  const want = s ? (s.tenant_id || "") + "|" + (s.store_id || "") : null;
  if (want !== key) {
    stop();
    lastId = null;
  }
  if (!controller) start();
  return () => {
    listeners.delete(fn);
    if (!listeners.size) stop();
  };
}

function stop() {
  if (controller) controller.abort();
  controller = null;
  up = false;
}

function start() {
  const s = session();
  if (!s || !s.access) return;
  key = (s.tenant_id || "") + "|" + (s.store_id || "");
  const mine = new AbortController();
  controller = mine;
  run(mine).finally(() => {
    if (controller !== mine) return;
    up = false;
    controller = null;
    if (!listeners.size) return;
    // Reconnect after a pause; the pages poll meanwhile.
    const wait = retryMs;
    retryMs = Math.min(retryMs * 2, 30000);
    setTimeout(() => {
      if (!controller && listeners.size) start();
    }, wait);
  });
}

async function run(abort) {
  const s = session();
  const headers = { authorization: "Bearer " + s.access, accept: "text/event-stream" };
  if (s.store_id) headers["X-Store-ID"] = s.store_id;
  if (lastId !== null) headers["Last-Event-ID"] = String(lastId);
  let r;
  try {
    r = await fetch("/api/v1/events/stream", { headers, signal: abort.signal, cache: "no-store" });
  } catch {
    return;
  }
  if (r.status === 401) {
    // An expired access token: refresh once, then the reconnect uses it.
    if (await refreshTokens()) retryMs = 200;
    return;
  }
  if (!r.ok || !r.body) {
    // 403 (no permission to read events) or 429: stay on polling, retry later.
    retryMs = Math.max(retryMs, 15000);
    return;
  }
  up = true;
  retryMs = 1000;
  // Whatever happened before the stream was up is not on it: pages check
  // what they show once.
  dispatch('data: {"name":"stream.open"}');
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        dispatch(frame);
      }
    }
  } catch {
    /* aborted or dropped: `start` reconnects */
  }
}

function dispatch(frame) {
  let id = null;
  let data = "";
  for (const line of frame.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") id = value;
    else if (field === "data") data += (data ? "\n" : "") + value;
  }
  if (id !== null) lastId = id;
  if (!data) return;
  let event;
  try {
    event = JSON.parse(data);
  } catch {
    return;
  }
  for (const fn of [...listeners]) {
    try {
      fn(event);
    } catch {
      /* one page's failure does not stop the others */
    }
  }
}
