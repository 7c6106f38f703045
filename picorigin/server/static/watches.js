// The Watches page: dismiss and acknowledge alerts through the API (the write key when needed).
"use strict";

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const item = button.closest("[data-alert]");
  const status = document.getElementById("status");
  const action = button.dataset.action;
  let body;
  const headers = apiKeyHeaders(true);
  if (action === "dismiss") {
    const reason = (window.prompt("Why dismiss it? (optional)") || "").trim();
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(reason ? {reason} : {});
  }
  button.disabled = true;
  try {
    const response = await fetch(`/api/alerts/${item.dataset.alert}/${action}`,
                                 {method: "POST", headers, body});
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error ? answer.error.message : response.statusText);
    item.querySelector(".alert-status").textContent = answer.status;
    item.className = `alert alert-${answer.status}`;
    item.querySelectorAll("button[data-action]").forEach((other) => {
      other.disabled = answer.status === "dismissed" || other.dataset.action === action;
    });
    status.textContent = `alert ${answer.id} ${answer.status}`;
  } catch (error) {
    button.disabled = false;
    status.textContent = `could not ${action} alert ${item.dataset.alert}: ${error.message}`;
  }
});
