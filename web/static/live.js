// A camera's live view: the annotated pieces the workers draw (fragmented MP4, each with its
// own init segment) appended in order to a MediaSource buffer in "sequence" mode, so pieces
// play back to back whatever their timestamps; alerts, status and latency from the camera's
// Server-Sent Events. Each appended piece remembers when its first frame was captured, so the
// page can say how far behind live the picture on screen is (#live-lag; data-lag in seconds,
// data-lag-at: when it was last worked out, ms since the epoch).
(function () {
  const root = document.getElementById("live");
  if (!root) return;
  const video = document.getElementById("live-video");
  const base = "/api/v1/cameras/" + root.dataset.camera;
  const KEEP_S = 20;          // seconds of played video kept in the buffer
  const CATCH_UP_RATE = 1.25, CATCH_UP_SLACK_S = 0.5;
  const pending = [];         // pieces announced, not yet appended (in order)
  const placed = [];          // {start, end, capturedAt} of appended pieces, media time
  let mediaSource = null, buffer = null, codec = null, busy = false, last = null;

  function text(id, value) { document.getElementById(id).textContent = value; }
  // As the page renders times (the "timestamp" filter): date and time, UTC.
  function when(unixS) { return new Date(unixS * 1000).toISOString().slice(0, 19).replace("T", " ") + " UTC"; }

  function announce(piece) {
    if (root.dataset.player === "webrtc") return;     // live_webrtc.js plays the view instead
    // Pieces of one watch come in order; a restarted ingester starts a new watch.
    if (last && last.watch === piece.watch && piece.segment <= last.segment) return;
    last = piece;
    pending.push(piece);
    pump();
  }

  function open(firstCodec) {
    mediaSource = new MediaSource();
    video.src = URL.createObjectURL(mediaSource);
    mediaSource.addEventListener("sourceopen", () => {
      codec = firstCodec;
      buffer = mediaSource.addSourceBuffer('video/mp4; codecs="' + codec + '"');
      buffer.mode = "sequence";
      buffer.addEventListener("updateend", () => { busy = false; trim(); pump(); });
      pump();
    }, { once: true });
  }

  async function pump() {
    if (!pending.length) return;
    if (!mediaSource) return open(pending[0].codec);
    if (!buffer || busy || buffer.updating) return;
    const piece = pending.shift();
    busy = true;
    let data;
    try {
      const response = await fetch(piece.url);
      if (!response.ok) throw new Error(response.status);
      data = await response.arrayBuffer();
    } catch (error) {        // gone already (the page fell behind): go on with the next
      busy = false;
      return pump();
    }
    if (piece.codec !== codec && buffer.changeType) {
      buffer.changeType('video/mp4; codecs="' + piece.codec + '"');
      codec = piece.codec;
    }
    // In "sequence" mode, setting the offset starts a new group there: the piece's first frame
    // goes exactly at the end of what is buffered, whatever its own timestamps.
    const ranges = buffer.buffered;
    const start = ranges.length ? ranges.end(ranges.length - 1) : 0;
    buffer.timestampOffset = start;
    placed.push({ start: start, end: start + piece.duration_s, capturedAt: piece.captured_at });
    try {
      buffer.appendBuffer(data);
    } catch (error) {
      busy = false;
      placed.pop();
      return;
    }
    // Far behind the newest piece (a tab in the background, a slow start): jump to it.
    if (video.currentTime < start - 2 * piece.duration_s || video.readyState < 2) {
      video.currentTime = start;
    }
    if (video.paused) video.play().catch(() => {});
  }

  function trim() {
    if (!buffer || buffer.updating || !buffer.buffered.length) return;
    const from = buffer.buffered.start(0);
    if (video.currentTime - from > KEEP_S + 10) buffer.remove(from, video.currentTime - KEEP_S);
  }

  // A piece that came late stalls the picture and leaves it further behind; while more than
  // the newest piece (and a little slack) is buffered ahead, play a little faster to catch up.
  function pace() {
    const ranges = buffer ? buffer.buffered : null;
    if (!ranges || !ranges.length || !placed.length) return;
    const ahead = ranges.end(ranges.length - 1) - video.currentTime;
    const newest = placed[placed.length - 1];
    video.playbackRate = ahead > newest.end - newest.start + CATCH_UP_SLACK_S ? CATCH_UP_RATE : 1;
  }

  function showLag() {
    if (root.dataset.player === "webrtc") return;
    pace();
    const t = video.currentTime;
    const piece = placed.find((p) => p.start <= t && t < p.end);
    if (piece && !video.paused) {
      const lag = Date.now() / 1000 - (piece.capturedAt + (t - piece.start));
      root.dataset.lag = lag.toFixed(3);
      root.dataset.lagAt = String(Date.now());
      text("live-lag", lag.toFixed(1) + " s behind live");
    }
    while (placed.length > 1 && placed[0].end < t - KEEP_S - 10) placed.shift();
  }
  setInterval(showLag, 500);

  // A repeat (the same person again soon after, a new track: not sent) folds under the alert
  // that rang, as on the Alerts page and as the page was rendered; one whose alert is not
  // listed (gone off the list) stands alone, marked.
  function addRepeat(item, alert) {
    let details = item.querySelector("details.repeats");
    if (!details) {
      details = document.createElement("details");
      details.className = "repeats";
      details.append(document.createElement("summary"), document.createElement("ul"));
      item.append(details);
    }
    const entry = document.createElement("li");
    entry.dataset.repeat = alert.id;
    entry.textContent = "captured " + when(alert.captured_at) + ", track " + alert.track;
    details.querySelector("ul").append(entry);
    const count = details.querySelectorAll("li").length;
    details.dataset.repeats = String(count);
    details.querySelector("summary").textContent =
      "repeated " + count + " time" + (count === 1 ? "" : "s") + ", not sent";
  }

  function addAlert(alert) {
    const list = document.getElementById("live-alerts");
    const repeated = alert.repeat_of == null ? null
      : list.querySelector(':scope > li[data-alert="' + alert.repeat_of + '"]');
    if (repeated) return addRepeat(repeated, alert);
    const item = document.createElement("li");
    item.className = "live-alert";
    if (alert.id != null) item.dataset.alert = alert.id;
    const badge = document.createElement("span");
    badge.className = "badge alert-badge";
    badge.textContent = alert.kind.replace("_", " ");
    const small = document.createElement("small");
    small.className = "hint";
    small.textContent = "track " + alert.track + ", captured " + when(alert.captured_at) +
      ", " + alert.latency_s.toFixed(1) + " s to raise";
    item.append(badge, " " + alert.detail + " ");
    if (alert.repeat_of != null) {
      const mark = document.createElement("span");
      mark.className = "hint repeat-mark";
      mark.textContent = "(a repeat, not sent)";
      item.append(mark, " ");
    }
    item.append(small);
    list.prepend(item);
    while (list.children.length > 50) list.lastElementChild.remove();
    document.getElementById("no-alerts").hidden = true;
  }

  // view=1: draw it while we watch. after: the newest event when the page was rendered, so
  // alerts raised since then are shown too (a reconnect resumes by Last-Event-ID instead).
  const events = new EventSource(base + "/events?view=1&after=" + encodeURIComponent(root.dataset.eventsAfter));
  events.addEventListener("view", (event) => announce(JSON.parse(event.data)));
  events.addEventListener("alert", (event) => addAlert(JSON.parse(event.data)));
  events.addEventListener("status", (event) => {
    const now = JSON.parse(event.data);
    text("live-status", window.cameraStatus(now.status, now.behind_s));
  });
  events.addEventListener("segment", (event) => {
    const segment = JSON.parse(event.data);
    text("live-faces", String(segment.faces));
    text("live-latency", segment.latency_s.toFixed(1) + " s after capture (this segment)");
  });
  events.addEventListener("deleted", () => { events.close(); text("live-status", "deleted"); });

  // Start from the newest piece already drawn; the events bring the ones after it.
  fetch(base + "/view", { headers: { Accept: "application/json" } })
    .then((response) => (response.ok ? response.json() : []))
    .then((pieces) => { if (pieces.length) announce(pieces[pieces.length - 1]); });
})();
