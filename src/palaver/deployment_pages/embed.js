/* Palaver deployment: an inline embed or a floating widget that starts a conversation and shows its room.
 * Served per deployment by Palaver (GET /deployments/<id>/embed.js), with the deployment's public settings
 * below. The site pastes the deployment's `snippet`; nothing else is needed. */
(function () {
  "use strict";
  var config = /*CONFIG*/null;
  var script = document.currentScript;  // only set while the script first runs
  var registry = window.__palaverDeployments = window.__palaverDeployments || {};
  if (!config || registry[config.deployment_id]) { return; }
  registry[config.deployment_id] = true;

  var STYLE = [
    ":host { all: initial; font-family: system-ui, sans-serif; color: #e8eef2; }",
    ".panel { background: #101418; border-radius: 12px; padding: 16px; box-sizing: border-box;",
    "  display: flex; flex-direction: column; gap: 10px; align-items: center; text-align: center; }",
    ".title { font-weight: 700; font-size: 16px; }",
    ".start { font: inherit; font-weight: 600; padding: 10px 20px; border: 0; border-radius: 20px;",
    "  background: #2f9e67; color: #fff; cursor: pointer; }",
    ".start:disabled { background: #4a5560; cursor: progress; }",
    ".message { min-height: 1em; margin: 0; color: #ffb4a8; font-size: 14px; }",
    ".room { width: 100%; display: none; flex-direction: column; gap: 6px; }",
    ".room iframe { width: 100%; height: 420px; border: 0; border-radius: 8px; background: #000; }",
    ".room a { color: #9fd3ff; font-size: 13px; }",
    ".bubble { position: fixed; right: 20px; bottom: 20px; width: 60px; height: 60px; border-radius: 50%;",
    "  border: 0; background: #2b5d8a; color: #fff; cursor: pointer; z-index: 2147483646;",
    "  display: grid; place-items: center;",
    "  box-shadow: 0 4px 16px rgba(0,0,0,.35); }",
    ".popup { position: fixed; right: 20px; bottom: 92px; width: min(380px, calc(100vw - 40px));",
    "  z-index: 2147483647; box-shadow: 0 8px 32px rgba(0,0,0,.45); display: none; }",
    ".popup.open { display: block; }"
  ].join("\n");

  function visitorId() {
    // Kept in the embedding site's own storage: the visitor's identity for the per-visitor daily limit.
    var key = "palaver_visitor";
    try {
      var id = window.localStorage.getItem(key);
      if (!id) {
        var bytes = new Uint8Array(16);
        window.crypto.getRandomValues(bytes);
        id = Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
        window.localStorage.setItem(key, id);
      }
      return id;
    } catch (e) {
      return null;
    }
  }

  function panel(host) {
    var box = document.createElement("div");
    box.className = "panel";
    var title = document.createElement("div");
    title.className = "title";
    title.textContent = config.title;
    var start = document.createElement("button");
    start.className = "start";
    start.type = "button";
    start.textContent = "Start conversation";
    var message = document.createElement("p");
    message.className = "message";
    message.setAttribute("role", "status");
    var room = document.createElement("div");
    room.className = "room";
    box.appendChild(title);
    box.appendChild(start);
    box.appendChild(message);
    box.appendChild(room);
    if (!config.available) {
      start.disabled = true;
      start.style.display = "none";
      message.textContent = config.message;
      return box;
    }
    start.addEventListener("click", function () {
      start.disabled = true;
      start.textContent = "Starting…";
      message.textContent = "";
      fetch(config.endpoint, {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({visitor_id: visitorId()}),
        credentials: "omit"
      }).then(function (response) {
        return response.json().then(function (data) { return {ok: response.ok, data: data}; });
      }).then(function (answer) {
        if (!answer.ok || !answer.data.conversation_url) {
          throw new Error(answer.data.error || "The conversation could not be started.");
        }
        var frame = document.createElement("iframe");
        frame.src = answer.data.conversation_url;
        frame.title = config.title;
        frame.allow = "microphone; camera; autoplay; fullscreen";
        var link = document.createElement("a");
        link.href = answer.data.conversation_url;
        link.target = "_blank";
        link.rel = "noopener";
        link.textContent = "Open in a new tab";
        room.appendChild(frame);
        room.appendChild(link);
        room.style.display = "flex";
        start.style.display = "none";
        host.setAttribute("data-conversation-id", answer.data.conversation_id);
        host.dispatchEvent(new CustomEvent("palaver:conversation-started", {detail: answer.data, bubbles: true}));
      }).catch(function (error) {
        message.textContent = error && error.message && error.message !== "Failed to fetch"
          ? error.message : "The conversation service could not be reached. Please try again.";
        start.disabled = false;
        start.textContent = "Start conversation";
      });
    });
    return box;
  }

  function mount() {
    var tag = config.channel === "embed" ? "palaver-embed" : "palaver-widget";
    var host = document.querySelector(tag + '[deployment-id="' + config.deployment_id + '"]');
    if (!host) {
      host = document.createElement(tag);
      host.setAttribute("deployment-id", config.deployment_id);
      if (config.channel === "embed" && script && script.parentNode) {
        script.parentNode.insertBefore(host, script);  // inline: where the snippet stands
      } else {
        document.body.appendChild(host);
      }
    }
    var root = host.attachShadow({mode: "open"});
    var style = document.createElement("style");
    style.textContent = STYLE;
    root.appendChild(style);
    var box = panel(host);
    if (config.channel === "embed") {
      root.appendChild(box);
      return;
    }
    var popup = document.createElement("div");
    popup.className = "popup";
    popup.appendChild(box);
    var bubble = document.createElement("button");
    bubble.className = "bubble";
    bubble.type = "button";
    bubble.setAttribute("aria-label", "Talk with " + config.title);
    // A speech bubble drawn, not an emoji: not every system has a font with one.
    bubble.innerHTML = '<svg viewBox="0 0 24 24" width="28" height="28" aria-hidden="true" fill="currentColor">' +
      '<path d="M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z"/></svg>';
    bubble.addEventListener("click", function () { popup.classList.toggle("open"); });
    root.appendChild(popup);
    root.appendChild(bubble);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", mount);
  } else {
    mount();
  }
})();
