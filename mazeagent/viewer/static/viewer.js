// mazeagent view: the page. Plain JS, no libraries. The page owns the maze (the object Maze.to_json writes) and
// sends it with every request; the server (mazeagent/viewer) validates, edits and runs the agent. Squares are inner
// [row, col] with row 0 at the bottom, as in the Python API. window.viewerState exposes the state to tests.
"use strict";

const S = window.viewerState = {
  info: null, maze: null, view: null, episode: null, epIndex: 0, playing: null,
  clampSquare: null, error: null, version: 0, busy: 0, savedText: null, lastRoundTripMs: null,
};
const $ = (id) => document.getElementById(id);
const GROUPS = ["left", "down", "up", "right", "noop"];

// ---------------------------------------------------------------------------------------------------- requests
async function api(path, body) {
  S.busy++; document.body.dataset.busy = "true";
  try {
    const opts = body === undefined ? {} : {method: "POST", headers: {"Content-Type": "application/json"},
                                             body: JSON.stringify(body)};
    const res = await fetch(path, opts);
    let data;
    try { data = await res.json(); } catch (e) { data = {error: `HTTP ${res.status} (no JSON answer)`}; }
    if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
    return data;
  } finally {
    S.busy--; document.body.dataset.busy = S.busy > 0 ? "true" : "false";
  }
}

function showError(err) {
  S.error = String(err.message || err);
  $("error-text").textContent = S.error;
  $("error").hidden = false;
  document.body.dataset.error = S.error;
}

function clearError() {
  S.error = null; $("error").hidden = true; delete document.body.dataset.error;
}

// ------------------------------------------------------------------------------------------------------ maze
function grid(maze) {  // {n, walls[r][c], mouse, cheese}; rows_top_first holds the top row first
  const rows = maze.rows_top_first, n = rows.length, walls = [];
  let mouse = null, cheese = null;
  for (let r = 0; r < n; r++) {
    const line = rows[n - 1 - r];
    walls.push([...line].map((ch) => ch === "#"));
    for (let c = 0; c < n; c++) {
      if (line[c] === "M") mouse = [r, c];
      if (line[c] === "C") cheese = [r, c];
    }
  }
  return {n, walls, mouse, cheese};
}

const same = (a, b) => a && b && a[0] === b[0] && a[1] === b[1];

function setMaze(maze) {
  S.maze = maze;
  S.episode = null; stopPlay(); S.epIndex = 0;
  const g = grid(maze);
  if (!S.clampSquare || S.clampSquare[0] >= g.n || S.clampSquare[1] >= g.n) S.clampSquare = [g.n - 1, g.n - 1];
  document.body.dataset.maze = JSON.stringify(maze.rows_top_first);
  refresh();
}

async function edit(op, square) {
  try {
    const out = await api("/api/edit", {maze: S.maze, op, square});
    clearError();
    setMaze(out.maze);
  } catch (e) { showError(e); draw(); }
}

// ------------------------------------------------------------------------------------------------------ view
function patchSpec() {
  const kind = document.querySelector("input[name=patch]:checked").value;
  if (kind === "cheese_vector") {  // a maze without cheese has no cheese vector: nothing to patch
    return S.maze && grid(S.maze).cheese ? {kind, coeff: Number($("coeff").value), layer: S.info.default_layer}
      : null;
  }
  if (kind === "clamp") return {kind, layer: $("layer").value, channel: Number($("channel").value),
                                square: S.clampSquare, value: Number($("clamp-value").value)};
  return null;
}

let inFlight = false, again = false;
async function refresh() {  // one view request at a time; changes made meanwhile send one more afterwards
  if (inFlight) { again = true; return; }
  inFlight = true;
  const t0 = performance.now();
  try {
    const body = {maze: S.maze, layer: $("layer").value, channel: Number($("channel").value), patch: patchSpec()};
    S.view = await api("/api/view", body);
    S.lastRoundTripMs = Math.round(performance.now() - t0);
    S.version++; document.body.dataset.version = String(S.version);
    $("status").textContent = `last update ${S.lastRoundTripMs} ms`;
  } catch (e) { S.view = null; showError(e); }
  inFlight = false;
  draw();
  if (again) { again = false; refresh(); }
}

