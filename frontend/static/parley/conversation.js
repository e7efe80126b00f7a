/* Parley dashboard: the conversation page's player. Turn markers and "Play from here"
   buttons seek the recording (data-seek-ms, on the recording's clock) and play it; the track
   shows the play position. No dependencies. */
(function () {
  "use strict";

  function init() {
    var audio = document.querySelector("audio[data-recording]");
    if (!audio) return;
    var progress = document.querySelector("[data-rec-progress]");
    var durationMs = parseFloat(audio.getAttribute("data-duration-ms")) || 0;

    document.addEventListener("click", function (event) {
      var target = event.target.closest("[data-seek-ms]");
      if (!target) return;
      var seconds = (parseFloat(target.getAttribute("data-seek-ms")) || 0) / 1000;
      audio.currentTime = seconds;
      var played = audio.play();
      if (played && played.catch) played.catch(function () {}); // autoplay refused: stays seeked
    });

    audio.addEventListener("timeupdate", function () {
      var total = (audio.duration && isFinite(audio.duration)) ? audio.duration * 1000 : durationMs;
      if (progress && total > 0) {
        progress.style.width = Math.min(100, (audio.currentTime * 1000 / total) * 100) + "%";
      }
      var current = null;
      document.querySelectorAll(".turn[data-turn]").forEach(function (turn) {
        var button = turn.querySelector("[data-seek-ms]");
        if (button && parseFloat(button.getAttribute("data-seek-ms")) <= audio.currentTime * 1000) {
          current = turn;
        }
      });
      document.querySelectorAll(".turn.is-playing").forEach(function (turn) {
        if (turn !== current) turn.classList.remove("is-playing");
      });
      if (current && !audio.paused) current.classList.add("is-playing");
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
