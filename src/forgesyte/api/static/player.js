// ForgeSyte's player: a finished job's video, what was found drawn over it at the current
// time, and lanes of what was found under it. A thin client of the public API, like app.js
// (whose api(), apiJson(), ApiError and clock() it uses): the video comes from a signed
// link (GET /v1/video/source-url/{job_id}: a <video> element cannot send the key header,
// and the key never goes into a URL); the boxes come from the results, fetched page by
// page around the current time, and the track ids of their detections; thumbnails are
// fetched with the key and shown from blob URLs. Nothing is burnt into the video.
"use strict";

const PLAYER_PAGE = 200; // analysed frames fetched at a time
const PLAYER_KEPT_PAGES = 8; // pages kept around the current time; the farthest go first
const PLAYER_PREFETCH = 20; // this close to a page's end, the next page is fetched
const PLAYER_ADDRESS_MS = 1000; // how often playback writes its time into the address
const PLAYER_URL_REFRESH_MS = 60000; // a link refused as expired is renewed at most this often
const PLAYER_NOW_ITEMS = 8; // items on screen listed with their thumbnails, at most
const TEXT_BOX_COLOUR = "#ff9f1a";
const TIME_EPSILON_S = 0.0005; // a frame at t + this still counts as "at or before t"
const ROUTE = /^#\/jobs\/([0-9a-fA-F-]{36})(?:\?(.*))?$/;

const player = {
  jobId: null,
  timeline: null,
  video: null, // the analysed video's size and rate: {width, height, fps, frame_count}
  total: 0, // analysed frames
  pages: new Map(), // offset -> {offset, entries, trackIds, next}
  pending: new Map(), // offset -> promise of its page
  current: null, // {page, index}: the entry drawn now
  thumbnails: new Map(), // "kind:index" -> blob URL (or null: none)
  addressAt: 0,
  urlRefreshedAt: 0,
  startAt: null,
  frameCallback: null,
};

// ---- the address: /#/jobs/<id>?t=<seconds> ----------------------------------------------

function parseRoute(hash) {
  const match = ROUTE.exec(hash || "");
  if (!match) return null;
  const t = Number(new URLSearchParams(match[2] || "").get("t"));
  return { jobId: match[1].toLowerCase(), t: Number.isFinite(t) && t >= 0 ? t : null };
}

function routeHash(jobId, t) {
  return t === null || t === undefined ? `#/jobs/${jobId}` : `#/jobs/${jobId}?t=${t.toFixed(1)}`;
}

// the time follows playback without adding history entries; opening a job adds one (app.js)
function writeTimeToAddress(force) {
  const video = $("player-video");
  if (!player.jobId || !video) return;
  const now = Date.now();
  if (!force && now - player.addressAt < PLAYER_ADDRESS_MS) return;
  player.addressAt = now;
  const wanted = routeHash(player.jobId, video.currentTime);
  if (location.hash !== wanted) history.replaceState(history.state, "", wanted);
}

// ---- results, page by page ----------------------------------------------------------------

function pageOffset(index) {
  return Math.max(0, Math.floor(index / PLAYER_PAGE) * PLAYER_PAGE);
}

async function fetchPage(offset) {
  const jobId = player.jobId;
  const query = `offset=${offset}&limit=${PLAYER_PAGE}`;
  const [results, tracks] = await Promise.all([
    apiJson(`/v1/video/results/${jobId}?${query}`),
    api(`/v1/video/track-ids/${jobId}?${query}`).then((r) => (r.ok ? r.json() : null)),
  ]);
  if (player.jobId !== jobId) return null;
  player.total = results.frames_analysed;
  player.video = results.video;
  const byFrame = new Map((tracks ? tracks.frames : []).map((f) => [f.frame_index, f.track_ids]));
  const page = {
    offset,
    entries: results.results,
    trackIds: results.results.map((entry) => byFrame.get(entry.frame_index) || []),
    next: results.next_offset,
  };
  player.pages.set(offset, page);
  return page;
}

function loadPage(offset) {
  if (player.pages.has(offset)) return Promise.resolve(player.pages.get(offset));
  if (!player.pending.has(offset)) {
    const loading = fetchPage(offset).finally(() => player.pending.delete(offset));
    player.pending.set(offset, loading);
  }
  return player.pending.get(offset);
}

function forgetFarPages(offset) {
  const offsets = [...player.pages.keys()].sort((a, b) => Math.abs(a - offset) - Math.abs(b - offset));
  for (const far of offsets.slice(PLAYER_KEPT_PAGES)) player.pages.delete(far);
}

