// Upload page: drag & drop or pick one or several recordings, size check before sending, one XHR
// per recording (the server takes one per request) with a progress bar and a progress line.
(function () {
  const form = document.getElementById("upload-form");
  const input = document.getElementById("file-input");
  const zone = document.getElementById("drop-zone");
  const chosen = document.getElementById("chosen");
  const bar = document.getElementById("upload-progress");
  const line = document.getElementById("upload-line");
  const button = document.getElementById("upload-button");
  const message = document.getElementById("upload-message");
  const outcomes = document.getElementById("upload-outcomes");
  const allJobs = document.getElementById("upload-all-jobs");
  const limit = Number(form.dataset.limit);

  // Several at once only with this script: without it the form posts one file, which the server takes.
  input.multiple = true;
  document.getElementById("pick-words").textContent = "pick files";

  // One batch at a time: a second click (or Enter) while one is on its way would queue the
  // same recordings again as other jobs. The button comes back when the batch has ended.
  function sending(busy) {
    button.disabled = busy;
    form.setAttribute("aria-busy", busy ? "true" : "false");
  }
  function show(text, isError) {
    message.textContent = text;
    message.className = isError ? "flash error" : "";
  }
  // A size as people read it, as the server writes it (human_bytes in web/uploads.py): "512 B",
  // "2.5 KiB", "20 MiB", "4 GiB". A recording of a few KB read "0.0 MiB" in MiB alone.
  function sizeText(bytes) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes, unit = 0;
    while (Math.round(value * 10) / 10 >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    const text = unit === 0 ? value.toFixed(0) : value.toFixed(1).replace(/\.0$/, "");
    return text + " " + units[unit];
  }
  function describe() {
    const files = Array.from(input.files);
    const total = files.reduce((sum, file) => sum + file.size, 0);
    if (files.length === 1) chosen.textContent = files[0].name + " (" + sizeText(total) + ")";
    else if (files.length > 1) chosen.textContent = files.length + " recordings chosen (" + sizeText(total) + " in all)";
    else chosen.textContent = "";
  }
  input.addEventListener("change", describe);
  ["dragenter", "dragover"].forEach((type) => zone.addEventListener(type, (event) => {
    event.preventDefault();
    zone.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((type) => zone.addEventListener(type, () => zone.classList.remove("over")));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      describe();
    }
  });

  // Why a file is refused before sending (empty, too large), or null when it may go.
  function refusedHere(file) {
    if (file.size === 0) return file.name + ": the file is empty (0 bytes).";
    if (file.size > limit) return file.name + " is larger than the upload limit of " + form.dataset.limitText + ".";
    return null;
  }

  // Sends one recording with the form's options; resolves to {job: {name, url}} or {refused: text}.
  function send(file, onProgress) {
    return new Promise((resolve) => {
      const data = new FormData(form);
      data.set(input.name, file);   // this one only: every request carries one recording
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.action || window.location.href);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) onProgress(Math.round((100 * e.loaded) / e.total));
      });
      xhr.addEventListener("load", () => {
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch (err) { body = {}; }
        if (xhr.status === 201) resolve({job: body});
        // 401: the session ended; reload: this page's CSRF token is stale (a login in another
        // tab). Every later request would be refused the same way: the batch stops.
        else resolve({refused: body.error || ("Upload failed (HTTP " + xhr.status + ")."),
                      stop: xhr.status === 401 || body.reload === true});
      });
      xhr.addEventListener("error", () => resolve({refused: "Upload failed: the connection broke."}));
      xhr.send(data);
    });
  }

  function addOutcome(file, outcome) {
    const item = document.createElement("li");
    if (outcome.job) {
      const link = document.createElement("a");
      link.href = outcome.job.url;
      link.textContent = outcome.job.name;
      item.append(link, ": job made");
    } else {
      item.className = "refused";
      // The server's reasons and the page's own mostly name the file already: named once.
      const reason = outcome.refused.includes(file.name) ? outcome.refused : file.name + ": " + outcome.refused;
      item.textContent = "Refused: " + reason;
    }
    outcomes.append(item);
  }

  function finish(files, results, stopped) {
    sending(false);
    bar.hidden = true;
    line.textContent = "";
    const made = results.filter((r) => r.job).length;
    const refused = results.length - made;
    if (files.length === 1) {   // one recording: open its job, or say why not, as before
      if (made) {
        show("Uploaded as " + results[0].job.name + ". Opening the job…", false);
        window.location.assign(results[0].job.url);
      } else {
        show(results[0].refused, true);
      }
      return;
    }
    if (stopped) {   // why the rest were not sent, once, where the batch's outcome is said
      show(made + " of " + files.length + " recordings uploaded as jobs; stopped: " + stopped, true);
    } else {
      show(made + " of " + files.length + " recordings uploaded as jobs" +
           (refused ? ", " + refused + " refused (listed below)." : "."), refused > 0);
    }
    allJobs.hidden = false;
    // Emptied: Upload clicked again would send the whole batch again as new jobs.
    input.value = "";
    describe();
  }

  async function uploadAll(files) {
    sending(true);
    outcomes.replaceChildren();
    outcomes.hidden = files.length === 1;   // several: each outcome is listed as it comes
    allJobs.hidden = true;
    show("Uploading " + files.length + (files.length === 1 ? " recording…" : " recordings…"), false);
    const results = [];
    let stopped = null;
    for (const [index, file] of files.entries()) {
      const progress = (percent) => {
        bar.value = percent;
        line.textContent = "Uploading " + (index + 1) + " of " + files.length + ": " + file.name + " (" + percent + " %)";
      };
      const early = refusedHere(file);
      let outcome;
      if (early) {
        outcome = {refused: early};
      } else {
        bar.hidden = false;
        progress(0);
        outcome = await send(file, progress);
      }
      results.push(outcome);
      if (files.length > 1) addOutcome(file, outcome);
      if (outcome.stop) {   // the rest would each be sent in full only to be refused: not sent
        for (const rest of files.slice(index + 1)) {
          const unsent = {refused: "not sent (the batch stopped before it)"};
          results.push(unsent);
          addOutcome(rest, unsent);
        }
        stopped = outcome.refused;
        break;
      }
    }
    finish(files, results, stopped);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (button.disabled) return;
    const files = Array.from(input.files);
    if (!files.length) return show("Choose a recording to upload.", true);
    uploadAll(files);
  });
  // Back from the job to a page the browser kept in memory: ready for the next upload.
  window.addEventListener("pageshow", (event) => { if (event.persisted) sending(false); });
})();
