// ForgeSyte's page: a thin client of the public API (no build step, nothing from the internet).
// With an API key set on the server, every request carries it as a header (previews and
// downloads too: fetched, then shown or saved from a blob URL); a key never goes into a URL.
// A finished job opens in the player (player.js); the address follows it: /#/jobs/<id>?t=<s>.
"use strict";

const KEY_STORAGE = "forgesyte.apiKey";
const SUBMIT_PATH = "/v1/video/submit";
const POLL_ACTIVE_MS = 1000; // while a job is pending or running
const POLL_IDLE_MS = 5000;
const FINISHED = new Set(["completed", "failed", "cancelled"]);

const $ = (id) => document.getElementById(id);
const state = {
  jobs: new Map(), // job_id -> status object (+ pipeline_id)
  openJob: null,
  previewUrl: null,
  keyPrompt: null, // the pending prompt's promise, shared by every request that got a 401
  listRoute: true, // false once the server answers 404 to GET /v1/video/jobs
  submitted: [], // this session's job ids, followed when the server has no job list
  pollTimer: null,
  role: null, // the key's role (GET /v1/keys/me): a viewer sees no upload form, no delete
};

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

function authHeaders() {
  const key = apiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function detailOf(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
  } catch (_) {
    /* not JSON */
  }
  return `${response.status} ${response.statusText}`;
}

// ---- the API key -------------------------------------------------------------------------

function askForKey(refused) {
  if (!state.keyPrompt) {
    state.keyPrompt = new Promise((resolve, reject) => {
      const dialog = $("key-dialog");
      const error = $("key-error");
      error.textContent = refused ? "The server refused that key. Check it and try again." : "";
      error.hidden = !refused;
      $("key-input").value = "";
      const done = (ok) => {
        $("key-form").onsubmit = null;
        $("key-cancel").onclick = null;
        dialog.oncancel = null;
        dialog.close();
        state.keyPrompt = null;
        if (ok) resolve();
        else reject(new ApiError(401, "An API key is needed to use this server."));
      };
      $("key-form").onsubmit = (event) => {
        event.preventDefault();
        const key = $("key-input").value.trim();
        if (!key) return;
        sessionStorage.setItem(KEY_STORAGE, key);
        done(true);
        loadRole(); // another key may have another role
      };
      $("key-cancel").onclick = () => done(false);
      dialog.oncancel = (event) => {
        event.preventDefault();
        done(false);
      };
      if (!dialog.open) dialog.showModal();
      $("key-input").focus();
    });
  }
  return state.keyPrompt;
}

// fetch with the key header; a 401 asks for a key and tries again
async function api(path, options = {}) {
  for (;;) {
    const sentKey = apiKey();
    const response = await fetch(path, {
      ...options,
      headers: { ...(options.headers || {}), ...authHeaders() },
    });
    if (response.status !== 401) return response;
    if (sentKey && sentKey !== apiKey()) continue; // another request already got a new key
    if (sentKey) sessionStorage.removeItem(KEY_STORAGE);
    $("key-button").hidden = false;
    await askForKey(Boolean(sentKey));
  }
}

async function apiJson(path, options) {
  const response = await api(path, options);
  if (!response.ok) throw new ApiError(response.status, await detailOf(response));
  return response.json();
}

// ---- what the key may do -----------------------------------------------------------------

// A viewer key reads every job but may not submit, cancel or delete: the page hides those
// controls (the server refuses them with 403 all the same).
async function loadRole() {
  try {
    const me = await apiJson("/v1/keys/me");
    state.role = me.role;
  } catch (error) {
    state.role = null; // an older server without the route: show everything, as before
  }
  const viewer = state.role === "viewer";
  $("submit-panel").hidden = viewer;
  renderJobs();
}

function mayChangeJobs() {
  return state.role !== "viewer";
}

// ---- the submit form ---------------------------------------------------------------------

function resolveRef(openapi, schema) {
  if (schema && schema.$ref) {
    const name = schema.$ref.split("/").pop();
    return openapi.components.schemas[name];
  }
  return schema;
}

