// The store dashboard: polls /api/dashboard and draws its own charts on canvas (no third-party script).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const COLOURS = ["#1d6b4f", "#ffb23f", "#3d7cc9", "#c0504d", "#7b5ea7", "#2aa198"];
  const HISTORY = 300; // samples of 2 s: ten minutes
  const history = []; // [{t, zones: {id: people}}]

  function text(el, value) { el.textContent = String(value); }

  function pill(ok, yes, no) {
    const span = document.createElement("span");
    span.className = `pill ${ok ? "ok" : "bad"}`;
    span.textContent = ok ? yes : no;
    return span;
  }

  function setup(canvas) {
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.font = "13px DejaVu Sans, sans-serif";
    return ctx;
  }

  function axes(ctx, w, h, pad, max, steps) {
    ctx.strokeStyle = "#e2ddd0";
    ctx.fillStyle = "#5b6470";
    ctx.lineWidth = 1;
    for (let i = 0; i <= steps; i++) {
      const y = h - pad.b - ((h - pad.t - pad.b) * i) / steps;
      ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y); ctx.stroke();
      ctx.fillText(String(Math.round((max * i) / steps)), 6, y + 4);
    }
  }

  function drawZones(zones) {
    const canvas = $("chart-zones");
    const ctx = setup(canvas);
    const w = canvas.width, h = canvas.height, pad = { l: 40, r: 12, t: 12, b: 24 };
    const max = Math.max(4, ...history.flatMap((s) => Object.values(s.zones)));
    const top = Math.ceil(max / 4) * 4;
    axes(ctx, w, h, pad, top, 4);
    ctx.fillText("10 min ago", pad.l, h - 6);
    ctx.fillText("now", w - pad.r - 26, h - 6);
    zones.forEach((zone, i) => {
      ctx.strokeStyle = COLOURS[i % COLOURS.length];
      ctx.lineWidth = 3;
      ctx.beginPath();
      history.forEach((s, j) => {
        const x = pad.l + ((w - pad.l - pad.r) * (HISTORY - history.length + j)) / (HISTORY - 1);
        const y = h - pad.b - ((h - pad.t - pad.b) * (s.zones[zone.id] || 0)) / top;
        if (j === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
        if (j === history.length - 1) { ctx.stroke(); ctx.beginPath(); ctx.arc(x, y, 5, 0, 2 * Math.PI); }
      });
      ctx.fillStyle = ctx.strokeStyle;
      ctx.fill();
    });
    const legend = $("zone-legend");
    legend.replaceChildren();
    zones.forEach((zone, i) => {
      const li = document.createElement("li");
      li.style.setProperty("--swatch", COLOURS[i % COLOURS.length]);
      li.textContent = `${zone.name}: ${zone.identified + zone.anonymous}`;
      legend.append(li);
    });
  }

  function drawHours(hourly) {
    const canvas = $("chart-hours");
    const ctx = setup(canvas);
    const w = canvas.width, h = canvas.height, pad = { l: 40, r: 12, t: 12, b: 24 };
    const max = Math.max(4, ...hourly.map((x) => x.offers_shown));
    const top = Math.ceil(max / 4) * 4;
    axes(ctx, w, h, pad, top, 4);
    const slot = (w - pad.l - pad.r) / hourly.length;
    hourly.forEach((x, i) => {
      const bar = ((h - pad.t - pad.b) * x.offers_shown) / top;
      ctx.fillStyle = COLOURS[0];
      ctx.fillRect(pad.l + i * slot + 3, h - pad.b - bar, slot - 6, bar);
      if (i % 3 === 0) { ctx.fillStyle = "#5b6470"; ctx.fillText(x.hour, pad.l + i * slot + 2, h - 6); }
    });
  }

  function render(d) {
    text($("store-id"), d.store);
    const people = d.zones.reduce((n, z) => n + z.identified + z.anonymous, 0);
    text($("kpi-people"), people);
    text($("kpi-shown"), d.today.offers_shown);
    text($("kpi-reached"), d.today.people_reached ?? "no camera");
    text($("kpi-claims"), d.today.claimed);
    text($("kpi-conversions"), d.today.conversions);
    text($("kpi-outbox"), d.sync.outbox_depth);
    history.push({ t: Date.now(), zones: Object.fromEntries(d.zones.map((z) => [z.id, z.identified + z.anonymous])) });
    while (history.length > HISTORY) history.shift();
    drawZones(d.zones);
    drawHours(d.hourly);

    const rows = d.touchpoints.map((tp) => {
      const tr = document.createElement("tr");
      tr.dataset.touchpoint = tp.id;
      const cells = [tp.name, tp.zone].map((v) => { const td = document.createElement("td"); td.textContent = String(v); return td; });
      const status = document.createElement("td");
      status.append(tp.stalled ? pill(false, "", "stalled") : pill(tp.online, "online", tp.kind === "kiosk" ? "no page open" : "offline"));
      const showing = document.createElement("td");
      showing.className = "showing";
      showing.textContent = tp.showing.kind === "offer" ? `${tp.showing.title}${tp.showing.personal ? " (personal)" : ""}`
        : tp.showing.item ? `playlist: ${tp.showing.item}` : "idle playlist";
      const last = document.createElement("td");
      last.className = "last-play";
      last.textContent = tp.last_play
        ? `${tp.last_play.item}${tp.last_play.completed ? "" : " (cut short)"}, ${new Date(tp.last_play.ended_at).toLocaleTimeString()}`
        : "–";
      const pairing = document.createElement("td");
      if (tp.pairing_link) {
        const link = document.createElement("a");
        link.href = tp.pairing_link; // open once on that screen; it keeps the key
        link.textContent = "pairing link";
        link.className = "pairing";
        pairing.append(link);
      }
      tr.append(...cells, status, showing, last, pairing);
      return tr;
    });
    $("screens").replaceChildren(...rows);
    $("plays").replaceChildren(...d.plays.map((p) => {
      const tr = document.createElement("tr");
      for (const v of [p.campaign ?? "–", p.touchpoint, p.plays, p.completed, p.seconds, p.people_reached ?? "no camera"]) {
        const td = document.createElement("td"); td.textContent = String(v); tr.append(td);
      }
      return tr;
    }));

    const facts = [
      ["Uplink", d.sync.uplink],
      ["Outbox", `${d.sync.outbox_depth} waiting`],
      ["Oldest waiting", d.sync.outbox_oldest ? new Date(d.sync.outbox_oldest).toLocaleTimeString() : "–"],
      ["Offer bundle", d.sync.bundles.offers ? `v${d.sync.bundles.offers}` : "none yet"],
      ["Roster", d.sync.bundles.roster ? `v${d.sync.bundles.roster}` : "none yet"],
      ["Clock", d.clock_synced ? "NTP synced" : "not synced"],
    ];
    $("sync").replaceChildren(...facts.flatMap(([k, v]) => {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = String(v);
      return [dt, dd];
    }));

    const items = [];
    for (const [name, on] of Object.entries(d.sensors.sources)) {
      const li = document.createElement("li");
      li.append(document.createTextNode(`Source: ${name}`), pill(on, "on", "off"));
      if (!on) li.lastChild.className = "pill warn";
      items.push(li);
    }
    for (const [name, state] of Object.entries(d.sensors.components)) {
      const li = document.createElement("li");
      const restarts = d.sensors.restarts[name] || 0;
      li.append(document.createTextNode(`${name}${restarts ? ` (${restarts} restarts)` : ""}`), pill(state === "running", "running", state));
      items.push(li);
    }
    for (const [name, sign] of Object.entries(d.sensors.signs)) {
      const li = document.createElement("li");
      li.append(document.createTextNode(`Sign ${name}`), pill(sign.state === "online", "online", sign.state));
      items.push(li);
    }
    const a = d.sensors.assets;
    const li = document.createElement("li");
    li.append(document.createTextNode(`Images cached ${a.cached}/${a.named}`), pill(a.cached === a.named, "complete", "fetching"));
    items.push(li);
    $("sensors").replaceChildren(...items);
  }

  async function poll() {
    try {
      const resp = await fetch("/api/dashboard", { credentials: "same-origin" });
      if (resp.status === 401) { location.reload(); return; }
      render(await resp.json());
      $("live").textContent = "live";
      $("live").className = "pill ok";
    } catch {
      $("live").textContent = "agent unreachable";
      $("live").className = "pill bad";
    }
  }

  poll();
  setInterval(poll, 2000);
})();
