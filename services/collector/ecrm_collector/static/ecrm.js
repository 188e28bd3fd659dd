/*
 * ecrm.js: the eCRM browser tracker. Hand-written, no dependencies, no build step (ES2017).
 *
 *   <script src="https://collector.example/v1/ecrm.js" data-write-key="wkb_..." async></script>
 *
 * Sends Segment-spec events (page, track, identify, alias, group) to the collector's
 * /v1/batch. Options, as attributes of that script tag:
 *   data-write-key   the browser source's write key (required)
 *   data-host        the collector's origin (default: the origin the script was loaded from)
 *   data-auto-page   "false" turns off the page view sent on load
 * Calls made before the script loads are queued by a stub (see the README) and replayed.
 */
(function () {
  "use strict";

  const VERSION = "0.1.0";
  const AID_KEY = "ecrm_aid"; // cookie and localStorage
  const UID_KEY = "ecrm_uid"; // localStorage
  const COOKIE_MAX_AGE_S = 365 * 24 * 3600;
  const FLUSH_AT = 20; // events
  const FLUSH_AFTER_MS = 1000;
  const MAX_ATTEMPTS = 5;
  // fetch(keepalive) and sendBeacon refuse bodies over 64 KiB (a quota shared by all requests
  // in flight), so batches stay well below that, and therefore below the collector's 500 KB too.
  const MAX_BATCH_BYTES = 60000;
  const METHODS = ["page", "track", "identify", "alias", "group", "reset", "flush", "user"];

  const previous = window.analytics;
  if (previous && previous.initialized) return; // the script was included twice

  const warn = (...args) => attempt(() => console.warn("[ecrm]", ...args));

  function attempt(fn, fallback) {
    try {
      return fn();
    } catch (_) {
      return fallback;
    }
  }

  // Nothing this file does may throw into the host page.
  function safe(fn) {
    return function (...args) {
      try {
        return fn.apply(this, args);
      } catch (error) {
        warn("internal error", error);
        return undefined;
      }
    };
  }

  // --- configuration --------------------------------------------------------------------

  // currentScript is null only in modules and callbacks; then look the tag up.
  const script = document.currentScript || document.querySelector('script[data-write-key][src*="ecrm.js"]');
  const data = (script && script.dataset) || {};
  const writeKey = data.writeKey || "";
  const scriptOrigin = script && script.src ? new URL(script.src, location.href).origin : "";
  const host = (data.host || scriptOrigin).replace(/\/+$/, "");
  const batchUrl = host + "/v1/batch";
  if (!writeKey) warn("no data-write-key on the <script> tag: events will not be sent");

  // --- identity -------------------------------------------------------------------------

  function uuid() {
    const c = window.crypto;
    if (c && typeof c.randomUUID === "function") return c.randomUUID(); // secure contexts only
    const bytes = new Uint8Array(16);
    if (c && c.getRandomValues) c.getRandomValues(bytes);
    else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  // Storage and even document.cookie throw when disabled (some private modes, sandboxed
  // iframes); the tracker then keeps the ids in memory for this page only.
  const storage = {
    get: (key) => attempt(() => window.localStorage.getItem(key), null),
    set: (key, value) => attempt(() => window.localStorage.setItem(key, value)),
    remove: (key) => attempt(() => window.localStorage.removeItem(key)),
  };

  function readCookie(name) {
    for (const part of attempt(() => document.cookie, "").split(";")) {
      const [key, ...rest] = part.trim().split("=");
      if (key === name) return attempt(() => decodeURIComponent(rest.join("=")), null);
    }
    return null;
  }

  function writeCookie(name, value) {
    const secure = location.protocol === "https:" ? "; Secure" : "";
    const cookie = `${name}=${encodeURIComponent(value)}; Max-Age=${COOKIE_MAX_AGE_S}; Path=/; SameSite=Lax${secure}`;
    attempt(() => {
      document.cookie = cookie;
    });
  }

  // The cookie is the source of truth; the localStorage copy survives browsers that cut the
  // lifetime of cookies set from JavaScript (Safari: 7 days). Writing on every load renews it.
  function saveAnonymousId(id) {
    writeCookie(AID_KEY, id);
    storage.set(AID_KEY, id);
    return id;
  }

  const user = {
    anonymousId: saveAnonymousId(readCookie(AID_KEY) || storage.get(AID_KEY) || uuid()),
    userId: storage.get(UID_KEY),
  };

  // --- events ---------------------------------------------------------------------------

  const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);

  function pageFields() {
    return {
      path: location.pathname,
      referrer: document.referrer,
      search: location.search,
      title: document.title,
      url: location.href,
    };
  }

  function campaign() {
    const params = new URLSearchParams(location.search);
    const found = {};
    for (const field of ["source", "medium", "campaign", "term", "content"]) {
      const value = params.get(`utm_${field}`);
      if (value) found[field === "campaign" ? "name" : field] = value; // Segment calls utm_campaign "name"
    }
    return Object.keys(found).length ? found : undefined;
  }

  const timezone = () => attempt(() => Intl.DateTimeFormat().resolvedOptions().timeZone, undefined);

  function message(type, fields) {
    const event = {
      type,
      messageId: uuid(), // the same id on every retry, so downstream deduplicates
      timestamp: new Date().toISOString(),
      anonymousId: user.anonymousId,
      context: {
        library: { name: "ecrm.js", version: VERSION },
        page: pageFields(),
        campaign: campaign(),
        userAgent: navigator.userAgent,
        locale: navigator.language,
        timezone: timezone(),
      },
    };
    if (user.userId) event.userId = user.userId;
    return Object.assign(event, fields);
  }

  // --- batching and sending -------------------------------------------------------------

  let queue = [];
  let timer = null;
  let sending = null; // the running send loop: one request at a time
  let failures = 0; // consecutive failed attempts of the batch at the head of the queue

  function enqueue(event) {
    if (!writeKey) return;
    queue.push(event);
    // While a failed batch waits for its retry, the backoff timer decides when to send.
    if (queue.length >= FLUSH_AT && failures === 0) flush();
    else if (timer === null) timer = setTimeout(flush, FLUSH_AFTER_MS);
  }

  const byteLength = (text) => new Blob([text]).size;

  // Takes events off the front of the queue up to MAX_BATCH_BYTES; returns the request body.
  function nextBody() {
    const batch = [];
    let size = 100 + writeKey.length; // the envelope around the events
    while (queue.length) {
      const eventSize = byteLength(JSON.stringify(queue[0])) + 1;
      if (batch.length && size + eventSize > MAX_BATCH_BYTES) break;
      batch.push(queue.shift());
      size += eventSize;
    }
    const body = JSON.stringify({ batch, sentAt: new Date().toISOString(), writeKey });
    return { batch, body, size };
  }

  // text/plain and no Authorization header make this a "simple" CORS request: no preflight.
  function post(body, keepalive) {
    return fetch(batchUrl, {
      method: "POST",
      body,
      headers: { "Content-Type": "text/plain" },
      keepalive,
      credentials: "omit",
    });
  }

  async function sendOne() {
    const { batch, body, size } = nextBody();
    let response;
    try {
      response = await post(body, size <= MAX_BATCH_BYTES);
    } catch (_) {
      response = null; // network error, blocked, or offline
    }
    if (response && response.ok) {
      failures = 0;
      const answer = await response.json().catch(() => ({}));
      if (answer.rejected && answer.rejected.length) warn("the collector rejected events", answer.rejected);
      return true;
    }
    if (response && response.status !== 429 && response.status < 500) {
      failures = 0;
      const error = (await response.json().catch(() => ({}))).error || {};
      warn(`the collector refused ${batch.length} event(s): HTTP ${response.status} ${error.code}: ${error.message}`);
      return true; // retrying would fail the same way
    }
    failures += 1;
    if (failures >= MAX_ATTEMPTS) {
      failures = 0;
      warn(`dropped ${batch.length} event(s) after ${MAX_ATTEMPTS} failed attempts`);
      return true;
    }
    // Back to the front of the queue, so an unload beacon still carries them. The Retry-After
    // header is not readable cross-origin, hence plain exponential backoff with jitter.
    queue = batch.concat(queue);
    const delay = 1000 * 2 ** (failures - 1) * (0.75 + Math.random() / 2);
    clearTimeout(timer);
    timer = setTimeout(flush, delay);
    return false;
  }

  function flush() {
    clearTimeout(timer);
    timer = null;
    if (!sending) {
      sending = (async () => {
        try {
          while (queue.length && (await sendOne()));
        } catch (error) {
          warn("internal error", error);
        } finally {
          sending = null;
        }
      })();
    }
    return sending;
  }

  // The page is going away (or may be discarded while hidden): hand everything to the browser,
  // which sends beacons even after the page is gone. Blob type text/plain keeps them simple requests.
  function flushOnExit() {
    clearTimeout(timer);
    timer = null;
    failures = 0; // a batch waiting for its retry leaves now too
    while (queue.length) {
      const { body } = nextBody();
      let queued = false;
      try {
        queued = navigator.sendBeacon(batchUrl, new Blob([body], { type: "text/plain" }));
      } catch (_) {
        queued = false;
      }
      if (!queued) post(body, true).catch(() => {});
    }
  }

  // --- automatic collection -------------------------------------------------------------

  // An input's value is read only for buttons: text fields may hold personal data.
  function elementText(el) {
    const isButtonInput = el.tagName === "INPUT" && /^(button|submit|reset)$/i.test(el.type);
    const text = isButtonInput ? el.value : el.textContent;
    return (text || "").replace(/\s+/g, " ").trim().slice(0, 200);
  }

  function onClick(event) {
    const el = event.target instanceof Element ? event.target.closest("[data-ecrm-track]") : null;
    if (!el) return;
    const link = el.closest("a[href], area[href]");
    const properties = {
      element_id: el.id || null,
      element_text: elementText(el),
      href: link ? link.href : null,
      page_url: location.href,
    };
    // data-ecrm-prop-product-id="p1" becomes the property product_id: "p1"
    for (const attr of Array.from(el.attributes)) {
      if (attr.name.startsWith("data-ecrm-prop-")) {
        properties[attr.name.slice("data-ecrm-prop-".length).replace(/-/g, "_")] = attr.value;
      }
    }
    api.track(el.getAttribute("data-ecrm-track") || "Element Clicked", properties);
  }

  // --- public API -----------------------------------------------------------------------

  const api = {
    initialized: true,
    VERSION,

    /** page([category], [name], [properties]), also page(name, properties) and page(properties). */
    page(category, name, properties) {
      if (isObject(category)) [category, name, properties] = [null, null, category];
      else if (isObject(name)) [category, name, properties] = [null, category, name];
      else if (name == null) [category, name] = [null, category];
      const props = Object.assign(pageFields(), name != null ? { name: String(name) } : {}, properties);
      const fields = { properties: props };
      if (name != null) fields.name = String(name);
      if (category != null) fields.category = String(category);
      enqueue(message("page", fields));
    },

    track(event, properties) {
      if (typeof event !== "string" || !event.trim()) return warn("track() needs an event name");
      enqueue(message("track", { event, properties: isObject(properties) ? properties : {} }));
    },

    /** identify([userId], [traits]): remembers userId for later events. */
    identify(userId, traits) {
      if (isObject(userId)) [userId, traits] = [null, userId];
      if (userId != null && String(userId) !== "") {
        user.userId = String(userId);
        storage.set(UID_KEY, user.userId);
      }
      enqueue(message("identify", { traits: isObject(traits) ? traits : {} }));
    },

    /** alias(userId, [previousId]): previousId defaults to the current userId, else the anonymous id. */
    alias(userId, previousId) {
      if (userId == null || String(userId) === "") return warn("alias() needs a userId");
      const previousIdentity = previousId != null ? String(previousId) : user.userId || user.anonymousId;
      enqueue(message("alias", { userId: String(userId), previousId: previousIdentity }));
    },

    group(groupId, traits) {
      if (groupId == null || String(groupId) === "") return warn("group() needs a groupId");
      enqueue(message("group", { groupId: String(groupId), traits: isObject(traits) ? traits : {} }));
    },

    /** Forget the user (e.g. on log out): no userId, and a new anonymous id. */
    reset() {
      user.userId = null;
      storage.remove(UID_KEY);
      user.anonymousId = saveAnonymousId(uuid());
    },

    /** Send the queued events now; the promise settles when the queue is drained (or retrying). */
    flush() {
      return flush();
    },

    user() {
      return { anonymousId: user.anonymousId, userId: user.userId };
    },
  };
  for (const method of METHODS) api[method] = safe(api[method]);

  // --- start ----------------------------------------------------------------------------

  // The stub (window.analytics = [] with methods pushing [method, ...args]) queued these.
  const pending = Array.isArray(previous) ? previous.slice() : [];
  window.analytics = api;

  document.addEventListener("click", safe(onClick), true);
  document.addEventListener("visibilitychange", safe(() => document.visibilityState === "hidden" && flushOnExit()));
  window.addEventListener("pagehide", safe(flushOnExit));

  for (const call of pending) {
    if (Array.isArray(call) && METHODS.includes(call[0])) api[call[0]](...call.slice(1));
  }
  // A page() already queued by the stub is this load's page view: do not send a second one.
  const pageQueued = pending.some((call) => Array.isArray(call) && call[0] === "page");
  if (data.autoPage !== "false" && !pageQueued) api.page();
})();
