// The associate tablet: polls who nearby asked for help and shows them as cards. Text goes in as text only.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const LABELS = { interests: "Interested in", suggest: "Suggest", mention: "Mention", claimed: "Offers claimed today" };

  function minutes(seconds) {
    if (seconds < 60) return "just arrived";
    const m = Math.round(seconds / 60);
    return `here for ${m} min`;
  }

  function price(offer) {
    if (offer.price_cents === null || offer.price_cents === undefined) return "";
    try {
      return new Intl.NumberFormat("en", { style: "currency", currency: offer.currency }).format(offer.price_cents / 100);
    } catch { return ""; }
  }

  function render(shoppers) {
    const list = $("shoppers");
    list.replaceChildren();
    $("empty").hidden = shoppers.length > 0;
    for (const s of shoppers) {
      const card = $("shopper-card").content.firstElementChild.cloneNode(true);
      card.querySelector(".tag").textContent = String(s.tag);
      card.querySelector(".where").textContent = String(s.zone);
      card.querySelector(".since").textContent = minutes(Number(s.dwell_s) || 0);
      const points = card.querySelector(".points");
      for (const p of s.talking_points || []) {
        const li = document.createElement("li");
        const b = document.createElement("b");
        b.textContent = `${LABELS[p.key] || p.key}: `;
        li.append(b, document.createTextNode((p.values || []).map(String).join(", ")));
        points.append(li);
      }
      if (s.offer) {
        card.querySelector(".suggestion").hidden = false;
        card.querySelector(".suggestion-title").textContent = String(s.offer.title ?? "");
        card.querySelector(".suggestion-price").textContent = price(s.offer);
      }
      list.append(card);
    }
  }

  async function poll() {
    try {
      const resp = await fetch("/api/associate", { credentials: "same-origin" });
      if (resp.status === 401) { location.reload(); return; }
      const data = await resp.json();
      render(data.shoppers || []);
      $("live").textContent = "live";
      $("live").className = "pill ok";
    } catch {
      $("live").textContent = "agent unreachable";
      $("live").className = "pill bad";
    }
  }

  poll();
  setInterval(() => { if (!document.hidden) poll(); }, 3000);
})();
