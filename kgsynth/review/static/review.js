// The item page: draws the path with Cytoscape.js and binds the review keys.
(function () {
  "use strict";
  var scriptAt = performance.now();
  var page = document.getElementById("item");
  if (!page) return;
  var itemId = page.dataset.itemId;

  // --- the path as a graph: nodes in path order left to right, edges in their stored direction
  var data = JSON.parse(document.getElementById("graph-data").textContent);
  var roleColour = { anchor: "#2e7d32", bridge: "#6d6d6d", answer: "#1565c0" };
  var cy = cytoscape({
    container: document.getElementById("graph"),
    elements: data,
    layout: {
      name: "preset",
      positions: function (node) {
        var order = node.data("order");
        return { x: order * 260, y: order % 2 ? 60 : -60 };
      },
      fit: true,
      padding: 40,
    },
    userZoomingEnabled: true,
    style: [
      {
        selector: "node",
        style: {
          label: function (n) { return n.data("name") + "\n" + n.data("type") + " · " + n.id(); },
          "text-wrap": "wrap",
          "text-max-width": 200,
          "font-size": 11,
          // nodes alternate between two rows; each label sits on the outer side of its row
          "text-valign": function (n) { return n.data("order") % 2 ? "bottom" : "top"; },
          "text-margin-y": function (n) { return n.data("order") % 2 ? 6 : -6; },
          "background-color": function (n) { return roleColour[n.data("role")] || "#888"; },
          width: 26,
          height: 26,
        },
      },
      { selector: "node[?masked]", style: { "border-width": 3, "border-style": "dashed", "border-color": "#333" } },
      {
        selector: "edge",
        style: {
          label: function (e) { return e.data("hop") + ". " + e.data("relation"); },
          "font-size": 10,
          "text-rotation": "autorotate",
          "text-background-color": "#fff",
          "text-background-opacity": 0.9,
          "curve-style": "bezier",
          "target-arrow-shape": "triangle",
          "line-color": "#9e9e9e",
          "target-arrow-color": "#9e9e9e",
          width: 2,
        },
      },
      { selector: "edge[direction = 'inverse']", style: { "line-style": "solid", "line-color": "#b0803c", "target-arrow-color": "#b0803c" } },
    ],
  });
  window.kgsynthReview = { cy: cy, scriptAt: scriptAt, drawnAt: performance.now() };  // drawnAt: for bench/bench_review.py

  // --- saving a review, then on to the next item
  var message = document.getElementById("message");
  var rejectForm = document.getElementById("reject-form");
  var busy = false;

  function show(text) {
    message.textContent = text;
    message.hidden = !text;
  }

  function save(decision, reason, note) {
    if (busy) return;
    busy = true;
    show("");
    fetch("/api/reviews", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ item_id: itemId, decision: decision, reason: reason || null, note: note || "" }),
      credentials: "same-origin",
    })
      .then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      })
      .then(function (result) {
        if (!result.ok) throw new Error(result.body.error || "the review was not saved");
        window.location.assign(page.dataset.next);
      })
      .catch(function (error) {
        busy = false;
        show(error.message + " — nothing was lost; try again.");
      });
  }

  function openReject() {
    rejectForm.hidden = false;
    var checked = rejectForm.querySelector("input[name=reason]:checked");
    (checked || rejectForm.querySelector("input[name=reason]")).focus();
  }

  function closeReject() {
    rejectForm.hidden = true;
    document.activeElement.blur();
  }

  function submitReject() {
    var checked = rejectForm.querySelector("input[name=reason]:checked");
    if (!checked) {
      show("choose a reason (keys 1–" + rejectForm.querySelectorAll("input[name=reason]").length + ") first");
      return;
    }
    save("reject", checked.value, document.getElementById("note").value);
  }

  document.getElementById("accept").addEventListener("click", function () { save("accept"); });
  document.getElementById("skip").addEventListener("click", function () { save("skip"); });
  document.getElementById("reject").addEventListener("click", openReject);
  document.getElementById("reject-cancel").addEventListener("click", closeReject);
  rejectForm.addEventListener("submit", function (event) { event.preventDefault(); submitReject(); });

  function go(url) { if (url) window.location.assign(url); }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var inForm = !rejectForm.hidden;
    var typing = event.target.tagName === "TEXTAREA" || (event.target.tagName === "INPUT" && event.target.type !== "radio");
    if (inForm) {
      if (event.key === "Escape") { event.preventDefault(); closeReject(); return; }
      if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); submitReject(); return; }
      if (!typing && /^[1-9]$/.test(event.key)) {
        var reasons = rejectForm.querySelectorAll("input[name=reason]");
        var choice = reasons[Number(event.key) - 1];
        if (choice) {
          event.preventDefault();
          choice.checked = true;
          document.getElementById("note").focus();
        }
      }
      return;
    }
    if (typing) return;
    switch (event.key) {
      case "a": save("accept"); break;
      case "s": save("skip"); break;
      case "r": event.preventDefault(); openReject(); break;
      case "n": case "ArrowRight": go(page.dataset.next); break;
      case "p": case "ArrowLeft": go(page.dataset.previous); break;
      case "q": go(page.dataset.queue); break;
      case "f": cy.fit(undefined, 40); break;
      default: return;
    }
  });
})();
