// Fills the sign-in form from the address (?role=…&next=…) and says when the last try failed.
"use strict";
(() => {
  const params = new URLSearchParams(location.search);
  const names = { kiosk: "this kiosk", associate: "the associate tablet", dashboard: "the store dashboard", till: "the till" };
  const role = params.get("role") || "";
  document.getElementById("role").value = role;
  document.getElementById("next").value = params.get("next") || "/";
  document.getElementById("role-name").textContent = names[role] || "this device";
  document.getElementById("failed").hidden = params.get("failed") !== "1";
})();