// ---------------------------------------------------------------------------------------------------- drawing
function heatColour(v, vmax) {  // diverging: blue < 0 < red, white at 0
  const t = Math.max(-1, Math.min(1, vmax > 0 ? v / vmax : 0));
  const k = Math.round(255 * (1 - Math.abs(t)));
  return t >= 0 ? `rgb(255,${k},${k})` : `rgb(${k},${k},255)`;
}

function drawHeat(ctx, act, size) {  // each activation cell over the pixels of the frame it covers
  const [top, bottom, left, right] = act.extent, values = act.values, h = values.length, w = values[0].length;
  const sx = size / (right - left), sy = size / (bottom - top), cell = act.frame / h;
  let vmax = 0;
  for (const row of values) for (const v of row) vmax = Math.max(vmax, Math.abs(v));
  ctx.save(); ctx.globalAlpha = 0.45;
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
    ctx.fillStyle = heatColour(values[i][j], vmax);
    ctx.fillRect((j * cell - left) * sx, (i * cell - top) * sy, cell * sx + 0.5, cell * sy + 0.5);
  }
  ctx.restore();
  return vmax;
}

function drawArrows(ctx, field, n, cell, colour) {
  ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.lineWidth = Math.max(1, cell / 14);
  field.squares.forEach(([r, c], k) => {
    const p = field.probs[k], dx = p[3] - p[0], dy = p[2] - p[1];  // as probes/vfield.py's arrows
    const x0 = (c + 0.5) * cell, y0 = (n - 1 - r + 0.5) * cell, x1 = x0 + dx * cell * 0.9, y1 = y0 - dy * cell * 0.9;
    const len = Math.hypot(x1 - x0, y1 - y0);
    if (len < 1) { ctx.beginPath(); ctx.arc(x0, y0, 1.2, 0, 7); ctx.fill(); return; }
    ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke();
    const a = Math.atan2(y1 - y0, x1 - x0), hd = Math.min(cell / 4, len / 2);
    ctx.beginPath(); ctx.moveTo(x1, y1);
    ctx.lineTo(x1 - hd * Math.cos(a - 0.45), y1 - hd * Math.sin(a - 0.45));
    ctx.lineTo(x1 - hd * Math.cos(a + 0.45), y1 - hd * Math.sin(a + 0.45)); ctx.fill();
  });
}

function drawDisc(ctx, sq, n, cell, fill, label) {
  const x = (sq[1] + 0.5) * cell, y = (n - 1 - sq[0] + 0.5) * cell;
  ctx.beginPath(); ctx.arc(x, y, cell * 0.36, 0, 7); ctx.fillStyle = fill; ctx.fill();
  ctx.strokeStyle = "#333"; ctx.lineWidth = 1; ctx.stroke();
  if (label) {
    ctx.fillStyle = "#000"; ctx.font = `bold ${Math.round(cell * 0.4)}px sans-serif`;
    ctx.textAlign = "center"; ctx.textBaseline = "middle"; ctx.fillText(label, x, y);
  }
}

