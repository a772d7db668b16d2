// The camera page's WebRTC player (?player=webrtc): one receive-only WebRTC connection to the
// ingester that holds the camera (offer posted with the page's CSRF token, ICE candidates
// gathered first, no STUN or TURN: the farm is on this network), which plays the same drawn
// pieces as the MSE player. live.js still follows the camera's events (alerts, status, and
// view=1, which keeps the pieces drawn).
// How far behind live the picture on screen is: the ingester says, over the "clock" data
// channel, when each picture it sends was captured and sent; the page adds its own delay from
// receiving a picture to showing it (requestVideoFrameCallback). Both clocks are this host's.
(function () {
  const root = document.getElementById("live");
  if (!root || root.dataset.player !== "webrtc") return;
  const video = document.getElementById("live-video");
  let sendDelay = null;       // seconds from capture to sent, of the newest picture sent

  function state(text) {
    root.dataset.webrtc = text;
    document.getElementById("webrtc-state").textContent = text;
  }

  function onFrame(now, metadata) {
    // receiveTime: when the picture's last packet came; expectedDisplayTime: when it shows.
    if (sendDelay !== null && metadata.receiveTime) {
      const playout = Math.max(0, metadata.expectedDisplayTime - metadata.receiveTime) / 1000;
      const lag = sendDelay + playout;
      root.dataset.lag = lag.toFixed(3);
      root.dataset.lagAt = String(Date.now());
      document.getElementById("live-lag").textContent = lag.toFixed(1) + " s behind live";
    }
    root.dataset.frames = String(metadata.presentedFrames);
    video.requestVideoFrameCallback(onFrame);
  }

  async function start() {
    const peer = new RTCPeerConnection({ iceServers: [] });
    peer.addTransceiver("video", { direction: "recvonly" });
    const clock = peer.createDataChannel("clock");
    clock.addEventListener("message", (event) => {
      const sent = JSON.parse(event.data);
      sendDelay = sent.sent_at - sent.captured_at;
    });
    peer.addEventListener("track", (event) => {
      video.srcObject = event.streams[0] || new MediaStream([event.track]);
      video.play().catch(() => {});
    });
    peer.addEventListener("connectionstatechange", () => state(peer.connectionState));
    video.requestVideoFrameCallback(onFrame);
    try {
      await window.vidfarmWebRTC.negotiate(peer, root.dataset.viewOfferUrl, root.dataset.csrf,
                                           () => state("offering"));
    } catch (error) {
      state("failed: " + (error.message || error));
      peer.close();
    }
  }
  start();
})();