function humanise(name) {
  const words = name.replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

function optionField(name, schema) {
  const wrap = document.createElement("div");
  wrap.className = "field";
  const id = `option-${name}`;
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = humanise(name);
  const input = document.createElement("input");
  input.id = id;
  input.name = name;
  input.dataset.option = name;
  const description = document.createElement("p");
  description.className = "hint";
  description.id = `${id}-desc`;
  description.textContent = schema.description || "";
  input.setAttribute("aria-describedby", description.id);
  if (schema.type === "boolean") {
    input.type = "checkbox";
    input.checked = schema.default === true;
    input.dataset.default = String(schema.default === true);
    wrap.classList.add("check");
    wrap.append(input, label, description);
    return wrap;
  }
  if (schema.type === "integer" || schema.type === "number") {
    input.type = "number";
    input.inputMode = schema.type === "integer" ? "numeric" : "decimal";
    input.step = schema.type === "integer" ? "1" : "any";
    if (schema.minimum !== undefined) input.min = String(schema.minimum);
    if (schema.maximum !== undefined) input.max = String(schema.maximum);
    if (schema.exclusiveMinimum !== undefined) input.min = String(schema.exclusiveMinimum);
  } else {
    input.type = "text";
  }
  input.placeholder = schema.default !== undefined ? `default ${schema.default}` : "unset";
  wrap.append(label, input, description);
  return wrap;
}

async function loadOptions() {
  const response = await fetch("/openapi.json");
  if (!response.ok) throw new ApiError(response.status, "The API description could not be read.");
  const openapi = await response.json();
  const body = openapi.paths[SUBMIT_PATH].post.requestBody.content["multipart/form-data"];
  const schema = resolveRef(openapi, body.schema);
  const fieldset = $("options");
  $("options-loading").remove();
  for (const [name, property] of Object.entries(schema.properties)) {
    if (name === "file" || name === "pipeline_id") continue;
    fieldset.append(optionField(name, resolveRef(openapi, property)));
  }
}

async function loadPipelines() {
  const { pipelines } = await apiJson("/v1/pipelines");
  const select = $("pipeline");
  select.replaceChildren();
  for (const pipeline of pipelines) {
    const option = document.createElement("option");
    option.value = pipeline.id;
    option.textContent = pipeline.available ? pipeline.id : `${pipeline.id} (unavailable)`;
    option.disabled = !pipeline.available;
    option.dataset.description = pipeline.description || pipeline.unavailable_reason || "";
    select.append(option);
  }
  const preferred = pipelines.find((p) => p.id === "ocr_only" && p.available);
  if (preferred) select.value = preferred.id;
  describePipeline();
}

function describePipeline() {
  const option = $("pipeline").selectedOptions[0];
  $("pipeline-desc").textContent = option ? option.dataset.description : "";
}

function formFields() {
  const fields = new FormData();
  fields.append("pipeline_id", $("pipeline").value);
  for (const input of document.querySelectorAll("[data-option]")) {
    if (input.type === "checkbox") {
      if (String(input.checked) !== input.dataset.default) fields.append(input.name, String(input.checked));
    } else if (input.value.trim() !== "") {
      fields.append(input.name, input.value.trim());
    }
  }
  return fields;
}

function setUpload(percent, text) {
  $("upload").hidden = false;
  $("upload-progress").value = percent;
  $("upload-text").textContent = text;
}

// XMLHttpRequest, not fetch: it reports the upload's progress
function upload(fields) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", SUBMIT_PATH);
    for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) {
        const percent = Math.round((100 * event.loaded) / event.total);
        setUpload(percent, `${percent}% of ${formatBytes(event.total)}`);
      }
    };
    request.onload = () => resolve(request);
    request.onerror = () => reject(new ApiError(0, "The upload failed: the server could not be reached."));
    request.send(fields);
  });
}