// the last entry at or before t in a page, or -1
function indexAtOrBefore(entries, t) {
  let low = 0;
  let high = entries.length - 1;
  let found = -1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    if (entries[middle].timestamp_s <= t + TIME_EPSILON_S) {
      found = middle;
      low = middle + 1;
    } else {
      high = middle - 1;
    }
  }
  return found;
}

function videoDuration() {
  const element = $("player-video");
  if (element && Number.isFinite(element.duration) && element.duration > 0) return element.duration;
  const info = player.video || {};
  return info.fps > 0 ? info.frame_count / info.fps : 0;
}

// the analysed frame at or before t: {page, index}, or null before the first one
async function entryAt(t) {
  const duration = videoDuration();
  let guess = duration > 0 && player.total ? Math.floor((t / duration) * player.total) : 0;
  let offset = pageOffset(Math.min(guess, Math.max(0, player.total - 1)));
  for (let step = 0; step < 64; step += 1) {
    const page = await loadPage(offset);
    if (!page || !page.entries.length) return null;
    if (t + TIME_EPSILON_S < page.entries[0].timestamp_s) {
      if (offset === 0) return null;
      offset = pageOffset(offset - 1);
      continue;
    }
    const index = indexAtOrBefore(page.entries, t);
    if (index === page.entries.length - 1 && page.next !== null) {
      const following = await loadPage(page.next);
      if (following && following.entries.length && following.entries[0].timestamp_s <= t + TIME_EPSILON_S) {
        offset = page.next;
        continue;
      }
    }
    forgetFarPages(offset);
    if (page.entries.length - index <= PLAYER_PREFETCH && page.next !== null) loadPage(page.next);
    return { page, index };
  }
  return null;
}

// the analysed frame `delta` frames from the current one: {page, index}, or null
async function entryBeside(delta) {
  const here = player.current;
  if (!here) return delta > 0 ? entryAt(0) : null;
  const target = here.page.offset + here.index + delta;
  if (target < 0 || target >= player.total) return null;
  const page = await loadPage(pageOffset(target));
  return page ? { page, index: target - page.offset } : null;
}

// ---- drawing what was found ---------------------------------------------------------------

function isNumberList(value, length) {
  return Array.isArray(value) && value.length === length && value.every((v) => typeof v === "number");
}

// what one frame's stored result holds, read as the server's timeline reads it
// (results/timeline.py, frame_observations): output nodes in id order, items in order
function observations(result) {
  const lines = [];
  const detections = [];
  for (const nodeId of Object.keys(result || {}).sort()) {
    const value = result[nodeId];
    if (!Array.isArray(value)) continue;
    for (const item of value) {
      if (!item || typeof item !== "object") continue;
      if (typeof item.text === "string" && Array.isArray(item.box) && item.box.every((p) => isNumberList(p, 2))) {
        lines.push(item);
      } else if (isNumberList(item.xyxy, 4) && typeof item.class_name === "string") {
        detections.push(item);
        for (const line of Array.isArray(item.text_lines) ? item.text_lines : []) {
          if (line && typeof line.text === "string" && Array.isArray(line.box)) lines.push(line);
        }
      }
    }
  }
  return { lines, detections };
}

function trackColour(trackId) {
  const hue = (trackId * 137.508) % 360; // the golden angle: neighbours far apart
  return `hsl(${hue.toFixed(1)}, 85%, 55%)`;
}

// the video's picture inside the element (object-fit: contain), in CSS pixels
function pictureRect(element) {
  const width = element.clientWidth;
  const height = element.clientHeight;
  const info = player.video || {};
  const sourceW = element.videoWidth || info.width || width;
  const sourceH = element.videoHeight || info.height || height;
  const scale = Math.min(width / sourceW, height / sourceH);
  const shownW = sourceW * scale;
  const shownH = sourceH * scale;
  return { x: (width - shownW) / 2, y: (height - shownH) / 2, width: shownW, height: shownH };
}

function clearOverlay() {
  const canvas = $("player-overlay");
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
}

