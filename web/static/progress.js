// Live progress: poll the JSON API for every job on the page that has not ended, and on the
// job page while its video is being drawn from the latest results.
(function () {
  const ENDED = ["done", "failed"];
  function pending() {
    return Array.from(document.querySelectorAll("[data-job]"))
      .filter((el) => !ENDED.includes(el.dataset.status) || el.dataset.video === "drawing");
  }
  // One poll that fails (the network or the web server away a moment) is tried again at the
  // next tick: thrown, it ended the polling, and the page showed frozen progress for good. A
  // session that has ended (logged out elsewhere, expired) reloads the page: the login.
  async function latest(jobId) {
    try {
      const response = await fetch("/api/v1/jobs/" + jobId, { headers: { Accept: "application/json" } });
      if (response.status === 401) window.location.reload();
      return response.ok ? await response.json() : null;
    } catch (error) {
      return null;
    }
  }
  async function refresh() {
    const rows = pending();
    for (const el of rows) {
      const job = await latest(el.dataset.job);
      if (!job) continue;
      const ended = ENDED.includes(job.status) && !ENDED.includes(el.dataset.status);
      const drawn = el.dataset.video === "drawing" && (job.video_version >= job.results_version || job.video_error);
      el.dataset.status = job.status;
      el.querySelector(".status").textContent = job.status;
      el.querySelector("progress").value = job.progress;
      el.querySelector(".pct").textContent = Math.round(job.progress * 100) + "%";
      const chunks = el.querySelector(".chunks");
      if (chunks) chunks.textContent = job.chunks_done + "/" + job.chunks_total;
      // The job page shows results once the job ends, and the video once it is drawn: reload then.
      if (el.id === "job-status" && (ended || drawn)) return window.location.reload();
    }
    if (pending().length) setTimeout(refresh, 1000);
  }
  if (pending().length) setTimeout(refresh, 1000);
})();
