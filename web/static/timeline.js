// Timeline <-> video: a playhead follows playback; clicking the timeline or an alert seeks.
(function () {
  const video = document.getElementById("video");
  const svg = document.getElementById("timeline");
  if (!video) return;
  document.querySelectorAll("a.seek").forEach((link) => link.addEventListener("click", (event) => {
    event.preventDefault();
    video.currentTime = Number(link.dataset.t);
  }));
  if (!svg) return;
  const labelWidth = Number(svg.dataset.labelWidth);
  const plotWidth = Number(svg.dataset.plotWidth);
  const duration = Number(svg.dataset.duration);
  const playhead = document.getElementById("playhead");
  video.addEventListener("timeupdate", () => {
    const x = labelWidth + (video.currentTime / duration) * plotWidth;
    playhead.setAttribute("x1", x);
    playhead.setAttribute("x2", x);
  });
  svg.addEventListener("click", (event) => {
    const box = svg.getBoundingClientRect();
    const x = event.clientX - box.left - labelWidth;
    if (x >= 0 && x <= plotWidth) video.currentTime = (x / plotWidth) * duration;
  });
})();