async function submitVideo(event) {
  event.preventDefault();
  showError("");
  const file = $("video").files[0];
  if (!file) {
    showError("Choose a video (MP4) to analyse.");
    $("video").focus();
    return;
  }
  const form = $("submit-form");
  if (!form.checkValidity()) {
    form.reportValidity();
    return;
  }
  $("analyse").disabled = true;
  try {
    for (;;) {
      const fields = formFields();
      fields.append("file", file, file.name);
      setUpload(0, "starting");
      const sentKey = apiKey();
      const request = await upload(fields);
      if (request.status === 401) {
        if (sentKey) sessionStorage.removeItem(KEY_STORAGE);
        $("key-button").hidden = false;
        await askForKey(Boolean(sentKey));
        continue;
      }
      let body = {};
      try {
        body = JSON.parse(request.responseText);
      } catch (_) {
        /* not JSON */
      }
      if (request.status !== 200) {
        setUpload(0, "refused");
        throw new ApiError(request.status, body.detail ? String(body.detail) : `HTTP ${request.status}`);
      }
      setUpload(100, "uploaded");
      state.submitted.unshift(body.job_id);
      state.jobs.set(body.job_id, {
        job_id: body.job_id,
        status: "pending",
        progress: 0,
        pipeline_id: $("pipeline").value,
        filename: file.name,
        created_at: new Date().toISOString(),
      });
      renderJobs();
      schedulePoll(0);
      break;
    }
  } catch (error) {
    showError(error.message);
  } finally {
    $("analyse").disabled = false;
  }
}

// ---- the job list ------------------------------------------------------------------------

async function fetchJobs() {
  if (state.listRoute) {
    const response = await api("/v1/video/jobs?limit=50");
    if (response.status === 404) {
      state.listRoute = false; // an older server: follow the jobs submitted from this page
    } else if (!response.ok) {
      throw new ApiError(response.status, await detailOf(response));
    } else {
      const { jobs } = await response.json();
      state.jobs = new Map(jobs.map((job) => [job.job_id, job]));
      return;
    }
  }
  for (const jobId of state.submitted) {
    const known = state.jobs.get(jobId);
    if (known && FINISHED.has(known.status)) continue;
    const job = await apiJson(`/v1/video/status/${jobId}`);
    state.jobs.set(jobId, { ...known, ...job });
  }
}

function schedulePoll(delay) {
  clearTimeout(state.pollTimer);
  state.pollTimer = setTimeout(poll, delay);
}

async function poll() {
  try {
    await fetchJobs();
    renderJobs();
    const open = state.openJob && state.jobs.get(state.openJob);
    if (open && open.status !== $("job-view").dataset.status) await openJob(state.openJob, false);
  } catch (error) {
    showError(error.message);
  }
  const active = [...state.jobs.values()].some((job) => !FINISHED.has(job.status));
  schedulePoll(active ? POLL_ACTIVE_MS : POLL_IDLE_MS);
}

