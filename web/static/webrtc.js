// What the two WebRTC pages share (the browser camera's publisher, the camera page's player):
// one offer with every ICE candidate gathered first (the server takes no trickle; no STUN or
// TURN server, the farm is on this network), posted with the page's CSRF token; the answer
// comes from the ingester that holds the camera.
window.vidfarmWebRTC = (function () {
  function gathered(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") resolve();
      });
    });
  }

  // onOffering: called once the offer is ready and about to be posted.
  async function negotiate(peer, url, csrf, onOffering) {
    await peer.setLocalDescription(await peer.createOffer());
    await gathered(peer);
    onOffering();
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify({ type: peer.localDescription.type, sdp: peer.localDescription.sdp }),
    });
    // The farm answers its errors as JSON {error} (a 503 with Redis away, a 504 with no
    // ingester); anything else (a proxy's error page) is named by its status, not parsed.
    let answer = null;
    try { answer = await response.json(); } catch (error) { answer = null; }
    if (!response.ok || !answer) {
      throw new Error((answer && answer.error) || ("the farm answered " + response.status + " " + response.statusText).trim());
    }
    await peer.setRemoteDescription(answer);
  }

  return { negotiate };
})();
