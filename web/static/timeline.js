// Timeline <-> video: playheads follow playback; clicking a bar (or Tab to it and Enter or
// Space) plays from there, a place on a row or an alert's time seeks; ?t=SECONDS opens the
// video there. Times are the results' (from the first picture); the video's clock starts
// data-start seconds earlier where the recording's video starts late (audio first).
(function () {
  const video = document.getElementById("video");
  const timeline = document.getElementById("timeline");
  if (!video) return;
  const start = Number(video.dataset.start) || 0;
  function seek(t) {
    video.currentTime = start + Math.max(0, Number(t) || 0);
  }
  function playFrom(t) {
    seek(t);
    video.play().catch(() => {});   // refused (no user gesture, say): it stays there, paused
  }
  const wanted = new URLSearchParams(window.location.search).get("t");
  if (wanted !== null) {
    if (video.readyState >= 1) seek(wanted);
    else video.addEventListener("loadedmetadata", () => seek(wanted), { once: true });
  }
  document.querySelectorAll("a.seek").forEach((link) => link.addEventListener("click", (event) => {
    event.preventDefault();
    seek(link.dataset.t);
  }));
  if (!timeline) return;
  const duration = Number(timeline.dataset.duration);
  timeline.querySelectorAll("rect.bar").forEach((bar) => {
    bar.addEventListener("click", (event) => {
      event.stopPropagation();
      playFrom(bar.dataset.t);
    });
    bar.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        playFrom(bar.dataset.t);
      }
    });
  });
  timeline.querySelectorAll("svg.tl-bars").forEach((strip) => strip.addEventListener("click", (event) => {
    const box = strip.getBoundingClientRect();
    const fraction = (event.clientX - box.left) / box.width;
    if (fraction >= 0 && fraction <= 1) seek(fraction * duration);
  }));
  const playheads = timeline.querySelectorAll("line.playhead");
  video.addEventListener("timeupdate", () => {
    const x = (100 * Math.min(1, Math.max(0, video.currentTime - start) / duration)).toFixed(3) + "%";
    playheads.forEach((line) => {
      line.setAttribute("x1", x);
      line.setAttribute("x2", x);
    });
  });
})();