function drawOverlay() {
  const canvas = $("player-overlay");
  const element = $("player-video");
  const ratio = window.devicePixelRatio || 1;
  const width = Math.round(element.clientWidth * ratio);
  const height = Math.round(element.clientHeight * ratio);
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const context = canvas.getContext("2d");
  context.setTransform(1, 0, 0, 1, 0, 0);
  context.clearRect(0, 0, width, height);
  const here = player.current;
  if (!here || !player.video || !player.video.width) return;
  const entry = here.page.entries[here.index];
  const trackIds = here.page.trackIds[here.index] || [];
  const rect = pictureRect(element);
  // boxes are in the analysed video's pixels, whatever size the played copy is
  const scaleX = rect.width / player.video.width;
  const scaleY = rect.height / player.video.height;
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  const { lines, detections } = observations(entry.result);
  context.lineWidth = 2;
  context.strokeStyle = TEXT_BOX_COLOUR;
  for (const line of lines) {
    context.beginPath();
    line.box.forEach(([x, y], i) => {
      const px = rect.x + x * scaleX;
      const py = rect.y + y * scaleY;
      if (i === 0) context.moveTo(px, py);
      else context.lineTo(px, py);
    });
    context.closePath();
    context.stroke();
  }
  context.font = "600 12px system-ui, sans-serif";
  context.textBaseline = "bottom";
  detections.forEach((detection, i) => {
    const trackId = trackIds[i];
    const colour = trackId ? trackColour(trackId) : "#3ccc3c";
    const [x1, y1, x2, y2] = detection.xyxy;
    const left = rect.x + x1 * scaleX;
    const top = rect.y + y1 * scaleY;
    context.strokeStyle = colour;
    context.strokeRect(left, top, (x2 - x1) * scaleX, (y2 - y1) * scaleY);
    const label = trackId ? `${detection.class_name} #${trackId}` : detection.class_name;
    const labelWidth = context.measureText(label).width + 6;
    const labelTop = top >= 16 ? top - 16 : top;
    context.fillStyle = colour;
    context.fillRect(left, labelTop, labelWidth, 16);
    context.fillStyle = "#000";
    context.fillText(label, left + 3, labelTop + 14);
  });
}

// ---- following the current time ----------------------------------------------------------

let followSerial = 0;

async function follow() {
  const element = $("player-video");
  if (!player.jobId || !element) return;
  const serial = (followSerial += 1);
  const t = element.currentTime;
  let here = null;
  try {
    here = await entryAt(t);
  } catch (error) {
    showPlayerError(`What was found could not be read: ${error.message}`);
    return;
  }
  if (serial !== followSerial) return; // a later time is being looked up
  player.current = here;
  drawOverlay();
  markLanes(t);
  showNow(t);
  const status = $("player-status");
  status.textContent = here
    ? `${clock(t)}: frame ${here.page.entries[here.index].frame_index} ` +
      `(analysed frame ${here.page.offset + here.index + 1} of ${player.total})`
    : `${clock(t)}: no frame analysed yet`;
}

function onFrame() {
  follow();
  writeTimeToAddress(false);
  watchFrames();
}

// redraw at every shown frame while playing (requestVideoFrameCallback where there is one)
function watchFrames() {
  const element = $("player-video");
  if (!element || element.paused || !player.jobId) return;
  if (element.requestVideoFrameCallback) {
    player.frameCallback = element.requestVideoFrameCallback(onFrame);
  } else {
    player.frameCallback = requestAnimationFrame(onFrame);
  }
}

// ---- lanes --------------------------------------------------------------------------------

function laneRows(items) {
  // items that overlap in time go on rows of their own, packed greedily
  const ends = [];
  return items.map((item) => {
    let row = ends.findIndex((end) => end <= item.start);
    if (row === -1) {
      row = ends.length;
      ends.push(0);
    }
    ends[row] = item.end;
    return row;
  });
}

function laneItem(item, duration, row, rowCount) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = `lane-item lane-${item.kind}`;
  element.dataset.start = String(item.start);
  element.dataset.end = String(item.end);
  element.dataset.kind = item.kind;
  element.dataset.index = String(item.index);
  element.style.left = `${(100 * item.start) / duration}%`;
  element.style.width = `max(0.5rem, ${(100 * (item.end - item.start)) / duration}%)`;
  element.style.top = `${(100 * row) / rowCount}%`;
  element.style.height = `${100 / rowCount}%`;
  if (item.colour) element.style.setProperty("--item-colour", item.colour);
  element.textContent = item.label;
  element.title = `${item.label} (${clock(item.start)}–${clock(item.end)})`;
  element.setAttribute("aria-label", `${item.label}, ${clock(item.start)} to ${clock(item.end)}: play from here`);
  element.addEventListener("click", () => playerSeek(item.start));
  return element;
}

