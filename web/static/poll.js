// One look at a JSON API for a page that polls it (progress.js, cameras.js): the answer, or
// null when this look failed (the network or the web server away a moment: the page looks
// again at its next tick; thrown, it ended the polling and the page froze). A session that
// has ended (logged out elsewhere, expired) reloads the page: the login.
window.pollJson = async function (url) {
  try {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (response.status === 401) window.location.reload();
    return response.ok ? await response.json() : null;
  } catch (error) {
    return null;
  }
};