function relativeTime(iso) {
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 60) return `${Math.floor(seconds)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

function button(text, label, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = text;
  element.setAttribute("aria-label", label);
  element.addEventListener("click", onClick);
  return element;
}

function renderJobs() {
  const list = $("jobs");
  const jobs = [...state.jobs.values()].sort((a, b) => b.created_at.localeCompare(a.created_at));
  $("jobs-empty").hidden = jobs.length > 0;
  const items = jobs.map((job) => {
    const short = job.job_id.slice(0, 8);
    const item = document.createElement("li");
    item.className = `job ${job.status}`;
    item.dataset.jobId = job.job_id;
    const title = document.createElement("div");
    title.className = "job-title";
    title.append(button(short, `Open job ${short}`, () => openFromList(job.job_id)));
    const pipeline = document.createElement("span");
    pipeline.className = "pipeline";
    pipeline.textContent = job.pipeline_id || "";
    const file = document.createElement("span");
    file.className = "file";
    file.textContent = job.filename || "";
    title.append(file, pipeline);
    const progress = document.createElement("progress");
    progress.max = 100;
    progress.value = job.progress;
    progress.setAttribute("aria-label", `Progress of job ${short}`);
    const status = document.createElement("span");
    status.className = "status";
    status.textContent = `${job.status} ${Math.round(job.progress)}%`;
    const when = document.createElement("time");
    when.dateTime = job.created_at;
    when.textContent = relativeTime(job.created_at);
    const actions = document.createElement("div");
    actions.className = "actions";
    if (!FINISHED.has(job.status) && mayChangeJobs()) {
      actions.append(button("Cancel", `Cancel job ${short}`, () => cancelJob(job.job_id)));
    }
    if (job.status !== "running" && mayChangeJobs()) {
      actions.append(button("Delete", `Delete job ${short}`, () => deleteJob(job.job_id)));
    }
    item.append(title, progress, status, when, actions);
    if (job.error_message) {
      const error = document.createElement("p");
      error.className = "job-error";
      error.textContent = job.error_message;
      item.append(error);
    }
    return item;
  });
  // keep the focused button focused across a refresh
  const focused = document.activeElement;
  const focusLabel = focused && list.contains(focused) ? focused.getAttribute("aria-label") : null;
  list.replaceChildren(...items);
  if (focusLabel) {
    const again = [...list.querySelectorAll("button")].find((b) => b.getAttribute("aria-label") === focusLabel);
    if (again) again.focus();
  }
}

async function cancelJob(jobId) {
  showError("");
  try {
    const job = await apiJson(`/v1/video/cancel/${jobId}`, { method: "POST" });
    state.jobs.set(jobId, { ...state.jobs.get(jobId), ...job });
    renderJobs();
  } catch (error) {
    showError(error.message);
  }
}

async function deleteJob(jobId) {
  showError("");
  try {
    const response = await api(`/v1/video/jobs/${jobId}`, { method: "DELETE" });
    if (!response.ok) throw new ApiError(response.status, await detailOf(response));
    state.jobs.delete(jobId);
    state.submitted = state.submitted.filter((id) => id !== jobId);
    if (state.openJob === jobId) {
      closeJob();
      history.replaceState(history.state, "", location.pathname + location.search); // gone
    }
    renderJobs();
  } catch (error) {
    showError(error.message);
  }
}

// ---- a job's view ------------------------------------------------------------------------

function clock(seconds) {
  const tenths = Math.max(0, Math.round(seconds * 10));
  const minutes = Math.floor(tenths / 600);
  const rest = tenths % 600;
  const pad = (n) => String(n).padStart(2, "0");
  return `${pad(minutes)}:${pad(Math.floor(rest / 10))}.${rest % 10}`;
}

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function closeJob() {
  state.openJob = null;
  $("job-view").hidden = true;
  clearPreview();
  playerHide();
}

// opening a job is a new address (the back button returns to the one before)
function openFromList(jobId) {
  const route = parseRoute(location.hash);
  if (route && route.jobId === jobId) openJob(jobId, true, null);
  else location.hash = routeHash(jobId, null);
}

// the address names a job (and a time): open it there; no job: close the one open. A
// change of address moves the focus to the job; a page opened at an address keeps it at
// the top, as any page load does.
function routeFromAddress(event) {
  const route = parseRoute(location.hash);
  if (route) openJob(route.jobId, Boolean(event), route.t);
  else if (state.openJob) closeJob();
}

function clearPreview() {
  if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
  state.previewUrl = null;
  $("preview").hidden = true;
  $("preview-image").removeAttribute("src");
}

// an entry plays the video from its start, or shows its frame when there is no video to play
function timelineEntry(range, text, frameIndex, startS) {
  const item = document.createElement("li");
  const entry = button("", `Show frame ${frameIndex}: ${text}`, () =>
    playerActive() && !$("player-stage").hidden ? playerSeek(startS) : showPreview(frameIndex, `${range} ${text}`),
  );
  entry.className = "entry";
  const time = document.createElement("span");
  time.className = "time";
  time.textContent = range;
  const label = document.createElement("span");
  label.className = "text";
  label.textContent = text;
  entry.append(time, label);
  item.append(entry);
  return item;
}

async function openJob(jobId, focus, startAt) {
  showError("");
  const changed = state.openJob !== jobId;
  state.openJob = jobId;
  const view = $("job-view");
  view.hidden = false;
  if (changed) {
    clearPreview();
    playerHide();
  }
  $("job-heading").textContent = `Job ${jobId}`;
  if (focus) $("job-heading").focus();
  const textList = $("timeline-text");
  const objectList = $("timeline-objects");
  try {
    const job = await apiJson(`/v1/video/status/${jobId}`);
    view.dataset.status = job.status;
    $("job-file").textContent = job.filename || "";
    $("downloads").hidden = job.status !== "completed";
    if (job.status !== "completed") {
      playerHide();
      textList.replaceChildren();
      objectList.replaceChildren();
      $("job-summary").textContent =
        job.status === "failed"
          ? `Failed: ${job.error_message || "no reason given"}`
          : `${job.status}, ${Math.round(job.progress)}%: the timeline is shown once the job is completed.`;
      return;
    }
    const timeline = await apiJson(`/v1/video/timeline/${jobId}`);
    if (state.openJob !== jobId) return;
    textList.replaceChildren(
      ...timeline.text.map((s) =>
        timelineEntry(`${clock(s.start_s)}–${clock(s.end_s)}`, s.text, s.first_frame, s.start_s),
      ),
    );
    objectList.replaceChildren(
      ...timeline.objects.map((t) =>
        timelineEntry(
          `${clock(t.start_s)}–${clock(t.end_s)}`,
          `#${t.track_id} ${t.class_name}`,
          t.first_frame,
          t.start_s,
        ),
      ),
    );
    if (!timeline.text.length) textList.append(emptyItem("No text found."));
    if (!timeline.objects.length) objectList.append(emptyItem("No objects found."));
    $("job-summary").textContent =
      `Completed: ${timeline.text.length} text segment(s), ${timeline.objects.length} object track(s).`;
    await playerShow(jobId, job, timeline, startAt === undefined ? null : startAt);
  } catch (error) {
    $("job-summary").textContent = "";
    showError(error.message);
  }
}

