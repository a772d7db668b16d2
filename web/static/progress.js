// Live progress: poll the JSON API for every job on the page that has not ended.
(function () {
  const ENDED = ["done", "failed"];
  function pending() {
    return Array.from(document.querySelectorAll("[data-job]"))
      .filter((el) => !ENDED.includes(el.dataset.status));
  }
  async function refresh() {
    const rows = pending();
    for (const el of rows) {
      const response = await fetch("/api/v1/jobs/" + el.dataset.job, { headers: { Accept: "application/json" } });
      if (!response.ok) continue;
      const job = await response.json();
      el.dataset.status = job.status;
      el.querySelector(".status").textContent = job.status;
      el.querySelector("progress").value = job.progress;
      el.querySelector(".pct").textContent = Math.round(job.progress * 100) + "%";
      const chunks = el.querySelector(".chunks");
      if (chunks) chunks.textContent = job.chunks_done + "/" + job.chunks_total;
      // The job page shows results once the job ends: reload it then.
      if (ENDED.includes(job.status) && el.id === "job-status") window.location.reload();
    }
    if (pending().length) setTimeout(refresh, 1000);
  }
  if (pending().length) setTimeout(refresh, 1000);
})();