function lane(title, items, duration) {
  const row = document.createElement("div");
  row.className = "lane";
  row.setAttribute("role", "group");
  row.setAttribute("aria-label", title);
  const name = document.createElement("span");
  name.className = "lane-name";
  name.textContent = title;
  const track = document.createElement("div");
  track.className = "lane-track";
  const rows = laneRows(items);
  const rowCount = Math.max(1, ...rows.map((r) => r + 1));
  track.style.setProperty("--rows", String(rowCount));
  items.forEach((item, i) => track.append(laneItem(item, duration, rows[i], rowCount)));
  row.append(name, track);
  return row;
}

function laneItems(timeline, step) {
  const text = timeline.text.map((s, index) => ({
    kind: "text",
    index,
    start: s.start_s,
    end: s.end_s + step,
    label: s.text,
  }));
  const objects = new Map(); // class -> items
  timeline.objects.forEach((t, index) => {
    const items = objects.get(t.class_name) || [];
    items.push({
      kind: "object",
      index,
      start: t.start_s,
      end: t.end_s + step,
      label: `${t.class_name} #${t.track_id}`,
      colour: trackColour(t.track_id),
    });
    objects.set(t.class_name, items);
  });
  const shots = (timeline.shots || []).map((s, index) => ({
    kind: "shot",
    index,
    start: s.start_s,
    end: s.end_s,
    label: `shot ${s.index !== undefined ? s.index + 1 : index + 1}`,
  }));
  return { text, objects, shots };
}

function renderLanes() {
  const lanes = $("lanes");
  const duration = videoDuration();
  if (!player.timeline || !(duration > 0)) return;
  const step = player.total > 0 ? duration / player.total : 0;
  const { text, objects, shots } = laneItems(player.timeline, step);
  const rows = [];
  if (text.length) rows.push(lane("Text", text, duration));
  for (const name of [...objects.keys()].sort()) rows.push(lane(name, objects.get(name), duration));
  if (shots.length) rows.push(lane("Shots", shots, duration));
  const cursor = document.createElement("div");
  cursor.id = "lane-cursor";
  cursor.className = "lane-cursor";
  cursor.setAttribute("aria-hidden", "true");
  const body = document.createElement("div");
  body.className = "lanes-body";
  body.append(...rows, cursor);
  lanes.replaceChildren(body);
  if (!rows.length) {
    const empty = document.createElement("p");
    empty.className = "hint";
    empty.textContent = "Nothing was found in this video.";
    lanes.replaceChildren(empty);
  }
  markLanes($("player-video").currentTime);
}

function markLanes(t) {
  const duration = videoDuration();
  const cursor = $("lane-cursor");
  if (cursor && duration > 0) {
    cursor.style.setProperty("--at", String(Math.min(1, t / duration)));
  }
  for (const item of document.querySelectorAll("#lanes .lane-item")) {
    const on = Number(item.dataset.start) <= t + TIME_EPSILON_S && t < Number(item.dataset.end);
    item.classList.toggle("on", on);
  }
}

// ---- what is on screen now, with thumbnails ----------------------------------------------

async function thumbnailUrl(kind, index) {
  const key = `${kind}:${index}`;
  if (player.thumbnails.has(key)) return player.thumbnails.get(key);
  player.thumbnails.set(key, null); // asked for once
  const response = await api(`/v1/video/thumbnail/${player.jobId}?kind=${kind}&index=${index}`);
  if (!response.ok) return null;
  const url = URL.createObjectURL(await response.blob());
  player.thumbnails.set(key, url);
  return url;
}

function showNow(t) {
  const list = $("player-now");
  const on = [...document.querySelectorAll("#lanes .lane-item.on")].slice(0, PLAYER_NOW_ITEMS);
  const wanted = on.map((item) => `${item.dataset.kind}:${item.dataset.index}`).join(",");
  if (list.dataset.items === wanted) return;
  list.dataset.items = wanted;
  list.replaceChildren(
    ...on.map((item) => {
      const entry = document.createElement("li");
      const picture = document.createElement("img");
      picture.alt = "";
      picture.width = 96;
      const label = document.createElement("span");
      label.textContent = item.textContent;
      entry.append(picture, label);
      thumbnailUrl(item.dataset.kind, Number(item.dataset.index)).then((url) => {
        if (url) picture.src = url;
        else picture.remove();
      });
      return entry;
    }),
  );
  $("player-now-empty").hidden = on.length > 0;
  $("player-now-empty").textContent = `Nothing found at ${clock(t)}.`;
}

// ---- the video ----------------------------------------------------------------------------

function showPlayerError(message) {
  const box = $("player-error");
  box.textContent = message;
  box.hidden = !message;
}

