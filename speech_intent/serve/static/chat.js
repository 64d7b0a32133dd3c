// speech-intent conversation demo: microphone -> AudioWorklet (16 kHz PCM16) -> WebSocket
// /v1/dialogue/SESSION/stream -> transcript, result, the assistant's response and its spoken audio (Web Audio).
// Barge-in: the user speaking (speech_start or a partial) while an answer plays stops the playback and tells the
// server ({"type": "barge_in"}), which drops the reply's sentences not sent yet.
// An API key can be given as #key=... in the page's address, a session id as #session=...
"use strict";
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.hash.slice(1));
const key = params.get("key");
const session = params.get("session") || "web-" + Math.random().toString(36).slice(2, 10);
let ws = null, ctx = null, media = null, node = null;

// What the page played, for people and tests: {kind: "audio-played" | "audio-ended" | "interrupted" |
// "barge-in-acknowledged" (the server's answer to a barge-in), reply, ...}
const playback = { log: [], sources: new Set(), next: 0, reply: null };
const events = [];  // {type, reply, t} of each event received (the page's own timeline)
window.speechIntentChat = { session, playback, events };

function setStatus(text) { $("status").textContent = text; }

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function mark(entry) {
  playback.log.push({ ...entry, t: performance.now() });
  if (entry.kind !== "barge-in-acknowledged") document.body.dataset.playback = entry.kind;  // the latest
}

const replies = new Map();  // reply number -> its <li>

function addUser(ev) {
  const li = el("li", "user");
  li.dataset.intent = ev.intent || "";
  li.appendChild(el("div", "says", "\u201c" + (ev.transcript || "") + "\u201d"));
  const slots = Object.entries(ev.slots || {}).map(([n, v]) => n + ": " + v).join(", ");
  const conf = ev.confidence === null || ev.confidence === undefined ? "" : " " + (100 * ev.confidence).toFixed(0) + "%";
  li.appendChild(el("div", "meta", (ev.error ? "error: " + ev.error : (ev.intent || "(no intent)") + conf) +
                                   (slots ? " \u00b7 " + slots : "")));
  $("turns").appendChild(li);
}

function addResponse(ev) {
  const li = el("li", "assistant");
  li.dataset.reply = ev.reply;
  li.dataset.action = ev.action || "";
  li.appendChild(el("div", "says", ev.text || ""));
  const state = ev.state || {};
  const pending = state.requested_slot ? "asks for " + state.requested_slot : state.confirming ? "asks to confirm" : "";
  li.appendChild(el("div", "meta", (ev.action || "") + (pending ? " \u00b7 " + pending : "")));
  $("turns").appendChild(li);
  replies.set(ev.reply, li);
}

// ------------------------------------------------------------------ playback
function b64ToBuffer(data) {
  const bytes = atob(data);
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = bytes.charCodeAt(i);
  return out.buffer;
}

async function play(ev) {
  if (!ctx || playback.stopped === ev.reply) return;  // interrupted: its late sentences are not played
  const buffer = await ctx.decodeAudioData(b64ToBuffer(ev.data));
  if (playback.stopped === ev.reply) return;
  const source = ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(ctx.destination);
  const at = Math.max(ctx.currentTime + 0.02, playback.next);
  playback.next = at + buffer.duration;
  playback.reply = ev.reply;
  source.onended = () => {
    if (!playback.sources.delete(source)) return;  // stopped by a barge-in
    if (playback.sources.size === 0) {
      mark({ kind: "audio-ended", reply: ev.reply });
      const li = replies.get(ev.reply);
      if (li) li.classList.remove("speaking");
    }
  };
  playback.sources.add(source);
  source.start(at);
  mark({ kind: "audio-played", reply: ev.reply, index: ev.index, duration: buffer.duration });
  const li = replies.get(ev.reply);
  if (li) li.classList.add("speaking");
}

function bargeIn() {
  if (playback.sources.size === 0) return;  // nothing playing
  const reply = playback.reply;
  for (const source of playback.sources) { try { source.stop(); } catch (e) { /* not started yet */ } }
  playback.sources.clear();
  playback.next = 0;
  playback.stopped = reply;
  mark({ kind: "interrupted", reply });
  const li = replies.get(reply);
  if (li) { li.classList.remove("speaking"); li.classList.add("interrupted"); }
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "barge_in" }));
}

// ------------------------------------------------------------------ events
function onEvent(ev) {
  events.push({ type: ev.type, reply: ev.reply, t: performance.now() });
  if (ev.type === "speech_start") { bargeIn(); setStatus("speech"); $("partial").textContent = "\u2026"; }
  else if (ev.type === "partial") { bargeIn(); $("partial").textContent = ev.transcript || "\u2026"; }
  else if (ev.type === "final") { $("partial").textContent = ev.transcript || ""; addUser(ev); setStatus("thinking"); }
  else if (ev.type === "response") { addResponse(ev); setStatus("listening"); }
  else if (ev.type === "audio") { play(ev).catch((e) => setStatus("error: " + e.message)); }
  else if (ev.type === "interrupted") { mark({ kind: "barge-in-acknowledged", reply: ev.reply, pending: ev.pending }); }
  else if (ev.type === "error") { setStatus("error: " + ev.message); }
}

async function start() {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/dialogue/" +
    encodeURIComponent(session) + "/stream" + (key ? "?api_key=" + encodeURIComponent(key) : "");
  ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (m) => onEvent(JSON.parse(m.data));
  ws.onclose = () => { if (ws) stop("disconnected"); };
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error("WebSocket failed")); });
  ws.send(JSON.stringify({ type: "config", sample_rate: 16000 }));
  media = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
  ctx = new AudioContext();
  await ctx.audioWorklet.addModule("/static/worklet.js");
  node = new AudioWorkletNode(ctx, "pcm16-downsampler");
  node.port.onmessage = (m) => {
    $("level").style.width = Math.min(100, Math.round(140 * Math.sqrt(m.data.level))) + "%";
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(m.data.pcm);
  };
  ctx.createMediaStreamSource(media).connect(node);
  $("mic").textContent = "Stop conversation";
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
  playback.sources.clear();
  playback.next = 0;
  $("level").style.width = "0";
  $("mic").textContent = "Start conversation";
  $("mic").classList.remove("on");
  setStatus(reason || "idle");
}

$("mic").addEventListener("click", () => {
  if (ws) stop(); else start().catch((e) => { stop("error: " + e.message); });
});
