// Publishes this browser's camera to its browser-camera entry: getUserMedia, then one WebRTC
// offer (ICE candidates gathered first: the server takes no trickle; no STUN or TURN server,
// the farm is on this network) posted with the page's CSRF token; the answer comes from the
// ingester that holds the camera, and the video flows to it directly.
(function () {
  const root = document.getElementById("publish");
  if (!root) return;
  const button = document.getElementById("publish-start");
  const preview = document.getElementById("publish-preview");
  let peer = null;

  function state(name, text) {
    root.dataset.state = name;
    document.getElementById("publish-state").textContent = text || name;
  }

  async function start() {
    button.disabled = true;
    try {
      state("starting", "asking for the camera");
      // 720p where the camera has it (browsers default to 640x480); the farm takes any size.
      const stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 1280 }, height: { ideal: 720 } }, audio: false,
      });
      preview.srcObject = stream;
      peer = new RTCPeerConnection({ iceServers: [] });
      for (const track of stream.getVideoTracks()) {
        const sender = peer.addTrack(track, stream);
        // Faces need pixels: under load, send fewer frames rather than smaller ones.
        const parameters = sender.getParameters();
        parameters.degradationPreference = "maintain-resolution";
        await sender.setParameters(parameters).catch(() => {});
      }
      peer.addEventListener("connectionstatechange", () => {
        const s = peer.connectionState;
        state(s === "connected" ? "publishing" : s, s === "connected" ? "publishing" : s);
        if (s === "failed" || s === "closed") button.disabled = false;
      });
      await window.vidfarmWebRTC.negotiate(peer, root.dataset.offerUrl, root.dataset.csrf,
                                           () => state("offering", "waiting for the farm's answer"));
      state("connecting", "connecting");
    } catch (error) {
      state("failed", "failed: " + (error.message || error));
      if (peer) peer.close();
      button.disabled = false;
    }
  }
  button.addEventListener("click", start);
})();
