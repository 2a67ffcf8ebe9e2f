// The touch kiosk: identify (scan the app's QR with the kiosk's scanner, or type a number on the keypad),
// see personal offers, claim one, set privacy choices. Keyboard-free: the scanner types like a keyboard and
// is captured here; the shopper only taps. The session lives in this page's memory only.
"use strict";
(() => {
  const touchpoint = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
  const $ = (id) => document.getElementById(id);
  const I = window.I18N;
  const CHANNELS = ["personalisation", "ble", "face", "assisted", "checkin"];
  const IDENTIFYING = ["ble", "face"]; // only the app's QR code may turn these on (the agent refuses otherwise)
  const VIEWS = ["welcome", "entry", "offers", "claim", "privacy", "goodbye"];
  const defaultLang = new URLSearchParams(location.search).get("lang") || "en";
  let session = null;
  let state = null;
  let kind = "loyalty";
  let digits = "";
  let scanBuffer = "";
  let scanTimer = null;
  let idleTimer = null;
  let messageTimer = null;

  // -- plumbing ---------------------------------------------------------------------------------------
  async function api(method, path, body) {
    const headers = { "Content-Type": "application/json" };
    if (session) headers["X-Kiosk-Session"] = session;
    const resp = await fetch(`/api/kiosk/${encodeURIComponent(touchpoint)}/${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin",
    });
    let data = {};
    try { data = await resp.json(); } catch { /* empty body */ }
    if (resp.status === 401 && data.error === "unauthorised") location.reload(); // staff login expired
    if (resp.status === 401 && data.error === "no_session") { endSession(false); }
    return { status: resp.status, data };
  }

  function show(view) {
    for (const v of VIEWS) $(v).hidden = v !== view;
    $("nav").hidden = session === null;
    $("nav-offers").toggleAttribute("aria-current", view === "offers");
    $("nav-privacy").toggleAttribute("aria-current", view === "privacy");
    if ($("nav-offers").hasAttribute("aria-current")) $("nav-offers").setAttribute("aria-current", "page");
    if ($("nav-privacy").hasAttribute("aria-current")) $("nav-privacy").setAttribute("aria-current", "page");
    const heading = $(view).querySelector("h1");
    if (heading) { heading.tabIndex = -1; heading.focus({ preventScroll: true }); }
    window.scrollTo(0, 0);
  }

  function say(key, ok = false) {
    const el = $("message");
    el.textContent = I.t(key);
    el.classList.toggle("ok", ok);
    el.hidden = false;
    clearTimeout(messageTimer);
    messageTimer = setTimeout(() => { el.hidden = true; }, 6000);
  }

  function touched() {
    clearTimeout(idleTimer);
    if (session === null) return;
    const seconds = (state && state.session_s) || 120;
    idleTimer = setTimeout(() => endSession(true), seconds * 1000);
  }

  function setLanguage(lang) {
    I.apply(lang);
    for (const b of $("languages").children) b.setAttribute("aria-pressed", String(b.dataset.lang === I.lang));
    if (state) { renderOffers(); renderPrivacy(); }
  }

  // -- identification ---------------------------------------------------------------------------------
  async function identify(method, value) {
    const { status, data } = await api("POST", "identify", { method, value });
    if (status === 200) {
      session = data.session;
      state = data;
      digits = "";
      renderNumber();
      renderOffers();
      renderPrivacy();
      touched();
      show("offers");
      return;
    }
    if (status === 429) say("locked");
    else if (method === "qr") say("qr_refused");
    else if (status === 404 || status === 400) say("not_found");
    else say("error");
  }

  function onKey(event) {
    touched();
    if (session !== null) return;
    if (!$("entry").hidden && /^[0-9]$/.test(event.key)) { press(event.key); return; }
    // A 2D scanner in keyboard mode types the QR's text fast and ends with Enter.
    if (event.key === "Enter") {
      const text = scanBuffer.trim();
      if (text.length > 0) event.preventDefault(); // the scanner's Enter must not press a focused button
      scanBuffer = "";
      if (text.length >= 16) identify("qr", text);
      else if (!$("entry").hidden) press("ok");
      return;
    }
    if (event.key.length === 1) {
      scanBuffer += event.key;
      clearTimeout(scanTimer);
      scanTimer = setTimeout(() => { scanBuffer = ""; }, 1500);
    }
  }

  function setKind(next) {
    kind = next;
    $("kind-loyalty").setAttribute("aria-checked", String(kind === "loyalty"));
    $("kind-phone").setAttribute("aria-checked", String(kind === "phone"));
  }

  function renderNumber() {
    const shown = kind === "phone" ? digits.replace(/(\d{3})(?=\d)/g, "$1 ") : digits.replace(/(\d{4})(?=\d)/g, "$1 ");
    $("number").textContent = shown;
  }

  function press(key) {
    if (key === "del") digits = digits.slice(0, -1);
    else if (key === "ok") { if (digits.length >= 6) identify(kind, digits); else say("not_found"); return; }
    else if (digits.length < 20) digits += key;
    renderNumber();
  }

  // -- offers and claims ------------------------------------------------------------------------------
  function safeImage(url) {
    if (typeof url !== "string" || url === "") return "";
    if (url.startsWith("/") && !url.startsWith("//")) return url;
    return /^https:\/\//i.test(url) ? url : "";
  }

  function price(offer) {
    if (offer.price_cents === null || offer.price_cents === undefined) return "";
    try {
      return new Intl.NumberFormat(I.lang, { style: "currency", currency: offer.currency }).format(offer.price_cents / 100);
    } catch { return `${(offer.price_cents / 100).toFixed(2)} ${offer.currency}`; }
  }

  function renderOffers() {
    const list = $("offer-list");
    list.replaceChildren();
    const offers = (state && state.offers) || [];
    $("no-offers").hidden = offers.length > 0;
    for (const offer of offers) {
      const card = $("offer-card").content.firstElementChild.cloneNode(true);
      card.classList.toggle("personal", Boolean(offer.personal));
      card.dataset.offerId = offer.offer_id;
      const img = card.querySelector(".offer-image");
      const src = safeImage(offer.image);
      if (src) img.src = src; else img.hidden = true;
      card.querySelector(".offer-kicker").textContent = I.t(offer.personal ? "just_for_you" : "for_everyone");
      card.querySelector(".offer-title").textContent = String(offer.title ?? "");
      card.querySelector(".offer-text").textContent = String(offer.text ?? "");
      card.querySelector(".offer-price").textContent = price(offer);
      const button = card.querySelector(".offer-claim");
      button.textContent = I.t(offer.claimed ? "claimed" : "claim");
      button.classList.toggle("claimed", Boolean(offer.claimed));
      button.addEventListener("click", () => claim(offer));
      list.append(card);
    }
    acknowledge(offers);
  }

  // proof of play: once the list is on the glass, tell the agent which listed offers the shopper saw
  const acked = new Set();
  function acknowledge(offers) {
    const ids = offers.map((o) => o.show_id).filter((id) => typeof id === "string" && !acked.has(id));
    if (!ids.length) return;
    requestAnimationFrame(() => requestAnimationFrame(async () => {
      const { status } = await api("POST", "ack", { show_ids: ids, displayed_at: new Date().toISOString() });
      if (status === 200) ids.forEach((id) => acked.add(id));
    }));
  }

  async function claim(offer) {
    const { status, data } = await api("POST", "claim", { offer_id: offer.offer_id });
    if (status !== 200) { say("error"); return; }
    offer.claimed = true;
    $("claim-offer").textContent = String(data.title ?? "");
    $("claim-qr").src = data.qr;
    $("claim-qr").alt = data.code;
    $("claim-code").textContent = data.code;
    $("claim-expiry").textContent = new Date(data.expires_at).toLocaleDateString(I.lang, { dateStyle: "medium" });
    renderOffers();
    show("claim");
  }

  // -- privacy ----------------------------------------------------------------------------------------
  function renderPrivacy() {
    const list = $("channels");
    list.replaceChildren();
    const consents = (state && state.consents) || {};
    for (const channel of CHANNELS) {
      const row = $("channel-row").content.firstElementChild.cloneNode(true);
      row.dataset.channel = channel;
      const title = row.querySelector(".channel-title");
      title.id = `channel-${channel}`;
      title.textContent = I.t(`ch_${channel}`);
      row.querySelector(".channel-text").textContent = I.t(`ch_${channel}_d`);
      const toggle = row.querySelector(".switch");
      const on = Boolean(consents[channel]);
      toggle.setAttribute("aria-checked", String(on));
      toggle.setAttribute("aria-labelledby", title.id);
      toggle.querySelector(".switch-label").textContent = I.t(on ? "on" : "off");
      if (!on && IDENTIFYING.includes(channel) && !(state && state.app_proven)) {
        toggle.disabled = true; // a typed number may withdraw these, never turn them on
        row.querySelector(".channel-text").textContent += " " + I.t("needs_app");
      } else {
        toggle.addEventListener("click", () => changeConsent(channel, !on));
      }
      list.append(row);
    }
    renderEnrolment();
  }

  // -- face enrolment: the kiosk's camera takes a few frames; a dialog says how it goes and how it ended --
  let enrolmentPoll = null;
  let enrolmentOpen = false; // the dialog stays until the shopper closes it, so they see how it ended

  function enrolmentText(e) {
    const hint = e.hint ? I.t(`hint_${e.hint}`) : "";
    if (e.state === "capturing") return [I.t("enrol_look"), hint].join(" ").trim();
    if (e.state === "failed" && e.reason === "storage_full") return I.t("enrol_error");
    if (e.state === "failed") return [I.t("enrol_failed"), hint].join(" ").trim();
    if (e.state === "sent" || e.state === "cancelled") return I.t(`enrol_${e.state}`);
    return "";
  }

  function renderEnrolment() {
    clearTimeout(enrolmentPoll);
    const e = (state && state.face_enrolment) || {};
    const faceOn = Boolean(state && state.consents && state.consents.face);
    const capturing = e.state === "capturing";
    // In the dialog: progress while the camera works, then the outcome until closed.
    $("enrolment-dialog").hidden = !(enrolmentOpen || capturing);
    $("enrolment-box").dataset.state = e.state || "";
    $("enrolment-text").textContent = enrolmentText(e);
    const progress = $("enrolment-progress");
    progress.hidden = !capturing;
    progress.max = e.of || 5;
    progress.value = e.frames || 0;
    progress.setAttribute("aria-valuetext", `${e.frames || 0} / ${e.of || 5}`);
    $("enrolment-cancel").hidden = !capturing;
    $("enrolment-close").hidden = capturing;
    if (capturing) enrolmentPoll = setTimeout(refreshEnrolment, 700);
    // On the privacy page: how the last one went, or where to enrol instead, and a way to (re)start.
    const note = faceOn && !e.offered ? I.t("face_not_here") : enrolmentText(e);
    $("enrolment-note").textContent = capturing ? "" : note;
    $("enrolment-start").hidden = !(faceOn && e.offered && !capturing && e.state !== "sent");
    $("enrolment").dataset.state = e.state || "";
    $("enrolment").hidden = !$("enrolment-note").textContent && $("enrolment-start").hidden;
  }

  async function refreshEnrolment() {
    if (session === null) return;
    const { status, data } = await api("GET", "session");
    if (status !== 200 || session === null) return;
    state = { ...state, ...data };
    renderEnrolment();
  }

  async function enrolment(path, body) {
    const { status, data } = await api("POST", path, body);
    if (status === 200) { state = { ...state, ...data }; enrolmentOpen = true; renderEnrolment(); } else say("error");
  }

  function closeEnrolment() {
    enrolmentOpen = false;
    renderEnrolment();
  }

  async function setConsent(channel, granted) {
    const { status, data } = await api("POST", "consent", { channel, granted });
    if (status !== 200) { say("error"); return false; }
    state = { ...state, ...data };
    renderPrivacy();
    renderOffers();
    const toggle = $("channels").querySelector(`li[data-channel="${channel}"] .switch`);
    if (toggle) toggle.focus({ preventScroll: true }); // keep the shopper's place after the list is redrawn
    say("saved", true);
    return true;
  }

  function changeConsent(channel, granted) {
    if (channel === "face" && granted) { $("face-dialog").hidden = false; $("face-agree").focus(); return; }
    setConsent(channel, granted);
  }

  async function agreeFace() {
    $("face-dialog").hidden = true;
    if (!(await setConsent("face", true))) return;
    if (state.face_enrolment && state.face_enrolment.offered) await enrolment("face", { agree: true });
  }

  // -- the end of a visit -----------------------------------------------------------------------------
  async function endSession(tellAgent) {
    clearTimeout(idleTimer);
    clearTimeout(enrolmentPoll);
    enrolmentOpen = false;
    $("enrolment-dialog").hidden = true;
    if (session !== null && tellAgent) await api("POST", "end", {});
    session = null;
    state = null;
    digits = "";
    renderNumber();
    $("face-dialog").hidden = true;
    $("offer-list").replaceChildren();
    $("channels").replaceChildren();
    show("goodbye");
    setTimeout(() => { if (session === null) { setLanguage(defaultLang); show("welcome"); } }, 2500);
  }

  // -- wiring -----------------------------------------------------------------------------------------
  for (const [code, name] of Object.entries(I.names)) {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.lang = code;
    b.lang = code;
    b.textContent = name;
    b.addEventListener("click", () => setLanguage(code));
    $("languages").append(b);
  }
  $("choose-type").addEventListener("click", () => { digits = ""; renderNumber(); show("entry"); });
  $("entry-back").addEventListener("click", () => show("welcome"));
  $("kind-loyalty").addEventListener("click", () => { setKind("loyalty"); renderNumber(); });
  $("kind-phone").addEventListener("click", () => { setKind("phone"); renderNumber(); });
  for (const b of document.querySelectorAll(".keypad button")) b.addEventListener("click", () => press(b.dataset.key));
  $("nav-offers").addEventListener("click", () => show("offers"));
  $("nav-privacy").addEventListener("click", () => show("privacy"));
  $("nav-done").addEventListener("click", () => endSession(true));
  $("claim-back").addEventListener("click", () => show("offers"));
  $("face-agree").addEventListener("click", agreeFace);
  $("face-decline").addEventListener("click", () => { $("face-dialog").hidden = true; renderPrivacy(); });
  $("enrolment-cancel").addEventListener("click", () => enrolment("face/cancel", {}));
  $("enrolment-start").addEventListener("click", () => enrolment("face", { agree: true }));
  $("enrolment-close").addEventListener("click", closeEnrolment);
  document.addEventListener("keydown", onKey);
  document.addEventListener("pointerdown", touched);
  setLanguage(defaultLang);
  show("welcome");
})();