async function loadSource(resumeAt) {
  const jobId = player.jobId;
  const { url } = await apiJson(`/v1/video/source-url/${jobId}`);
  if (player.jobId !== jobId) return;
  const element = $("player-video");
  if (resumeAt !== null) player.startAt = resumeAt;
  element.src = url;
}

// a <video> says only that it failed: ask the server why, and renew an expired link once
async function onVideoError() {
  const element = $("player-video");
  const jobId = player.jobId;
  if (!jobId || !element.src) return;
  let detail = "the video could not be played";
  try {
    const response = await fetch(element.src, { headers: { Range: "bytes=0-0" } });
    if (response.ok) detail = "the browser could not play this video";
    else detail = await detailOf(response);
    if (response.status === 401 && /expired/.test(detail) && Date.now() - player.urlRefreshedAt > PLAYER_URL_REFRESH_MS) {
      player.urlRefreshedAt = Date.now();
      await loadSource(element.currentTime || player.startAt);
      return;
    }
  } catch (_) {
    detail = "the server could not be reached";
  }
  if (player.jobId === jobId) showPlayerError(`The video could not be played: ${detail}.`);
}

function onMetadata() {
  const element = $("player-video");
  renderLanes();
  if (player.startAt !== null) {
    element.currentTime = Math.min(player.startAt, videoDuration());
    player.startAt = null;
  }
  follow();
}

function toggle() {
  const element = $("player-video");
  if (element.paused) element.play().catch(() => {});
  else element.pause();
}

async function step(delta) {
  const element = $("player-video");
  element.pause();
  const target = await entryBeside(delta);
  if (target) playerSeek(target.page.entries[target.index].timestamp_s);
}

function onKey(event) {
  const onButton = event.target instanceof HTMLButtonElement;
  if (event.key === " " && !onButton) {
    event.preventDefault();
    event.stopPropagation();
    toggle();
  } else if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
    event.preventDefault();
    event.stopPropagation();
    step(event.key === "ArrowLeft" ? -1 : 1);
  }
}

// ---- what app.js calls --------------------------------------------------------------------

function playerActive() {
  return player.jobId !== null;
}

function playerSeek(t) {
  const element = $("player-video");
  if (!playerActive()) return;
  element.currentTime = Math.max(0, t);
  if (element.readyState === 0) player.startAt = t;
}

// open a completed job's player (again: a no-op for the job already open, but a new time)
async function playerShow(jobId, status, timeline, startAt) {
  const section = $("player");
  section.hidden = false;
  if (player.jobId === jobId) {
    if (startAt !== null && startAt !== undefined) playerSeek(startAt);
    return;
  }
  playerHide();
  section.hidden = false;
  player.jobId = jobId;
  player.timeline = timeline;
  player.startAt = startAt === undefined ? null : startAt;
  showPlayerError("");
  $("player-status").textContent = "";
  if (!status.playable) {
    $("player-stage").hidden = true;
    $("player-status").textContent =
      "This job has no video a browser can play (its copy could not be made, or the job is " +
      "older than playback); the timeline is below, and each entry shows its frame.";
    return;
  }
  $("player-stage").hidden = false;
  try {
    await loadPage(0);
    await loadSource(null);
  } catch (error) {
    if (player.jobId === jobId) showPlayerError(`The video could not be loaded: ${error.message}`);
  }
}

function playerHide() {
  const element = $("player-video");
  if (player.frameCallback !== null && element.cancelVideoFrameCallback) {
    element.cancelVideoFrameCallback(player.frameCallback);
  }
  element.pause();
  element.removeAttribute("src");
  element.load();
  for (const url of player.thumbnails.values()) if (url) URL.revokeObjectURL(url);
  Object.assign(player, {
    jobId: null,
    timeline: null,
    video: null,
    total: 0,
    current: null,
    startAt: null,
    frameCallback: null,
  });
  player.pages.clear();
  player.pending.clear();
  player.thumbnails.clear();
  $("lanes").replaceChildren();
  $("player-now").replaceChildren();
  $("player-now").dataset.items = "";
  clearOverlay();
  showPlayerError("");
  $("player").hidden = true;
}

function playerStart() {
  const element = $("player-video");
  element.addEventListener("loadedmetadata", onMetadata);
  element.addEventListener("seeked", () => {
    follow();
    writeTimeToAddress(true);
  });
  element.addEventListener("play", watchFrames);
  element.addEventListener("pause", () => {
    follow();
    writeTimeToAddress(true);
  });
  element.addEventListener("error", onVideoError);
  $("player").addEventListener("keydown", onKey, true);
  new ResizeObserver(drawOverlay).observe(element);
}
