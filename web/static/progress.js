// Live progress: poll the JSON API for every job on the page that has not ended, and on the
// job page while its video is being drawn from the latest results. A job deleted meanwhile
// (another user, another tab) ends too: its status says so, and the job page says it plainly.
(function () {
  const ENDED = ["done", "failed", "deleted"];
  function pending() {
    return Array.from(document.querySelectorAll("[data-job]"))
      .filter((el) => !ENDED.includes(el.dataset.status) || el.dataset.video === "drawing");
  }
  function deleted(el) {
    el.dataset.status = "deleted";
    el.dataset.video = "still";
    el.querySelector(".status").textContent = "deleted";
    const notice = document.getElementById("job-deleted");
    if (el.id === "job-status" && notice) notice.hidden = false;
  }
  async function refresh() {
    const rows = pending();
    for (const el of rows) {
      const job = await window.pollJson("/api/v1/jobs/" + el.dataset.job, () => deleted(el));
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
