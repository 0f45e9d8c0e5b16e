// The queue page: Enter starts reviewing the filtered queue.
(function () {
  "use strict";
  var start = document.getElementById("start");
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || event.target.tagName === "SELECT" || event.target.tagName === "BUTTON") return;
    if (start) window.location.assign(start.href);
  });
})();
