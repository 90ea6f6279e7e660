// The comparison page: upload, poll the job, show numbers and a synchronised wipe view.
"use strict";

const $ = (id) => document.getElementById(id);
const POLL_MS = 250;
let chosenFile = null;
let chosenSample = "";
let current = null; // results of the last comparison
const view = { zoom: 1, x: 0, y: 0 };

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function setBusy(busy) {
  $("compare").disabled = busy || !(chosenFile || chosenSample);
  $("progress").hidden = !busy;
}

async function loadConfig() {
  const config = await (await fetch("/api/config")).json();
  const box = $("codec-choices");
  box.textContent = "against: ";
  for (const name of config.codecs) {
    const label = document.createElement("label");
    label.innerHTML = `<input type="checkbox" value="${name}" checked> ${name.toUpperCase()} `;
    box.appendChild(label);
  }
  for (const sample of config.samples) $("sample").add(new Option(sample.label, sample.name));
  $("sample-row").hidden = config.samples.length === 0;
  $("quality").min = config.quality.min;
  $("quality").max = config.quality.max;
  $("quality").value = config.quality.default;
  $("quality-value").textContent = config.quality.default;
}

function chooseFile(file) {
  chosenFile = file || null;
  if (file) { chosenSample = ""; $("sample").value = ""; }
  $("drop-text").textContent = file ? `${file.name} (${Math.round(file.size / 1024)} KB)` : "Drop a photo here";
  setBusy(false);
}

async function submit(url, form) {
  showError("");
  setBusy(true);
  $("stage").textContent = "uploading";
  const response = await fetch(url, { method: "POST", body: form });
  const reply = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) {
    setBusy(false);
    showError(reply.error || `HTTP ${response.status}`);
    return null;
  }
  return poll(reply.id);
}