function emptyItem(text) {
  const item = document.createElement("li");
  item.className = "hint";
  item.textContent = text;
  return item;
}

async function showPreview(frameIndex, caption) {
  showError("");
  const jobId = state.openJob;
  try {
    const response = await api(`/v1/video/preview/${jobId}?frame_index=${frameIndex}`);
    if (!response.ok) throw new ApiError(response.status, await detailOf(response));
    const blob = await response.blob();
    if (state.openJob !== jobId) return;
    clearPreview();
    state.previewUrl = URL.createObjectURL(blob);
    const image = $("preview-image");
    image.src = state.previewUrl;
    image.alt = `Frame ${frameIndex} with the boxes and text drawn`;
    $("preview-caption").textContent = `Frame ${frameIndex}: ${caption}`;
    $("preview").hidden = false;
  } catch (error) {
    showError(error.message);
  }
}

const DOWNLOADS = {
  json: { path: (id) => `/v1/video/results/${id}`, name: (id) => `${id}.json` },
  jsonl: { path: (id) => `/v1/video/results/${id}?format=jsonl`, name: (id) => `${id}.jsonl` },
  vtt: { path: (id) => `/v1/video/timeline/${id}?format=vtt`, name: (id) => `${id}.vtt` },
};

async function download(kind) {
  showError("");
  const jobId = state.openJob;
  const target = DOWNLOADS[kind];
  try {
    const response = await api(target.path(jobId));
    if (!response.ok) throw new ApiError(response.status, await detailOf(response));
    const url = URL.createObjectURL(await response.blob());
    const link = document.createElement("a");
    link.href = url;
    link.download = target.name(jobId);
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (error) {
    showError(error.message);
  }
}

// ---- start -------------------------------------------------------------------------------

async function start() {
  playerStart();
  window.addEventListener("hashchange", routeFromAddress);
  routeFromAddress();
  $("submit-form").addEventListener("submit", submitVideo);
  $("pipeline").addEventListener("change", describePipeline);
  for (const element of document.querySelectorAll("[data-download]")) {
    element.addEventListener("click", () => download(element.dataset.download));
  }
  const keyButton = $("key-button");
  keyButton.addEventListener("click", async () => {
    try {
      await askForKey(false);
      showError("");
      await loadRole();
      await loadPipelines();
      schedulePoll(0);
    } catch (error) {
      showError(error.message);
    }
  });
  try {
    await loadOptions();
  } catch (error) {
    showError(error.message);
  }
  try {
    await loadPipelines();
  } catch (error) {
    showError(error.message);
  }
  await loadRole();
  keyButton.hidden = apiKey() === null;
  schedulePoll(0);
}

document.addEventListener("DOMContentLoaded", start);
