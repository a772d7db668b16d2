// Upload page: drag & drop or pick, size check before sending, XHR for a progress bar.
(function () {
  const form = document.getElementById("upload-form");
  const input = document.getElementById("file-input");
  const zone = document.getElementById("drop-zone");
  const chosen = document.getElementById("chosen");
  const bar = document.getElementById("upload-progress");
  const button = document.getElementById("upload-button");
  const message = document.getElementById("upload-message");
  const limit = Number(form.dataset.limit);

  // One upload at a time: a second click (or Enter) while one is on its way would queue the
  // same recording again as another job. The button comes back when this one fails.
  function sending(busy) {
    button.disabled = busy;
    form.setAttribute("aria-busy", busy ? "true" : "false");
  }
  function show(text, isError) {
    message.textContent = text;
    message.className = isError ? "flash error" : "";
  }
  function describe() {
    const file = input.files[0];
    chosen.textContent = file ? file.name + " (" + (file.size / 1048576).toFixed(1) + " MiB)" : "";
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

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (button.disabled) return;
    const file = input.files[0];
    if (!file) return show("Choose a recording to upload.", true);
    if (file.size === 0) return show(file.name + ": the file is empty (0 bytes).", true);
    if (file.size > limit) {
      return show(file.name + " is larger than the upload limit of " + form.dataset.limitText + ".", true);
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action || window.location.href);
    xhr.setRequestHeader("Accept", "application/json");
    sending(true);
    bar.hidden = false;
    bar.value = 0;
    show("Uploading…", false);
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
    });
    xhr.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = {}; }
      if (xhr.status === 201) {
        show("Uploaded as " + body.name + ". Opening the job…", false);
        window.location.assign(body.url);
      } else {
        sending(false);
        bar.hidden = true;
        show(body.error || ("Upload failed (HTTP " + xhr.status + ")."), true);
      }
    });
    xhr.addEventListener("error", () => { sending(false); bar.hidden = true; show("Upload failed: the connection broke.", true); });
    xhr.send(new FormData(form));
  });
  // Back from the job to a page the browser kept in memory: ready for the next upload.
  window.addEventListener("pageshow", (event) => { if (event.persisted) sending(false); });
})();