async function poll(id) {
  for (;;) {
    const job = await (await fetch(`/api/jobs/${id}`)).json();
    $("progress-bar").value = job.progress || 0;
    $("stage").textContent = job.state === "queued" ? `queued (${job.ahead} ahead)` : job.stage;
    if (job.state === "done" || job.state === "failed") {
      setBusy(false);
      if (job.state === "failed") {
        showError(job.error);
        return null;
      }
      return { id, ...job.results };
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function fileUrl(id, name) {
  return `/api/jobs/${id}/files/${encodeURIComponent(name)}`;
}

function fmt(value, digits) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

function showComparison(results) {
  current = results;
  const body = $("numbers").querySelector("tbody");
  body.textContent = "";
  for (const c of results.codecs) {
    const row = document.createElement("tr");
    row.dataset.codec = c.name;
    row.innerHTML = `<td>${c.label}</td><td>${c.quality}</td><td class="bytes">${c.bytes}</td>` +
      `<td class="bpp">${fmt(c.bpp, 3)}</td><td class="psnr">${fmt(c.psnr, 2)}</td>` +
      `<td class="msssim">${fmt(c.ms_ssim, 4)}</td><td>${fmt(c.encode_s, 2)}</td><td>${fmt(c.decode_s, 2)}</td>` +
      `<td><a class="download" href="${fileUrl(results.id, c.download)}" download="${c.download}">${c.download}</a> ` +
      `<a href="${fileUrl(results.id, c.image)}" download="${c.name}-decoded.png">PNG</a></td>`;
    body.appendChild(row);
  }
  const choices = [{ name: "original", label: "original", image: results.original }, ...results.codecs];
  for (const [select, preferred] of [[$("left"), "tcm"], [$("right"), results.codecs[1] ? results.codecs[1].name : "original"]]) {
    select.textContent = "";
    for (const c of choices) select.add(new Option(c.label, c.name, false, c.name === preferred));
  }
  $("results").hidden = false;
  view.zoom = 1; view.x = 0; view.y = 0;
  updateImages();
}

function imageOf(name) {
  if (name === "original") return current.original;
  return current.codecs.find((c) => c.name === name).image;
}

function updateImages() {
  $("img-left").src = fileUrl(current.id, imageOf($("left").value));
  $("img-right").src = fileUrl(current.id, imageOf($("right").value));
  updateView();
}

function updateView() {
  const transform = `translate(${view.x}px, ${view.y}px) scale(${view.zoom})`;
  $("stage-images").style.transform = transform;
  const wipe = Number($("wipe").value);
  $("img-right").style.clipPath = `inset(0 0 0 ${wipe}%)`;
  const viewer = $("viewer").getBoundingClientRect();
  const width = current ? current.width * view.zoom : 0;
  $("wipe-line").style.left = `${Math.min(viewer.width, view.x + (width * wipe) / 100)}px`;
}

function zoomAt(zoom, cx, cy) {
  const scale = zoom / view.zoom;
  view.x = cx - (cx - view.x) * scale;
  view.y = cy - (cy - view.y) * scale;
  view.zoom = zoom;
  updateView();
}

function setup() {
  $("file").addEventListener("change", (e) => chooseFile(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    chooseFile(e.dataTransfer.files[0]);
  });
  $("sample").addEventListener("change", () => {
    chosenSample = $("sample").value;
    if (chosenSample) { chosenFile = null; $("file").value = ""; $("drop-text").textContent = "Drop a photo here or click to choose one"; }
    setBusy(false);
  });
  $("quality").addEventListener("input", () => { $("quality-value").textContent = $("quality").value; });
  $("compare").addEventListener("click", async () => {
    const form = new FormData();
    if (chosenFile) form.append("file", chosenFile);
    else form.append("sample", chosenSample);
    const kb = Number($("max-kb").value);
    if (kb > 0) form.append("max_bytes", String(Math.round(kb * 1024)));
    else form.append("quality", $("quality").value);
    const codecs = [...document.querySelectorAll("#codec-choices input:checked")].map((i) => i.value);
    form.append("codecs", codecs.join(","));
    const results = await submit("/api/compare", form);
    if (results) showComparison(results);
  });
  $("tcm-file").addEventListener("change", async (e) => {
    const form = new FormData();
    form.append("file", e.target.files[0]);
    const results = await submit("/api/decode", form);
    if (!results) return;
    const body = $("info").querySelector("tbody");
    body.textContent = "";
    for (const [key, value] of Object.entries({ ...results.info, decode_s: results.decode_s })) {
      const row = body.insertRow();
      row.insertCell().textContent = key;
      row.insertCell().textContent = Array.isArray(value) ? JSON.stringify(value) : value;
    }
    const url = fileUrl(results.id, results.image);
    $("decoded-image").src = url;
    $("decoded-download").href = url;
    $("decoded").hidden = false;
  });
  $("left").addEventListener("change", updateImages);
  $("right").addEventListener("change", updateImages);
  $("wipe").addEventListener("input", updateView);
  for (const button of document.querySelectorAll("[data-zoom]")) {
    button.addEventListener("click", () => zoomAt(Number(button.dataset.zoom), 0, 0));
  }
  const viewer = $("viewer");
  viewer.addEventListener("wheel", (e) => {
    e.preventDefault();
    const box = viewer.getBoundingClientRect();
    const zoom = Math.min(16, Math.max(1, view.zoom * (e.deltaY < 0 ? 1.25 : 0.8)));
    zoomAt(zoom, e.clientX - box.left, e.clientY - box.top);
  }, { passive: false });
  let drag = null;
  viewer.addEventListener("pointerdown", (e) => { drag = { x: e.clientX - view.x, y: e.clientY - view.y }; viewer.setPointerCapture(e.pointerId); });
  viewer.addEventListener("pointermove", (e) => { if (drag) { view.x = e.clientX - drag.x; view.y = e.clientY - drag.y; updateView(); } });
  viewer.addEventListener("pointerup", () => { drag = null; });
  loadConfig().catch((e) => showError(`cannot reach the server: ${e}`));
}

setup();
