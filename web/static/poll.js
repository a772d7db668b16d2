// One look at a JSON API for a page that polls it (progress.js, cameras.js): the answer, or
// null when this look failed (the network or the web server away a moment: the page looks
// again at its next tick; thrown, it ended the polling and the page froze). A session that
// has ended (logged out elsewhere, expired) reloads the page: the login. A thing that is gone
// (404: deleted by another user or in another tab) calls onGone, if given, so the page can
// say so and stop asking: polled on, it got 404s for good and showed the old state as live.
window.pollJson = async function (url, onGone) {
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (response.status === 401) window.location.reload();
    if (response.status === 404 && onGone) onGone();
    return response.ok ? await response.json() : null;
  } catch (error) {
    return null;
  }
};

// A camera's status as the pages show it (core.cameras.status_text writes the same words on
// the server): "live, 52 s behind" while its analysis trails capture.
window.cameraStatus = function (status, behindS) {
  return status + (behindS == null ? "" : ", " + behindS + " s behind");
};