function drawPanel(canvas, part, colour, extra) {
  const ctx = canvas.getContext("2d"), g = grid(S.maze), n = g.n, size = canvas.width, cell = size / n;
  ctx.clearRect(0, 0, size, size);
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) {
    ctx.fillStyle = g.walls[r][c] ? "#3b3b3b" : "#f3efe4";
    ctx.fillRect(c * cell, (n - 1 - r) * cell, cell, cell);
  }
  let vmax = null;
  if (part && part.activation && $("show-heat").checked) vmax = drawHeat(ctx, part.activation, size);
  if (g.cheese) drawDisc(ctx, drag && drag.what === "cheese" ? drag.at : g.cheese, n, cell, "#f5c518", "C");
  if (part) drawArrows(ctx, part.field, n, cell, colour);
  const ep = S.episode;
  if (ep && ep.onPatched === (canvas.id === "patched")) {
    ctx.strokeStyle = "rgba(255,120,0,0.8)"; ctx.lineWidth = cell / 8; ctx.beginPath();
    ep.squares.slice(0, S.epIndex + 1).forEach(([r, c], k) => {
      const x = (c + 0.5) * cell, y = (n - 1 - r + 0.5) * cell;
      if (k === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
    drawDisc(ctx, ep.squares[S.epIndex], n, cell, "#b08a6a", "M");
  } else {
    drawDisc(ctx, drag && drag.what === "mouse" ? drag.at : g.mouse, n, cell, "#b08a6a", "M");
  }
  if (extra) extra(ctx, n, cell);
  return vmax;
}

function probsText(p) {
  return p ? GROUPS.map((k) => `${k} ${p[k].toFixed(3)}`).join("  ") : "";
}

function draw() {
  if (!S.maze) return;
  const v = S.view, patched = v && v.patched;
  const vmax = drawPanel($("maze"), v, "#c0392b");
  drawPanel($("patched"), patched, "#1f5fbf", (ctx, n, cell) => {
    if (patchSpec() && patchSpec().kind === "clamp") {
      const [r, c] = S.clampSquare;
      ctx.strokeStyle = "#1f5fbf"; ctx.lineWidth = 3; ctx.strokeRect(c * cell + 2, (n - 1 - r) * cell + 2,
                                                                    cell - 4, cell - 4);
    }
  });
  $("probs-original").textContent = v ? `at the mouse: ${probsText(v.act_probs)}` : "";
  const kind = document.querySelector("input[name=patch]:checked").value;
  $("probs-patched").textContent = patched ? `at the mouse: ${probsText(patched.act_probs)}`
    : kind === "cheese_vector" ? "the maze has no cheese, so it has no cheese vector" : "no patch";
  $("ms-original").textContent = v ? `${v.ms.original} ms${v.ms.original_cached ? " (field cached)" : ""}` : "";
  $("ms-patched").textContent = patched ? `${v.ms.patched} ms` : "";
  $("heat-range").textContent = vmax === null ? "" : `|max| ${vmax.toFixed(3)} (red > 0 > blue)`;
  $("clamp-square").textContent = S.clampSquare ? `[${S.clampSquare}]` : "";
  const ep = S.episode;
  $("ep-status").textContent = ep ? `step ${S.epIndex} / ${ep.steps}${ep.cheese && S.epIndex === ep.steps
    ? " - got the cheese" : ""}` : "";
  $("coeff-out").textContent = Number($("coeff").value).toFixed(1);
}

// ------------------------------------------------------------------------------------------ pointer editing
let drag = null;  // {what: "mouse" | "cheese" | "wall", from, at, moved}
function squareAt(canvas, ev) {
  const rect = canvas.getBoundingClientRect(), n = grid(S.maze).n;
  const c = Math.floor((ev.clientX - rect.left) / rect.width * n);
  const rr = Math.floor((ev.clientY - rect.top) / rect.height * n);
  return [n - 1 - Math.min(n - 1, Math.max(0, rr)), Math.min(n - 1, Math.max(0, c))];
}

function onDown(ev) {
  if (!S.maze) return;
  const canvas = $("maze"), sq = squareAt(canvas, ev), g = grid(S.maze);
  if (S.episode) resetEpisode();  // back to the maze's own mouse before editing it
  canvas.setPointerCapture(ev.pointerId);
  const what = same(sq, g.mouse) ? "mouse" : same(sq, g.cheese) ? "cheese" : "wall";
  drag = {what, from: sq, at: sq, moved: false};
}

function onMove(ev) {
  if (!drag || drag.what === "wall") return;
  const sq = squareAt($("maze"), ev);
  if (!same(sq, drag.at)) { drag.at = sq; drag.moved = true; draw(); }
}

function onUp(ev) {
  if (!drag) return;
  const d = drag, sq = squareAt($("maze"), ev);
  drag = null;
  if (d.what === "wall") { if (same(sq, d.from)) edit("toggle_wall", sq); return; }
  if (same(sq, d.from)) { draw(); return; }
  edit(d.what === "mouse" ? "move_mouse" : "move_cheese", sq);
}

// --------------------------------------------------------------------------------------------------- episodes
async function ensureEpisode() {
  if (S.episode) return S.episode;
  const onPatched = $("ep-patched").checked && patchSpec() !== null;
  const body = {maze: S.maze, seed: Number($("ep-seed").value), greedy: $("greedy").checked,
                patch: onPatched ? patchSpec() : null};
  $("ep-status").textContent = "playing the episode ...";
  try {
    S.episode = {...await api("/api/episode", body), onPatched};
    S.epIndex = 0;
    clearError();
  } catch (e) { showError(e); }
  return S.episode;
}

function stopPlay() {
  if (S.playing) clearInterval(S.playing);
  S.playing = null; $("play").textContent = "Play";
}

async function step() {
  const ep = await ensureEpisode();
  if (!ep) return;
  if (S.epIndex < ep.steps) S.epIndex++;
  if (S.epIndex >= ep.steps) stopPlay();
  draw();
}

async function play() {
  if (S.playing) { stopPlay(); return; }
  const ep = await ensureEpisode();
  if (!ep) return;
  if (S.epIndex >= ep.steps) S.epIndex = 0;
  $("play").textContent = "Pause";
  S.playing = setInterval(step, 120);
}

function resetEpisode() { stopPlay(); S.episode = null; S.epIndex = 0; draw(); }

// ---------------------------------------------------------------------------------------------- files, seeds
async function newMaze() {
  try { setMaze((await api(`/api/maze?seed=${encodeURIComponent($("maze-seed").value)}`)).maze); clearError(); }
  catch (e) { showError(e); }
}

async function save() {
  try {
    const out = await api("/api/save", {maze: S.maze});
    S.savedText = out.text;
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([out.text], {type: "application/json"}));
    a.download = out.filename; document.body.appendChild(a); a.click(); a.remove();
  } catch (e) { showError(e); }
}

function loadFile(ev) {
  const file = ev.target.files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = async () => {
    try { setMaze((await api("/api/load", {text: String(reader.result)})).maze); clearError(); }
    catch (e) { showError(e); }
    ev.target.value = "";
  };
  reader.readAsText(file);
}

// -------------------------------------------------------------------------------------------------- start-up
function patchChanged() {
  const kind = patchSpec() ? patchSpec().kind : "none";
  $("coeff-row").hidden = kind !== "cheese_vector"; $("clamp-row").hidden = kind !== "clamp";
  resetEpisode(); refresh();
}

async function start() {
  try { S.info = await api("/api/info"); } catch (e) { showError(e); return; }
  const info = S.info;
  $("agent").textContent = `agent: ${info.agent.source} (widths ${info.agent.widths.join(", ")})`;
  for (const l of info.layers) {
    const o = document.createElement("option");
    o.value = l.name; o.textContent = `${l.name} (${l.shape.join("x")})`; $("layer").appendChild(o);
  }
  $("layer").value = info.default_layer;
  const setChannelMax = () => {
    const l = info.layers.find((x) => x.name === $("layer").value);
    $("channel").max = String(l.shape[2] - 1);
  };
  setChannelMax();
  $("coeff").min = String(info.coeff_range[0]); $("coeff").max = String(info.coeff_range[1]);
  $("clamp-value").value = String(info.retarget_value);
  $("maze-seed").value = String(info.maze.seed ?? 0);
  const c = $("maze");
  c.addEventListener("pointerdown", onDown); c.addEventListener("pointermove", onMove);
  c.addEventListener("pointerup", onUp); c.addEventListener("pointercancel", () => { drag = null; draw(); });
  $("patched").addEventListener("click", (ev) => {
    if (!patchSpec() || patchSpec().kind !== "clamp") return;
    S.clampSquare = squareAt($("patched"), ev); resetEpisode(); refresh();
  });
  $("layer").addEventListener("change", () => { setChannelMax(); refresh(); });
  $("channel").addEventListener("change", refresh);
  $("show-heat").addEventListener("change", draw);
  $("coeff").addEventListener("input", () => { draw(); resetEpisode(); refresh(); });
  $("clamp-value").addEventListener("change", () => { resetEpisode(); refresh(); });
  document.querySelectorAll("input[name=patch]").forEach((r) => r.addEventListener("change", patchChanged));
  for (const id of ["ep-seed", "greedy", "ep-patched"]) $(id).addEventListener("change", resetEpisode);
  $("step").addEventListener("click", step); $("play").addEventListener("click", play);
  $("reset").addEventListener("click", resetEpisode);
  $("new-maze").addEventListener("click", newMaze);
  $("remove-cheese").addEventListener("click", () => edit("remove_cheese"));
  $("save").addEventListener("click", save); $("load").addEventListener("change", loadFile);
  $("error-close").addEventListener("click", clearError);
  $("coeff-row").hidden = true; $("clamp-row").hidden = true;
  setMaze(info.maze);
}

start();
