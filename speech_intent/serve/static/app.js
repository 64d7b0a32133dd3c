// speech-intent demo: microphone -> AudioWorklet (16 kHz PCM16) -> WebSocket /v1/stream -> events;
// dropped files -> POST /v1/predict. An API key can be given as #key=... in the page's address.
"use strict";
const $ = (id) => document.getElementById(id);
const key = new URLSearchParams(location.hash.slice(1)).get("key");
let ws = null, ctx = null, media = null, node = null;

function setStatus(text) { $("status").textContent = text; }

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

const streamed = new Map();  // utterance number -> its result row (a revised final replaces it)

function showResult(row, source, utterance) {
  const li = el("li", "result");
  li.dataset.intent = row.intent === null || row.intent === undefined ? "" : row.intent;
  if (row.error) {
    li.appendChild(el("div", "error", row.error));
  } else {
    const head = el("div");
    head.appendChild(el("span", "intent", row.intent || "(no intent)"));
    if (row.confidence !== null && row.confidence !== undefined)
      head.appendChild(el("span", "conf", (100 * row.confidence).toFixed(1) + "%"));
    li.appendChild(head);
    li.appendChild(el("div", "transcript", "\u201c" + (row.transcript || "") + "\u201d"));
    const slots = el("div", "slots");
    for (const [name, value] of Object.entries(row.slots || {})) slots.appendChild(el("span", "slot", name + ": " + value));
    li.appendChild(slots);
  }
  if (source) li.appendChild(el("div", "conf", source));
  const old = utterance === undefined ? null : streamed.get(utterance);
  if (old && old.parentNode) old.replaceWith(li); else $("results").prepend(li);
  if (utterance !== undefined) streamed.set(utterance, li);
}

function onEvent(ev) {
  if (ev.type === "speech_start") { setStatus("speech"); $("partial").textContent = "\u2026"; }
  else if (ev.type === "partial") { $("partial").textContent = ev.transcript || "\u2026"; }
  else if (ev.type === "final") {
    $("partial").textContent = ev.transcript || "";
    const revised = ev.revises !== undefined ? " (revised)" : "";
    showResult({ ...ev.result, transcript: ev.transcript, intent: ev.intent, confidence: ev.confidence,
                 slots: ev.slots, error: ev.error }, ev.start.toFixed(2) + "\u2013" + ev.end.toFixed(2) + " s" + revised,
               ev.utterance);
    setStatus("listening");
  } else if (ev.type === "error") { setStatus("error: " + ev.message); }
}

async function start() {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/stream" +
    (key ? "?api_key=" + encodeURIComponent(key) : "");
  ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (m) => onEvent(JSON.parse(m.data));
  ws.onclose = () => { if (ws) stop("disconnected"); };
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error("WebSocket failed")); });
  ws.send(JSON.stringify({ type: "config", sample_rate: 16000, revisions: true }));  // a revised final replaces its row
  media = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
  ctx = new AudioContext();
  await ctx.audioWorklet.addModule("/static/worklet.js");
  node = new AudioWorkletNode(ctx, "pcm16-downsampler");
  node.port.onmessage = (m) => {
    $("level").style.width = Math.min(100, Math.round(140 * Math.sqrt(m.data.level))) + "%";
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(m.data.pcm);
  };
  ctx.createMediaStreamSource(media).connect(node);
  $("mic").textContent = "Stop microphone";
  $("mic").classList.add("on");
  setStatus("listening");
}

function stop(reason) {
  const socket = ws;
  ws = null;
  if (socket && socket.readyState === WebSocket.OPEN) { socket.send(JSON.stringify({ type: "end" })); setTimeout(() => socket.close(), 3000); }
  if (node) node.disconnect();
  if (ctx) ctx.close();
  if (media) media.getTracks().forEach((t) => t.stop());
  node = ctx = media = null;
  $("level").style.width = "0";
  $("mic").textContent = "Start microphone";
  $("mic").classList.remove("on");
  streamed.clear();  // utterance numbers start again with the next stream
  setStatus(reason || "idle");
}

$("mic").addEventListener("click", () => {
  if (ws) stop(); else start().catch((e) => { stop("error: " + e.message); });
});

async function upload(files) {
  const form = new FormData();
  for (const f of files) form.append("files", f, f.name);
  setStatus("uploading");
  const headers = key ? { "X-API-Key": key } : {};
  try {
    const r = await fetch("/v1/predict", { method: "POST", body: form, headers });
    const body = await r.json();
    if (!r.ok) showResult({ error: body.error ? body.error.message : r.statusText });
    else for (const row of body.results) showResult(row, row.path);
    setStatus(ws ? "listening" : "idle");
  } catch (e) { setStatus("error: " + e.message); }
}

const drop = $("drop");
drop.addEventListener("click", () => $("file").click());
$("file").addEventListener("change", (e) => upload(e.target.files));
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); upload(e.dataTransfer.files); });
