// A signage player: shows what the agent sends, falls back to the idle playlist, reconnects by itself,
// and acknowledges a show only once it is really on the glass (proof of play). Every play of a playlist item
// is reported when it ends (completed, or cut short by an offer, a new playlist or the page going away) and
// kept until the agent has recorded it; an interrupted item plays again from its start. Every text goes in
// through textContent, so offer text can never become markup.
"use strict";
(() => {
  const touchpoint = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop());
  const $ = (id) => document.getElementById(id);
  const ACKS_KEY = `edge-agent.pending-acks.${touchpoint}`;
  const PLAYS_KEY = `edge-agent.pending-plays.${touchpoint}`;
  const PAIRING_KEY = `edge-agent.screen-key.${touchpoint}`;
  const NOT_PAIRED = 4401;
  // The pairing link (from the dashboard) carries the key once; the page keeps it and takes it off the address.
  const fromLink = new URLSearchParams(location.search).get("key");
  if (fromLink) {
    localStorage.setItem(PAIRING_KEY, fromLink);
    history.replaceState(null, "", location.pathname);
  }
  const pendingAcks = new Map(JSON.parse(localStorage.getItem(ACKS_KEY) || "[]"));
  const pendingPlays = new Map(JSON.parse(localStorage.getItem(PLAYS_KEY) || "[]"));
  let playing = null; // the playlist item on the glass: its play id, item id and start
  let ws = null;
  let backoffMs = 500;
  let idleItems = [];
  let idleIndex = 0;
  let idleTimer = null;
  let expiryTimer = null;
  let currentShow = null;
  // The layout (regions in percent of the screen); without an offer region an offer takes the loop's place.
  const views = { offer: $("offer"), idle: $("idle") };
  let layoutKey = "";
  let offerRegion = false;
  let clockTimer = null;

  function saveAcks() {
    localStorage.setItem(ACKS_KEY, JSON.stringify([...pendingAcks]));
  }

  function savePlays() {
    localStorage.setItem(PLAYS_KEY, JSON.stringify([...pendingPlays]));
  }

  function newId() { // crypto.randomUUID needs a secure context; a screen on the store LAN may be plain http
    return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  // The item on the glass ends: report its play (kept until recorded). Cut short, it plays again next.
  function endPlay(completed) {
    if (playing === null) return;
    const play = { type: "played", ...playing, ended_at: new Date().toISOString(), completed };
    playing = null;
    if (!completed) idleIndex = Math.max(0, idleIndex - 1);
    pendingPlays.set(play.play_id, play);
    savePlays();
    send(play);
  }

  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${scheme}//${location.host}/ws/screen/${encodeURIComponent(touchpoint)}`);
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "hello", key: localStorage.getItem(PAIRING_KEY) }));
      backoffMs = 500;
      $("status").classList.remove("offline");
      for (const ack of pendingAcks.values()) send(ack);
      for (const play of pendingPlays.values()) send(play);
    };
    ws.onmessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      handle(message);
    };
    ws.onclose = (event) => {
      $("status").classList.add("offline");
      $("status").classList.toggle("unpaired", event.code === NOT_PAIRED);
      const delay = Math.min(backoffMs, 10000) * (0.5 + Math.random());
      backoffMs = Math.min(backoffMs * 2, 10000);
      setTimeout(connect, delay);
    };
    ws.onerror = () => ws.close();
  }

  function handle(message) {
    switch (message.type) {
      case "hello": // (re)connected: the loop goes on unless its items changed meanwhile
      case "playlist": { // the schedule turned to another playlist for this time of day
        applyLayout(message.layout, message.timezone);
        const items = Array.isArray(message.idle) ? message.idle : [];
        const same = JSON.stringify(items) === JSON.stringify(idleItems);
        if (same && (idleTimer !== null || currentShow !== null)) break;
        endPlay(false);
        idleItems = items;
        if (!same) idleIndex = 0;
        if (currentShow === null) startIdle();
        break;
      }
      case "show":
        showOffer(message);
        break;
      case "idle":
        endOffer();
        break;
      case "reload": // the cloud asked: load the page afresh (an unfinished play is kept and sent again)
        endPlay(false);
        location.reload();
        break;
      case "play_recorded":
      case "play_refused":
        if (pendingPlays.delete(message.play_id)) savePlays();
        if (message.type === "play_refused") console.warn("agent:", message.reason);
        break;
      case "acked":
      case "error":
        if (message.show_id && pendingAcks.delete(message.show_id)) saveAcks();
        if (message.type === "error") console.warn("agent:", message.reason);
        break;
    }
  }

  function safeImage(url) {
    if (typeof url !== "string" || url === "") return "";
    if (url.startsWith("/") && !url.startsWith("//")) return url;
    return /^https?:\/\//i.test(url) || /^data:image\//i.test(url) ? url : "";
  }

  function loadImage(img, url) {
    return new Promise((resolve) => {
      const src = safeImage(url);
      if (!src) { img.hidden = true; img.removeAttribute("src"); resolve(); return; }
      const done = (ok) => { img.hidden = !ok; resolve(); };
      const timer = setTimeout(() => done(false), 4000);
      img.onload = () => { clearTimeout(timer); done(true); };
      img.onerror = () => { clearTimeout(timer); done(false); };
      img.src = src;
    });
  }

  // A video plays only from the agent's cache (offline first, and never a stranger's URL): muted, looped for as
  // long as its item lasts. Resolves whether it is ready to play.
  function loadVideo(video, url) {
    return new Promise((resolve) => {
      video.pause();
      video.oncanplay = video.onerror = null;
      const src = typeof url === "string" && url.startsWith("/assets/") ? url : "";
      if (!src) { video.hidden = true; video.removeAttribute("src"); resolve(false); return; }
      const done = (ok) => { clearTimeout(timer); video.hidden = !ok; resolve(ok); };
      const timer = setTimeout(() => done(false), 8000);
      video.oncanplay = () => { video.oncanplay = null; done(true); };
      video.onerror = () => done(false);
      video.muted = true;
      if (video.getAttribute("src") !== src) video.src = src;
      else { video.currentTime = 0; if (video.readyState >= 2) done(true); } // the same video again: from its start
    });
  }

  function play(video) {
    if (!video.hidden) video.play().catch(() => {}); // muted autoplay: a refusal leaves the first frame showing
  }

  function formatPrice(cents, currency) {
    if (typeof cents !== "number" || !currency) return "";
    try {
      return new Intl.NumberFormat(document.documentElement.lang || undefined, { style: "currency", currency })
        .format(cents / 100);
    } catch {
      return `${(cents / 100).toFixed(2)} ${currency}`;
    }
  }

  function reveal(viewId, transition = "fade") {
    const view = views[viewId];
    view.dataset.transition = ["fade", "slide", "cut"].includes(transition) ? transition : "fade";
    view.classList.remove("visible");
    view.hidden = false;
    requestAnimationFrame(() => view.classList.add("visible"));
    if (!offerRegion) conceal(viewId === "offer" ? "idle" : "offer"); // one region: one view at a time
  }

  function conceal(viewId) {
    views[viewId].classList.remove("visible");
    views[viewId].hidden = true;
  }

  // The offer is over: its region empties, or (one region) the loop takes the glass back.
  function endOffer() {
    if (offerRegion) { currentShow = null; $("offer-video").pause(); conceal("offer"); return; }
    if (currentShow === null && idleTimer !== null) return; // already playing the loop
    currentShow = null;
    startIdle();
  }

  function place(box, region) {
    box.dataset.region = region.id;
    box.className = `region region-${region.kind}`;
    Object.assign(box.style, { left: `${region.x}%`, top: `${region.y}%`, width: `${region.width}%`, height: `${region.height}%` });
  }

  function applyLayout(layout, timezone) {
    const key = JSON.stringify([layout, timezone]);
    if (!layout || !Array.isArray(layout.regions) || key === layoutKey) return;
    layoutKey = key;
    const stage = $("stage");
    // a portrait layout on a landscape output (a screen hung on end): the page turns its content a quarter
    stage.classList.toggle("rotated", layout.orientation === "portrait" && innerWidth > innerHeight);
    clearInterval(clockTimer);
    offerRegion = layout.regions.some((r) => r.kind === "offer");
    const boxes = layout.regions.map((region) => {
      const box = document.createElement("section");
      place(box, region);
      if (region.kind === "loop") box.append(views.idle, ...(offerRegion ? [] : [views.offer]));
      else if (region.kind === "offer") box.append(views.offer);
      else if (region.kind === "ticker") {
        const line = document.createElement("p");
        line.className = "ticker-text";
        line.textContent = region.text.map(String).join("     •     ");
        line.style.animationDuration = `${Math.max(8, line.textContent.length / 6)}s`;
        box.append(line);
      } else if (region.kind === "clock") {
        const face = document.createElement("p");
        face.className = "clock-face";
        const format = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", timeZone: timezone || undefined });
        const tick = () => { face.textContent = format.format(new Date()); };
        tick();
        clockTimer = setInterval(tick, 1000);
        box.append(face);
      }
      return box;
    });
    stage.replaceChildren(...boxes);
    if (offerRegion && currentShow === null) conceal("offer");
  }

  const painted = () => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  const visible = () => document.visibilityState === "visible"
    ? Promise.resolve()
    : new Promise((resolve) => document.addEventListener("visibilitychange", function wait() {
        if (document.visibilityState === "visible") {
          document.removeEventListener("visibilitychange", wait);
          resolve();
        }
      }));

  async function showOffer(message) {
    const offer = message.offer || {};
    const expires = Date.parse(offer.expires_at);
    if (!Number.isNaN(expires) && expires <= Date.now()) return;
    currentShow = message.show_id;
    if (!offerRegion) stopIdle(); // in its own region, an offer leaves the loop playing
    $("offer-kicker").textContent = message.personal ? "Just for you" : "Today's offer";
    views.offer.lang = typeof offer.language === "string" ? offer.language : ""; // the shopper's, for the fonts
    $("offer-title").textContent = String(offer.title ?? "");
    $("offer-text").textContent = String(offer.text ?? "");
    $("offer-price").textContent = formatPrice(offer.price_cents, offer.currency);
    // a markdown: the old price struck through (only when it really was higher), and the urgency label
    const was = typeof offer.was_cents === "number" && offer.was_cents > offer.price_cents;
    $("offer-was").textContent = was ? formatPrice(offer.was_cents, offer.currency) : "";
    $("offer-label").textContent = String(offer.label ?? "");
    $("offer-expiry").textContent = Number.isNaN(expires) ? "" : `Until ${new Date(expires).toLocaleString(undefined,
      { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" })}`;
    const moving = await loadVideo($("offer-video"), offer.video);
    await loadImage($("offer-image"), moving ? "" : offer.image);
    if (currentShow !== message.show_id) return; // replaced before it reached the glass
    reveal("offer");
    play($("offer-video"));
    await painted();
    await visible();
    if (currentShow !== message.show_id) return;
    const ack = { type: "ack", show_id: message.show_id, displayed_at: new Date().toISOString() };
    pendingAcks.set(message.show_id, ack);
    saveAcks();
    send(ack);
    clearTimeout(expiryTimer);
    if (!Number.isNaN(expires)) {
      expiryTimer = setTimeout(() => {
        if (currentShow === message.show_id) endOffer();
      }, Math.min(expires - Date.now(), 2 ** 31 - 1));
    }
  }

  function stopIdle() {
    clearTimeout(idleTimer);
    idleTimer = null;
    endPlay(false);
    $("idle-video").pause();
  }

  async function startIdle() {
    stopIdle();
    if (!offerRegion) { // the loop takes the glass back from the offer
      $("offer-video").pause();
      clearTimeout(expiryTimer);
    }
    if (idleItems.length === 0) { reveal("idle"); return; }
    const item = idleItems[idleIndex % idleItems.length];
    idleIndex += 1;
    $("idle-title").textContent = String(item.title ?? "");
    $("idle-text").textContent = String(item.text ?? "");
    const moving = await loadVideo($("idle-video"), item.video);
    await loadImage($("idle-image"), moving ? "" : item.image);
    if (currentShow !== null && !offerRegion) return;
    reveal("idle", item.transition);
    play($("idle-video"));
    if (typeof item.id === "string") {
      playing = { play_id: newId(), item: item.id, started_at: new Date().toISOString() };
      send({ type: "playing", item: playing.item, started_at: playing.started_at }); // for the dashboard
    }
    idleTimer = setTimeout(() => { endPlay(true); startIdle(); }, Math.max(1, Number(item.duration_s) || 8) * 1000);
  }

  addEventListener("pagehide", () => endPlay(false)); // kept, and sent when the page next connects

  connect();
})();
