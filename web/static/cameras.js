// The camera list: every two seconds, each row's status, frame rate, latency and last
// segment from the JSON API (a camera added or deleted elsewhere shows at the next reload).
(function () {
  const table = document.getElementById("cameras");
  if (!table) return;
  const one = (v) => v.toFixed(1);
  function when(unixS) {
    return new Date(unixS * 1000).toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }
  async function refresh() {
    const listed = await window.pollJson("/api/v1/cameras");
    if (listed) {
      for (const camera of listed) {
        const row = table.querySelector('tr[data-camera="' + camera.id + '"]');
        if (!row) continue;
        row.querySelector(".status").textContent = window.cameraStatus(camera.status, camera.behind_s);
        row.querySelector(".fps").textContent = camera.fps === null ? "-" : one(camera.fps) + " fps";
        row.querySelector(".latency").textContent = camera.latency_p50_s === null ? "-"
          : one(camera.latency_p50_s) + " / " + one(camera.latency_p95_s) + " s";
        row.querySelector(".last").textContent = camera.last_segment_at ? when(camera.last_segment_at) : "-";
      }
    }
    setTimeout(refresh, 2000);
  }
  setTimeout(refresh, 2000);
})();
