/*
 * chat.js: the eCRM website assistant. Hand-written, no dependencies, no build step (ES2017).
 *
 *   <script src="https://interaction.example/v1/chat.js" data-write-key="wkb_..." async></script>
 *
 * Options, as attributes of that script tag:
 *   data-write-key    the browser source's write key (required; the same key as ecrm.js)
 *   data-host         the interaction service's origin (default: where the script was loaded from)
 *   data-language     the language to answer in (default: <html lang>, then the browser's)
 *   data-user-id      the signed-in customer's user id, with
 *   data-user-token   the shop back end's identity token for it: hex HMAC-SHA256(secret, user id)
 * window.ecrmChat.open() / .close() open and close the panel.
 * Everything is drawn in a shadow root (the page's CSS does not leak in), all text is set as
 * text (never HTML), and nothing here may throw into the host page.
 */
(function () {
  "use strict";

  const VERSION = "0.1.0";
  const STORE_KEY = "ecrm_chat";
  const POLL_MS = 3000;
  const MAX_TEXT = 1000;

  if (window.ecrmChat && window.ecrmChat.version) return; // included twice

  const script = document.currentScript || document.querySelector('script[src*="chat.js"][data-write-key]');
  const data = (script && script.dataset) || {};
  const host = (data.host || (script && script.src ? new URL(script.src, location.href).origin : "")).replace(/\/+$/, "");
  const writeKey = data.writeKey || "";
  const pageLanguage = (data.language || document.documentElement.lang || navigator.language || "en").toLowerCase();

  const TEXT = {
    en: { open: "Chat with us", close: "Close chat", title: "Help", automated: "Automated assistant: answers come from our help articles.",
          placeholder: "Type your question", send: "Send", person: "Talk to a person", waiting: "A person will answer you here.",
          emailLabel: "Your email address", emailSend: "Leave my address", rate: "How helpful was this conversation?", star: "{n} of 5",
          slow: "You're sending messages quickly: please wait a moment.", failed: "The message could not be sent. Please try again.",
          agent: "Team", you: "You", newChat: "New conversation" },
    de: { open: "Mit uns chatten", close: "Chat schließen", title: "Hilfe", automated: "Automatischer Assistent: Antworten stammen aus unseren Hilfeartikeln.",
          placeholder: "Ihre Frage", send: "Senden", person: "Mit einem Menschen sprechen", waiting: "Ein Mensch antwortet Ihnen hier.",
          emailLabel: "Ihre E-Mail-Adresse", emailSend: "Adresse hinterlassen", rate: "Wie hilfreich war dieses Gespräch?", star: "{n} von 5",
          slow: "Sie senden sehr schnell: Bitte warten Sie einen Moment.", failed: "Die Nachricht konnte nicht gesendet werden. Bitte erneut versuchen.",
          agent: "Team", you: "Sie", newChat: "Neues Gespräch" },
    es: { open: "Chatea con nosotros", close: "Cerrar chat", title: "Ayuda", automated: "Asistente automático: las respuestas salen de nuestros artículos de ayuda.",
          placeholder: "Escribe tu pregunta", send: "Enviar", person: "Hablar con una persona", waiting: "Una persona te responderá aquí.",
          emailLabel: "Tu correo electrónico", emailSend: "Dejar mi correo", rate: "¿Te ha ayudado esta conversación?", star: "{n} de 5",
          slow: "Estás enviando mensajes muy rápido: espera un momento.", failed: "No se pudo enviar el mensaje. Inténtalo de nuevo.",
          agent: "Equipo", you: "Tú", newChat: "Nueva conversación" },
    fr: { open: "Discuter avec nous", close: "Fermer le chat", title: "Aide", automated: "Assistant automatique : les réponses viennent de nos articles d'aide.",
          placeholder: "Votre question", send: "Envoyer", person: "Parler à une personne", waiting: "Une personne vous répondra ici.",
          emailLabel: "Votre adresse e-mail", emailSend: "Laisser mon adresse", rate: "Cette conversation vous a-t-elle aidé ?", star: "{n} sur 5",
          slow: "Vous envoyez des messages très vite : patientez un instant.", failed: "Le message n'a pas pu être envoyé. Réessayez.",
          agent: "Équipe", you: "Vous", newChat: "Nouvelle conversation" },
  };
  const lang = TEXT[pageLanguage.split("-")[0]] ? pageLanguage.split("-")[0] : "en";
  const t = TEXT[lang];

  function attempt(fn, fallback) {
    try { return fn(); } catch (_) { return fallback; }
  }
  const warn = (...args) => attempt(() => console.warn("[ecrm chat]", ...args));

  function anonymousId() {
    const fromCookie = attempt(() => (document.cookie.match(/(?:^|;\s*)ecrm_aid=([^;]+)/) || [])[1], null);
    const kept = fromCookie || attempt(() => localStorage.getItem("ecrm_aid"), null) || attempt(() => localStorage.getItem("ecrm_chat_aid"), null);
    if (kept) return decodeURIComponent(kept).replace(/[^A-Za-z0-9._:-]/g, "").slice(0, 200);
    const made = (crypto.randomUUID && crypto.randomUUID()) || String(Date.now()) + Math.random().toString(16).slice(2);
    attempt(() => localStorage.setItem("ecrm_chat_aid", made));
    return made;
  }

  let state = { id: null, token: null, last: 0, status: "assistant", rating: null, supportOpen: true, answered: false, polling: null };
  const saved = attempt(() => JSON.parse(localStorage.getItem(STORE_KEY) || "null"), null);
  if (saved && saved.id && saved.token && saved.user === (data.userId || null)) { state.id = saved.id; state.token = saved.token; }

  // --- the DOM ---------------------------------------------------------------------------

  const root = document.createElement("div");
  root.setAttribute("data-ecrm-chat", VERSION);
  const shadow = root.attachShadow({ mode: "open" });
  shadow.innerHTML = `<style>
    :host { all: initial; }
    [hidden] { display: none !important; }
    * { box-sizing: border-box; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
    .launcher { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000; border: 0; border-radius: 28px;
      padding: 14px 20px; background: #1f4fd1; color: #fff; font-size: 15px; cursor: pointer; box-shadow: 0 4px 14px rgba(0,0,0,.25); }
    .launcher:focus-visible, button:focus-visible, input:focus-visible, textarea:focus-visible { outline: 3px solid #f5a623; outline-offset: 2px; }
    .badge { display: inline-block; min-width: 10px; height: 10px; margin-left: 8px; border-radius: 5px; background: #f5a623; }
    .panel { position: fixed; right: 20px; bottom: 84px; z-index: 2147483000; width: min(380px, calc(100vw - 40px));
      height: min(560px, calc(100vh - 120px)); display: flex; flex-direction: column; background: #fff; color: #1b1b1b;
      border-radius: 12px; box-shadow: 0 8px 30px rgba(0,0,0,.3); overflow: hidden; font-size: 14px; }
    .panel[hidden] { display: none; }
    header { padding: 12px 14px; background: #1f4fd1; color: #fff; display: flex; gap: 8px; align-items: start; }
    header h2 { margin: 0; font-size: 16px; }
    header p { margin: 2px 0 0; font-size: 12px; opacity: .9; }
    header .x { margin-left: auto; background: transparent; color: #fff; border: 0; font-size: 20px; cursor: pointer; line-height: 1; }
    .log { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 8px; background: #f6f7f9; }
    .msg { max-width: 88%; padding: 8px 10px; border-radius: 10px; white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.4; }
    .msg.visitor { align-self: flex-end; background: #1f4fd1; color: #fff; }
    .msg.assistant { align-self: flex-start; background: #fff; border: 1px solid #dde1e7; }
    .msg.agent { align-self: flex-start; background: #e8f5e9; border: 1px solid #b5dcb8; }
    .who { display: block; font-size: 11px; color: #555; margin-bottom: 2px; }
    .msg.visitor .who { color: #dfe6ff; }
    .article { margin-top: 6px; padding: 8px; border-left: 3px solid #1f4fd1; background: #f3f6ff; }
    .article strong { display: block; margin-bottom: 4px; }
    .actions { display: flex; flex-wrap: wrap; gap: 6px; padding: 0 12px 8px; background: #f6f7f9; }
    .actions button, .rate button { border: 1px solid #1f4fd1; background: #fff; color: #1f4fd1; border-radius: 16px; padding: 6px 12px; cursor: pointer; }
    .notice { padding: 6px 12px; font-size: 12px; color: #333; background: #fff8e1; }
    .rate { padding: 8px 12px; border-top: 1px solid #eee; }
    .rate p { margin: 0 0 6px; }
    form { display: flex; gap: 6px; padding: 10px; border-top: 1px solid #e3e6ea; }
    form input, form textarea { flex: 1; border: 1px solid #b9c0ca; border-radius: 8px; padding: 8px; font-size: 14px; resize: none; }
    form button { border: 0; background: #1f4fd1; color: #fff; border-radius: 8px; padding: 0 14px; cursor: pointer; }
    .sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  </style>
  <button class="launcher" type="button" aria-expanded="false"></button>
  <section class="panel" role="dialog" aria-modal="false" hidden>
    <header><div><h2></h2><p class="automated"></p></div><button class="x" type="button">×</button></header>
    <div class="log" role="log" aria-live="polite" aria-relevant="additions"></div>
    <div class="actions"></div>
    <div class="notice" hidden></div>
    <div class="rate" hidden><p></p><div class="stars"></div></div>
    <form class="ask"><label class="sr" for="q"></label><textarea id="q" rows="2" maxlength="${MAX_TEXT}"></textarea><button type="submit"></button></form>
    <form class="contact" hidden><label class="sr" for="e"></label><input id="e" type="email" autocomplete="email"><button type="submit"></button></form>
  </section>`;
  const $ = (sel) => shadow.querySelector(sel);
  const launcher = $(".launcher"), panel = $(".panel"), log = $(".log"), actions = $(".actions"), notice = $(".notice");
  const rateBox = $(".rate"), askForm = $(".ask"), input = $("#q"), contactForm = $(".contact"), email = $("#e");
  launcher.textContent = t.open;
  $("header h2").textContent = t.title;
  $(".automated").textContent = t.automated;
  $(".x").setAttribute("aria-label", t.close);
  panel.setAttribute("aria-label", t.title);
  $('label[for="q"]').textContent = t.placeholder;
  input.placeholder = t.placeholder;
  askForm.querySelector("button").textContent = t.send;
  $('label[for="e"]').textContent = t.emailLabel;
  email.placeholder = t.emailLabel;
  contactForm.querySelector("button").textContent = t.emailSend;
  rateBox.querySelector("p").textContent = t.rate;
  for (let n = 1; n <= 5; n++) {
    const star = document.createElement("button");
    star.type = "button";
    star.textContent = "★".repeat(n);
    star.setAttribute("aria-label", t.star.replace("{n}", n));
    star.addEventListener("click", () => rate(n));
    rateBox.querySelector(".stars").appendChild(star);
  }

  // --- talking to the service --------------------------------------------------------------

  async function call(method, path, body) {
    const headers = { "Content-Type": "application/json" };
    if (state.token) headers["X-Conversation-Token"] = state.token;
    else headers.Authorization = "Bearer " + writeKey;
    const response = await fetch(host + path, { method, headers, body: body ? JSON.stringify(body) : undefined, credentials: "omit" });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error((answer.error && answer.error.message) || "HTTP " + response.status);
      error.status = response.status;
      throw error;
    }
    return answer;
  }

  async function ensureStarted() {
    if (state.id) return;
    const started = await call("POST", "/v1/chat/conversations", {
      anonymous_id: anonymousId(), user_id: data.userId || null, user_token: data.userToken || null,
      language: pageLanguage, page: location.pathname,
    });
    state.id = started.conversation_id;
    state.token = started.token;
    attempt(() => localStorage.setItem(STORE_KEY, JSON.stringify({ id: state.id, token: state.token, user: data.userId || null })));
    show(started);
  }

  function conversationPath(suffix) {
    return "/v1/chat/conversations/" + encodeURIComponent(state.id) + (suffix || "") + "?after=" + state.last;
  }

  function show(answer) {
    for (const message of answer.messages || []) {
      if (message.id <= state.last) continue;
      state.last = message.id;
      draw(message);
      if (message.author === "agent" && panel.hidden) launcher.appendChild(Object.assign(document.createElement("span"), { className: "badge" }));
    }
    state.status = answer.status;
    state.rating = answer.rating;
    state.supportOpen = answer.support_open;
    const handed = state.status === "waiting" || state.status === "person";
    notice.hidden = !handed;
    notice.textContent = handed ? t.waiting : "";
    contactForm.hidden = !(handed && !answer.support_open);
    rateBox.hidden = !(state.rating === null && (state.answered || state.status === "closed"));
    askForm.hidden = state.status === "closed";
    drawActions();
    if (handed) startPolling();
    else stopPolling();
  }

  function draw(message) {
    const bubble = document.createElement("div");
    bubble.className = "msg " + message.author;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = message.author === "visitor" ? t.you : message.author === "agent" ? (message.agent ? t.agent : t.agent) : t.title;
    bubble.appendChild(who);
    bubble.appendChild(document.createTextNode(message.text));
    if (message.article) {
      state.answered = true;
      const article = document.createElement("div");
      article.className = "article";
      article.setAttribute("data-article-id", message.article.id);
      const title = document.createElement("strong");
      title.textContent = message.article.title;
      article.appendChild(title);
      article.appendChild(document.createTextNode(message.article.body));
      bubble.appendChild(article);
    }
    if (message.author === "assistant" && message.offer_person) bubble.setAttribute("data-offer-person", "true");
    log.appendChild(bubble);
    log.scrollTop = log.scrollHeight;
  }

  function drawActions() {
    actions.textContent = "";
    if (state.status === "assistant" && state.id) {
      const person = document.createElement("button");
      person.type = "button";
      person.className = "person";
      person.textContent = t.person;
      person.addEventListener("click", handOff);
      actions.appendChild(person);
    }
    if (state.status === "closed") {
      const again = document.createElement("button");
      again.type = "button";
      again.textContent = t.newChat;
      again.addEventListener("click", restart);
      actions.appendChild(again);
    }
  }

  function say(text) {
    draw({ author: "assistant", text });
  }

  async function guarded(work) {
    try {
      await work();
    } catch (error) {
      if (error.status === 404 || error.status === 401) forget();
      say(error.status === 429 ? t.slow : error.status === 422 ? error.message : t.failed);
      warn(error);
    }
  }

  function ask(text) {
    return guarded(async () => {
      await ensureStarted();
      show(await call("POST", conversationPath("/messages"), { text }));
    });
  }

  function handOff() {
    return guarded(async () => {
      await ensureStarted();
      show(await call("POST", conversationPath("/handoff")));
    });
  }

  function rate(n) {
    return guarded(async () => show(await call("POST", conversationPath("/rating"), { rating: n })));
  }

  function forget() {
    attempt(() => localStorage.removeItem(STORE_KEY));
    state = { id: null, token: null, last: 0, status: "assistant", rating: null, supportOpen: true, answered: false, polling: null };
  }

  function restart() {
    stopPolling();
    forget();
    log.textContent = "";
    show({ messages: [], status: "assistant", rating: null, support_open: true });
    guarded(ensureStarted);
  }

  function startPolling() {
    if (state.polling) return;
    state.polling = setInterval(() => guarded(async () => state.id && show(await call("GET", conversationPath("")))), POLL_MS);
  }

  function stopPolling() {
    if (state.polling) clearInterval(state.polling);
    state.polling = null;
  }

  // --- wiring ----------------------------------------------------------------------------

  function open() {
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    const badge = launcher.querySelector(".badge");
    if (badge) badge.remove();
    if (!state.id) guarded(ensureStarted);
    else if (!state.last) guarded(async () => show(await call("GET", conversationPath(""))));
    input.focus();
  }

  function close() {
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    launcher.focus();
  }

  launcher.addEventListener("click", () => (panel.hidden ? open() : close()));
  $(".x").addEventListener("click", close);
  panel.addEventListener("keydown", (event) => { if (event.key === "Escape") close(); });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); askForm.requestSubmit(); }
  });
  askForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    ask(text.slice(0, MAX_TEXT));
  });
  contactForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const address = email.value.trim();
    if (!address) return;
    guarded(async () => { show(await call("POST", conversationPath("/contact"), { email: address })); contactForm.hidden = true; });
  });

  function mount() {
    if (!writeKey) { warn("data-write-key is missing: the chat is off"); return; }
    document.body.appendChild(root);
    if (state.id) guarded(async () => show(await call("GET", conversationPath(""))));
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);

  window.ecrmChat = { version: VERSION, open: () => attempt(open), close: () => attempt(close) };
})();
