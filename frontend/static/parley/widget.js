/*
 * Parley caller widget: one script tag adds a voice call to any web page.
 *
 *   <script src="https://HOST/static/parley/widget.js" data-agent="SLUG"
 *           data-key="PUBLISHABLE_KEY" defer></script>
 *
 * Optional attributes: data-label (button text), data-mode="inline" with data-target="#id"
 * (render in that element instead of a floating button), data-token-url + data-csrf (the
 * dashboard's test calls: a same-origin, logged-in token endpoint).
 *
 * Audio: microphone → AudioWorklet at the device's native rate → low-pass + resample to
 * 16 kHz PCM16 in 20 ms frames (640 bytes) → WebSocket. Agent audio (PCM16 24 kHz) → a playback
 * AudioWorklet with a small jitter buffer, resampled to the native rate; on `interrupted` the
 * queue is dropped within one render quantum (128 samples). Protocol: docs/protocol.md;
 * embedding, events and the JS API: docs/widget.md.
 *
 * No framework, no build step, styles isolated in a shadow root, text always set as text.
 */
(() => {
  "use strict";

  const script = document.currentScript;
  if (!script) {
    console.error("parley: load widget.js with a classic <script> tag (not a module)");
    return;
  }

  const PING_INTERVAL_MS = 2000;
  const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000];
  // Refusals and call limits (docs/protocol.md#limits): reconnecting would not help.
  const FATAL_CLOSE_CODES = new Set([4401, 4403, 4404, 4408, 4413, 4429, 4503]);

  const config = {
    agent: script.dataset.agent || "",
    key: script.dataset.key || "",
    tokenUrl: script.dataset.tokenUrl || "",
    csrf: script.dataset.csrf || "",
    mode: script.dataset.mode === "inline" ? "inline" : "floating",
    target: script.dataset.target || "",
    label: script.dataset.label || "Talk to us",
    base: new URL(script.src, location.href).origin,
  };

  // ------------------------------------------------------------------ worklets (as source)
  // Loaded from Blob URLs so a page on any origin can use them without CORS on the worklet.

  function captureWorklet() {
    /* global sampleRate, registerProcessor, AudioWorkletProcessor */
    const OUT_RATE = 16000;
    const FRAME = 320;

    // Windowed-sinc (Blackman) low-pass below the output Nyquist frequency.
    function lowpass(inRate) {
      const ratio = inRate / OUT_RATE;
      if (ratio <= 1) return new Float32Array([1]);
      const taps = Math.max(15, Math.round(ratio * 10) | 1);
      const fc = (0.45 * OUT_RATE) / inRate; // cycles per input sample
      const h = new Float32Array(taps);
      const m = (taps - 1) / 2;
      let sum = 0;
      for (let n = 0; n < taps; n++) {
        const x = n - m;
        const sinc = x === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * x) / (Math.PI * x);
        const w =
          0.42 - 0.5 * Math.cos((2 * Math.PI * n) / (taps - 1)) +
          0.08 * Math.cos((4 * Math.PI * n) / (taps - 1));
        h[n] = sinc * w;
        sum += h[n];
      }
      for (let n = 0; n < taps; n++) h[n] /= sum;
      return h;
    }

    class ParleyCapture extends AudioWorkletProcessor {
      constructor() {
        super();
        this.step = sampleRate / OUT_RATE; // input samples per output sample
        this.h = lowpass(sampleRate);
        this.history = new Float32Array(this.h.length - 1); // filter state
        this.filtered = new Float32Array(0); // filtered input not yet resampled
        this.t = 0; // read position in `filtered`
        this.frame = new Int16Array(FRAME);
        this.fill = 0;
        this.levelSum = 0;
        this.levelN = 0;
        this.muted = false;
        this.port.onmessage = (e) => {
          if (e.data && e.data.type === "mute") this.muted = !!e.data.muted;
        };
      }

      process(inputs) {
        const input = inputs[0] && inputs[0][0];
        if (!input) return true;
        const h = this.h;
        const k = h.length;
        // FIR over [history, input]
        const x = new Float32Array(this.history.length + input.length);
        x.set(this.history);
        x.set(input, this.history.length);
        const y = new Float32Array(input.length);
        for (let i = 0; i < input.length; i++) {
          let acc = 0;
          for (let j = 0; j < k; j++) acc += h[j] * x[i + j];
          y[i] = acc;
        }
        this.history = x.slice(x.length - (k - 1));
        const buf = new Float32Array(this.filtered.length + y.length);
        buf.set(this.filtered);
        buf.set(y, this.filtered.length);
        // Linear interpolation at the output rate.
        let t = this.t;
        while (t + 1 < buf.length) {
          const i = Math.floor(t);
          const frac = t - i;
          let s = buf[i] * (1 - frac) + buf[i + 1] * frac;
          if (this.muted) s = 0;
          this.levelSum += s * s;
          this.levelN++;
          s = Math.max(-1, Math.min(1, s));
          this.frame[this.fill++] = s < 0 ? s * 0x8000 : s * 0x7fff;
          if (this.fill === FRAME) {
            const out = this.frame;
            this.port.postMessage({ type: "frame", pcm: out.buffer }, [out.buffer]);
            this.frame = new Int16Array(FRAME);
            this.fill = 0;
          }
          t += this.step;
        }
        const used = Math.floor(t);
        this.filtered = buf.slice(used);
        this.t = t - used;
        if (this.levelN >= OUT_RATE / 10) {
          this.port.postMessage({ type: "level", rms: Math.sqrt(this.levelSum / this.levelN) });
          this.levelSum = 0;
          this.levelN = 0;
        }
        return true;
      }
    }
    registerProcessor("parley-capture", ParleyCapture);
  }

  function playbackWorklet() {
    /* global sampleRate, currentTime, registerProcessor, AudioWorkletProcessor */
    const IN_RATE = 24000;
    const PREBUFFER = Math.round(IN_RATE * 0.04); // 40 ms jitter buffer before a reply plays
    const FADE = 48; // output samples of fade-out on a flush or an underrun (no click)

    class ParleyPlayback extends AudioWorkletProcessor {
      constructor() {
        super();
        this.step = IN_RATE / sampleRate; // input samples per output sample
        this.chunks = []; // {pcm: Float32Array, turn}
        this.offset = 0; // read position in chunks[0] (fractional)
        this.queued = 0; // input samples queued
        this.playing = false;
        this.ending = false; // the reply's last audio has arrived: play out below the prebuffer
        this.flushPending = false;
        this.last = 0; // last output sample (for fades)
        this.played = 0; // input samples played since the call began
        this.reported = new Set();
        this.statsEvery = Math.round(sampleRate / 10);
        this.sinceStats = 0;
        this.port.onmessage = (e) => {
          const m = e.data;
          if (m.type === "audio") {
            const pcm16 = new Int16Array(m.pcm);
            const f = new Float32Array(pcm16.length);
            for (let i = 0; i < pcm16.length; i++) f[i] = pcm16[i] / 32768;
            this.chunks.push({ pcm: f, turn: m.turn });
            this.queued += f.length;
            this.ending = false;
          } else if (m.type === "end") {
            this.ending = true;
          } else if (m.type === "flush") {
            this.flushPending = true;
          }
        };
      }

      sampleAt(chunk, pos) {
        // Linear interpolation; the next sample may be in the following chunk.
        const i = Math.floor(pos);
        const frac = pos - i;
        const a = chunk.pcm[i];
        let b = a;
        if (i + 1 < chunk.pcm.length) b = chunk.pcm[i + 1];
        else if (this.chunks.length > 1) b = this.chunks[1].pcm[0];
        return a + (b - a) * frac;
      }

      process(_inputs, outputs) {
        const out = outputs[0][0];
        const n = out.length;
        if (this.flushPending) {
          // Stop now: drop everything queued and fade the current block to silence.
          const dropped = this.queued;
          this.chunks = [];
          this.queued = 0;
          this.offset = 0;
          this.playing = false;
          this.flushPending = false;
          for (let i = 0; i < n; i++) out[i] = i < FADE ? this.last * (1 - i / FADE) : 0;
          this.last = 0;
          this.port.postMessage({ type: "flushed", dropped, played: this.played, at: currentTime });
          return true;
        }
        if (!this.playing && (this.queued >= PREBUFFER || (this.ending && this.queued > 0))) {
          this.playing = true;
        }
        let i = 0;
        if (this.playing) {
          while (i < n && this.chunks.length) {
            const chunk = this.chunks[0];
            if (chunk.turn !== null && chunk.turn !== undefined && !this.reported.has(chunk.turn)) {
              this.reported.add(chunk.turn);
              this.port.postMessage({
                type: "started",
                turn: chunk.turn,
                at: currentTime + i / sampleRate,
              });
            }
            const s = this.sampleAt(chunk, this.offset);
            out[i++] = s;
            this.last = s;
            const before = Math.floor(this.offset);
            this.offset += this.step;
            const consumed = Math.floor(this.offset) - before;
            this.played += consumed;
            this.queued -= consumed;
            if (this.offset >= chunk.pcm.length) {
              this.offset -= chunk.pcm.length;
              this.chunks.shift();
            }
          }
          if (!this.chunks.length) {
            this.playing = false; // underrun or the reply's end
            this.queued = 0;
          }
        }
        // Fill the rest of the block: a short fade from the last sample, then silence.
        for (let f = 0; i < n; i++, f++) {
          out[i] = f < FADE ? this.last * (1 - f / FADE) : 0;
        }
        if (!this.playing) this.last = 0;
        this.sinceStats += n;
        if (this.sinceStats >= this.statsEvery) {
          this.sinceStats = 0;
          this.port.postMessage({
            type: "stats",
            played: this.played,
            queued: Math.max(0, this.queued),
            playing: this.playing,
          });
        }
        return true;
      }
    }
    registerProcessor("parley-playback", ParleyPlayback);
  }

  function workletUrl(fn) {
    const blob = new Blob([`(${fn.toString()})();`], { type: "application/javascript" });
    return URL.createObjectURL(blob);
  }

  // ------------------------------------------------------------------ UI

  const STATE_LABELS = {
    idle: "Ready to call",
    connecting: "Connecting…",
    listening: "Listening",
    thinking: "Thinking…",
    speaking: "Speaking",
    reconnecting: "Connection lost, reconnecting…",
    ended: "Call ended",
    error: "Something went wrong",
  };

  const STYLE = `
    :host { all: initial; }
    * { box-sizing: border-box; }
    .root { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
      color: #0f172a; }
    .floating { position: fixed; right: 20px; bottom: 20px; z-index: 2147483000;
      display: flex; flex-direction: column; align-items: flex-end; gap: 12px; }
    .launcher { display: inline-flex; align-items: center; gap: 8px; border: 0;
      border-radius: 999px; padding: 12px 18px; background: #2a5bd7; color: #fff;
      font: 600 15px/1 inherit; font-family: inherit; cursor: pointer;
      box-shadow: 0 8px 24px rgba(15, 23, 42, .25); }
    .launcher:hover { background: #1e47b3; }
    button:focus-visible { outline: 3px solid #93b4ff; outline-offset: 2px; }
    .panel { width: 340px; max-width: calc(100vw - 40px); background: #fff;
      border: 1px solid #e2e8f0; border-radius: 16px; overflow: hidden;
      box-shadow: 0 16px 48px rgba(15, 23, 42, .18); display: flex; flex-direction: column; }
    .inline .panel { width: 100%; max-width: none; box-shadow: none; }
    .panel[hidden] { display: none; }
    header { display: flex; align-items: center; gap: 12px; padding: 14px 16px;
      border-bottom: 1px solid #eef2f7; }
    .orb { width: 36px; height: 36px; border-radius: 50%; background: #e2e8f0;
      flex: none; position: relative; transition: background .2s; }
    .orb::after { content: ""; position: absolute; inset: -4px; border-radius: 50%;
      border: 2px solid transparent; }
    .s-listening .orb { background: #16a34a; }
    .s-listening .orb::after { border-color: rgba(22, 163, 74, var(--level, .15)); }
    .s-thinking .orb { background: #f59e0b; animation: pulse 1s infinite; }
    .s-speaking .orb { background: #2a5bd7; animation: pulse .8s infinite; }
    .s-connecting .orb, .s-reconnecting .orb { background: #94a3b8; animation: pulse 1.2s infinite; }
    .s-error .orb { background: #dc2626; }
    @keyframes pulse { 50% { transform: scale(.88); } }
    @media (prefers-reduced-motion: reduce) { .orb { animation: none !important; } }
    .who { flex: 1; min-width: 0; }
    .name { font-weight: 600; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
    .status { color: #475569; font-size: 13px; }
    .captions { height: 260px; overflow-y: auto; padding: 12px 16px; display: flex;
      flex-direction: column; gap: 8px; background: #f8fafc; }
    .inline .captions { height: 320px; }
    .empty { color: #64748b; text-align: center; margin: auto; max-width: 240px; }
    .line { max-width: 85%; padding: 8px 12px; border-radius: 12px; white-space: pre-wrap;
      word-wrap: break-word; }
    .line.caller { align-self: flex-end; background: #2a5bd7; color: #fff;
      border-bottom-right-radius: 4px; }
    .line.agent { align-self: flex-start; background: #fff; border: 1px solid #e2e8f0;
      border-bottom-left-radius: 4px; }
    .line.partial { opacity: .7; font-style: italic; }
    .line.cut::after { content: " — interrupted"; color: #94a3b8; font-size: 12px; }
    .error { color: #b91c1c; background: #fef2f2; border-top: 1px solid #fecaca;
      padding: 8px 16px; font-size: 13px; }
    .error[hidden] { display: none; }
    footer { display: flex; gap: 8px; padding: 12px 16px; border-top: 1px solid #eef2f7; }
    footer button { flex: 1; border-radius: 10px; padding: 10px 12px; font: 600 14px/1 inherit;
      font-family: inherit; cursor: pointer; border: 1px solid #cbd5e1; background: #fff;
      color: #0f172a; }
    footer button.primary { background: #2a5bd7; border-color: #2a5bd7; color: #fff; }
    footer button.danger { background: #dc2626; border-color: #dc2626; color: #fff; }
    footer button[hidden] { display: none; }
    footer button[aria-pressed="true"] { background: #fef3c7; border-color: #f59e0b; }
    .brand { font-size: 11px; color: #94a3b8; text-align: center; padding: 0 0 8px; }
  `;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function micIcon() {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    for (const [k, v] of Object.entries({
      viewBox: "0 0 24 24", width: "18", height: "18", fill: "none", stroke: "currentColor",
      "stroke-width": "2", "stroke-linecap": "round", "aria-hidden": "true",
    })) svg.setAttribute(k, v);
    for (const d of ["M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z",
                     "M19 11a7 7 0 0 1-14 0", "M12 18v3"]) {
      const path = document.createElementNS(ns, "path");
      path.setAttribute("d", d);
      svg.appendChild(path);
    }
    return svg;
  }

  // ------------------------------------------------------------------ the widget

  class ParleyWidget {
    constructor(host) {
      this.host = host;
      this.state = "idle";
      this.ws = null;
      this.ctx = null;
      this.stream = null;
      this.capture = null;
      this.playback = null;
      this.active = false; // a call is wanted (between start and hang-up)
      this.attempt = 0;
      this.speakingTurn = null;
      this.firstFrameAt = {}; // turn -> performance.now() of its first audio frame
      this.rttMs = null;
      this.pings = new Map();
      this.pingTimer = null;
      this.reconnectTimer = null;
      this.lines = new Map(); // "caller:N" | "agent:N" -> element
      this.stats = {
        receivedSamples: 0, // agent audio samples (24 kHz) received
        playedSamples: 0, // agent audio samples that went through the playback worklet
        queuedSamples: 0,
        sentFrames: 0, // 20 ms microphone frames sent
        flushes: [], // {turn, dropped, atMs} on each `interrupted`
        playbackStarts: [], // {turn, playout_delay_ms, rtt_ms}
        conversationIds: [],
        sampleRateHz: null, // the device's native rate
      };
      this.render();
    }

    // ---------------------------------------------------------------- rendering

    render() {
      const shadow = this.host.attachShadow({ mode: "open" });
      shadow.appendChild(el("style", {}, STYLE));
      const root = el("div", { class: `root ${config.mode} s-idle`, part: "root" });
      this.root = root;
      const panel = el("section", {
        class: "panel",
        role: "dialog",
        "aria-label": "Voice call",
      });
      const header = el("header");
      header.appendChild(el("div", { class: "orb", "aria-hidden": "true" }));
      const who = el("div", { class: "who" });
      this.nameEl = el("div", { class: "name" }, "Voice assistant");
      this.statusEl = el("div", { class: "status", role: "status", "aria-live": "polite" });
      who.append(this.nameEl, this.statusEl);
      header.appendChild(who);
      this.captionsEl = el("div", {
        class: "captions",
        role: "log",
        "aria-live": "polite",
        "aria-label": "Live captions",
      });
      this.emptyEl = el(
        "p",
        { class: "empty" },
        "Press Start call and speak. Captions of the conversation appear here."
      );
      this.captionsEl.appendChild(this.emptyEl);
      this.errorEl = el("div", { class: "error", role: "alert", hidden: "" });
      const footer = el("footer");
      this.startBtn = el("button", { type: "button", class: "primary" }, "Start call");
      this.muteBtn = el("button", { type: "button", "aria-pressed": "false", hidden: "" }, "Mute");
      this.hangupBtn = el("button", { type: "button", class: "danger", hidden: "" }, "Hang up");
      this.startBtn.addEventListener("click", () => this.start());
      this.hangupBtn.addEventListener("click", () => this.hangup());
      this.muteBtn.addEventListener("click", () => this.toggleMute());
      footer.append(this.startBtn, this.muteBtn, this.hangupBtn);
      panel.append(header, this.captionsEl, this.errorEl, footer);
      panel.appendChild(el("div", { class: "brand" }, "Voice by Parley"));
      panel.addEventListener("keydown", (e) => {
        if (e.key === "Escape" && this.active) this.hangup();
      });
      this.panel = panel;
      if (config.mode === "floating") {
        panel.hidden = true;
        this.launcher = el("button", {
          type: "button",
          class: "launcher",
          "aria-expanded": "false",
          "aria-label": `${config.label}: open the voice call panel`,
        });
        this.launcher.appendChild(micIcon());
        this.launcher.appendChild(el("span", {}, config.label));
        this.launcher.addEventListener("click", () => this.togglePanel());
        root.classList.add("floating");
        root.append(panel, this.launcher);
      } else {
        root.appendChild(panel);
      }
      shadow.appendChild(root);
      this.setState("idle");
    }

    togglePanel() {
      const open = this.panel.hidden;
      this.panel.hidden = !open;
      this.launcher.setAttribute("aria-expanded", String(open));
      if (open) this.startBtn.focus();
    }

    setState(state, detail) {
      this.state = state;
      this.root.className = this.root.className.replace(/\bs-\w+/g, "").trim() + ` s-${state}`;
      this.statusEl.textContent = detail || STATE_LABELS[state] || state;
      this.host.setAttribute("data-state", state);
      const inCall = ["connecting", "listening", "thinking", "speaking", "reconnecting"].includes(
        state
      );
      this.startBtn.hidden = inCall;
      this.startBtn.textContent = state === "idle" ? "Start call" : "Call again";
      this.hangupBtn.hidden = !inCall;
      this.muteBtn.hidden = !inCall;
      this.dispatch("parley:state", { state, detail: detail || "" });
    }

    showError(message) {
      this.errorEl.textContent = message;
      this.errorEl.hidden = !message;
    }

    caption(role, turn, text, { partial = false, append = false } = {}) {
      const id = `${role}:${turn}`;
      let line = this.lines.get(id);
      if (!line) {
        if (!text) return;
        line = el("div", { class: `line ${role}`, "data-turn": String(turn) });
        this.lines.set(id, line);
        this.emptyEl.remove();
        this.captionsEl.appendChild(line);
      }
      line.textContent = append && line.textContent ? `${line.textContent} ${text}` : text;
      line.classList.toggle("partial", partial);
      this.captionsEl.scrollTop = this.captionsEl.scrollHeight;
    }

    dispatch(type, detail) {
      this.host.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
    }

    // ---------------------------------------------------------------- call life cycle

    async start() {
      if (this.active) return;
      this.active = true;
      this.attempt = 0;
      this.showError("");
      for (const line of this.lines.values()) line.remove();
      this.lines.clear();
      this.setState("connecting");
      try {
        await this.openAudio();
      } catch (err) {
        this.fail(
          err && err.name === "NotAllowedError"
            ? "Microphone access was refused. Allow the microphone and try again."
            : `Could not open the microphone: ${err && err.message ? err.message : err}`
        );
        return;
      }
      await this.connect();
    }

    async openAudio() {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: {
          channelCount: 1,
          echoCancellation: true,
          noiseSuppression: true,
          autoGainControl: true,
        },
      });
      this.ctx = new AudioContext({ latencyHint: "interactive" }); // native rate
      this.stats.sampleRateHz = this.ctx.sampleRate;
      await this.ctx.audioWorklet.addModule(workletUrl(captureWorklet));
      await this.ctx.audioWorklet.addModule(workletUrl(playbackWorklet));
      // Whether the browser really cancels echo: without it the server gates its VAD against
      // the agent's own voice (the `aec` query parameter, docs/protocol.md).
      const track = this.stream.getAudioTracks()[0];
      const trackSettings = track && track.getSettings ? track.getSettings() : {};
      this.echoCancellation =
        typeof trackSettings.echoCancellation === "boolean" ? trackSettings.echoCancellation : null;
      const source = this.ctx.createMediaStreamSource(this.stream);
      this.capture = new AudioWorkletNode(this.ctx, "parley-capture", {
        numberOfInputs: 1,
        numberOfOutputs: 0,
        channelCount: 1,
        channelCountMode: "explicit",
      });
      this.capture.port.onmessage = (e) => this.onCapture(e.data);
      source.connect(this.capture);
      this.playback = new AudioWorkletNode(this.ctx, "parley-playback", {
        numberOfInputs: 0,
        numberOfOutputs: 1,
        outputChannelCount: [1],
      });
      this.playback.port.onmessage = (e) => this.onPlayback(e.data);
      this.playback.connect(this.ctx.destination);
      if (this.ctx.state !== "running") await this.ctx.resume();
    }

    async fetchToken() {
      if (config.tokenUrl) {
        const response = await fetch(config.tokenUrl, {
          method: "POST",
          credentials: "same-origin",
          headers: { "X-CSRFToken": config.csrf, "Content-Type": "application/json" },
          body: "{}",
        });
        const body = await response.json().catch(() => ({}));
        if (!response.ok) throw new Error(body.message || `token request failed (${response.status})`);
        return body;
      }
      const response = await fetch(`${config.base}/api/v1/call-tokens`, {
        method: "POST",
        mode: "cors",
        credentials: "omit",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ agent: config.agent, key: config.key }),
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        const err = new Error(body.message || `token request failed (${response.status})`);
        err.fatal = response.status === 403 || response.status === 400;
        throw err;
      }
      return body;
    }

    async connect() {
      let grant;
      try {
        grant = await this.fetchToken();
      } catch (err) {
        if (err.fatal || !this.active) return this.fail(err.message);
        return this.retry(err.message);
      }
      if (!this.active) return;
      if (grant.agent && grant.agent.name) this.nameEl.textContent = grant.agent.name;
      let url = `${grant.ws_url}?token=${encodeURIComponent(grant.token)}`;
      if (this.echoCancellation !== null) url += `&aec=${this.echoCancellation ? 1 : 0}`;
      const ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      ws.onopen = () => {
        this.attempt = 0;
      };
      ws.onmessage = (e) => {
        if (typeof e.data === "string") this.onEvent(JSON.parse(e.data));
        else this.onAudio(e.data);
      };
      ws.onclose = (e) => this.onClose(ws, e);
    }

    onClose(ws, e) {
      if (ws !== this.ws) return;
      clearInterval(this.pingTimer);
      this.ws = null;
      this.stopPlayback();
      if (!this.active) return;
      if (FATAL_CLOSE_CODES.has(e.code) || e.code === 1000) {
        if (this.state !== "error") this.finish();
        return;
      }
      this.retry(`connection closed (${e.code})`);
    }

    retry(reason) {
      if (this.attempt >= RECONNECT_DELAYS_MS.length) {
        return this.fail(`Could not reach the assistant (${reason}).`);
      }
      const delay = RECONNECT_DELAYS_MS[this.attempt++];
      this.setState("reconnecting", `${STATE_LABELS.reconnecting} (${this.attempt})`);
      this.reconnectTimer = setTimeout(() => {
        if (this.active) this.connect();
      }, delay);
    }

    hangup() {
      if (!this.active) return;
      const ws = this.ws;
      if (ws && ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ type: "hangup" }));
        // The server answers with call.ended and closes; don't wait longer than a second.
        setTimeout(() => ws.readyState !== WebSocket.CLOSED && ws.close(1000), 1000);
      }
      this.finish();
    }

    finish() {
      this.active = false;
      this.release();
      this.setState("ended");
    }

    fail(message) {
      this.active = false;
      if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000);
      this.release();
      this.showError(message);
      this.setState("error", message);
    }

    release() {
      clearInterval(this.pingTimer);
      clearTimeout(this.reconnectTimer);
      if (this.stream) for (const track of this.stream.getTracks()) track.stop();
      this.stream = null;
      if (this.ctx) this.ctx.close().catch(() => {});
      this.ctx = null;
      this.capture = null;
      this.playback = null;
    }

    toggleMute() {
      const muted = this.muteBtn.getAttribute("aria-pressed") !== "true";
      this.muteBtn.setAttribute("aria-pressed", String(muted));
      this.muteBtn.textContent = muted ? "Unmute" : "Mute";
      if (this.capture) this.capture.port.postMessage({ type: "mute", muted });
    }

    // ---------------------------------------------------------------- audio

    onCapture(message) {
      if (message.type === "frame") {
        if (this.ws && this.ws.readyState === WebSocket.OPEN) {
          this.ws.send(message.pcm);
          this.stats.sentFrames++;
        }
      } else if (message.type === "level") {
        this.root.style.setProperty("--level", String(Math.min(1, message.rms * 8).toFixed(2)));
      }
    }

    onAudio(buffer) {
      if (!this.playback) return;
      const turn = this.speakingTurn;
      if (turn !== null && this.firstFrameAt[turn] === undefined) {
        this.firstFrameAt[turn] = performance.now();
      }
      this.stats.receivedSamples += buffer.byteLength / 2;
      this.playback.port.postMessage({ type: "audio", pcm: buffer, turn }, [buffer]);
    }

    onPlayback(message) {
      if (message.type === "stats") {
        this.stats.playedSamples = message.played;
        this.stats.queuedSamples = message.queued;
        if (!message.playing && this.state === "speaking" && this.replyDone) {
          this.setState("listening");
        }
      } else if (message.type === "started") {
        this.reportPlayback(message.turn, message.at);
      } else if (message.type === "flushed") {
        const flush = this.stats.flushes[this.stats.flushes.length - 1];
        if (flush && flush.dropped === undefined) {
          flush.dropped = message.dropped;
          flush.played = message.played;
          flush.stoppedAfterMs = performance.now() - flush.atMs;
        }
        this.stats.queuedSamples = 0;
      }
    }

    /** When the worklet rendered the first sample of a reply: tell the server (turn, delay). */
    reportPlayback(turn, contextTime) {
      const received = this.firstFrameAt[turn];
      if (received === undefined || !this.ctx) return;
      let playedAt = performance.now();
      const ts = this.ctx.getOutputTimestamp ? this.ctx.getOutputTimestamp() : null;
      if (ts && ts.performanceTime > 0) {
        // The output timestamp maps context time to when that sample leaves the speaker.
        playedAt = ts.performanceTime + (contextTime - ts.contextTime) * 1000;
      } else {
        playedAt += ((this.ctx.outputLatency || 0) + (this.ctx.baseLatency || 0)) * 1000;
      }
      const report = {
        type: "playback.started",
        turn,
        playout_delay_ms: Math.max(0, Math.round((playedAt - received) * 10) / 10),
        rtt_ms: this.rttMs === null ? null : Math.round(this.rttMs * 10) / 10,
      };
      this.stats.playbackStarts.push(report);
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(report));
    }

    stopPlayback() {
      if (this.playback) this.playback.port.postMessage({ type: "flush" });
    }

    sendPing() {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
      const id = Math.floor(Math.random() * 1e9);
      this.pings.set(id, performance.now());
      this.ws.send(JSON.stringify({ type: "ping", id }));
    }

    // ---------------------------------------------------------------- server events

    onEvent(event) {
      this.dispatch("parley:event", event);
      // After a hang-up the server still sends the call's last events (`interrupted` of the
      // reply cut short, `call.ended`): they are reported, but the call's state is settled.
      if (!this.active && event.type !== "pong") return;
      const turn = event.turn;
      switch (event.type) {
        case "session.started":
          if (event.conversation_id) this.stats.conversationIds.push(event.conversation_id);
          this.setState("listening");
          // Round trips are measured once the server listens (not during call set-up).
          this.sendPing();
          clearInterval(this.pingTimer);
          this.pingTimer = setInterval(() => this.sendPing(), PING_INTERVAL_MS);
          break;
        case "pong": {
          const sent = this.pings.get(event.id);
          if (sent !== undefined) {
            this.pings.delete(event.id);
            const rtt = performance.now() - sent;
            this.rttMs = this.rttMs === null ? rtt : 0.7 * this.rttMs + 0.3 * rtt;
          }
          break;
        }
        case "transcript.partial":
          this.caption("caller", turn, event.text, { partial: true });
          break;
        case "transcript.final":
          this.caption("caller", turn, event.text);
          if (event.text) this.setState("thinking");
          break;
        case "vad.speech_end":
          if (this.state === "listening") this.setState("thinking");
          break;
        case "agent.text":
          this.caption("agent", turn, event.text, { append: true });
          break;
        case "agent.speaking":
          this.speakingTurn = turn;
          this.replyDone = false;
          this.setState("speaking");
          break;
        case "agent.done":
          this.replyDone = true;
          if (this.playback) this.playback.port.postMessage({ type: "end" });
          break;
        case "agent.paused":
          // The caller started speaking: stop at once; `agent.resumed` (the server re-sends
          // what was dropped) or `interrupted` follows.
          this.stats.flushes.push({ turn, atMs: performance.now(), pause: true });
          this.stopPlayback();
          break;
        case "turn.continued": {
          // The caller went on talking: the reply that had not been heard yet is withdrawn.
          const withdrawn = this.lines.get(`agent:${turn}`);
          if (withdrawn) withdrawn.remove();
          this.lines.delete(`agent:${turn}`);
          this.setState("listening");
          break;
        }
        case "interrupted": {
          this.stats.flushes.push({ turn, atMs: performance.now() });
          this.stopPlayback();
          this.speakingTurn = null;
          const line = this.lines.get(`agent:${turn}`);
          if (line) {
            line.textContent = event.spoken_text || "";
            line.classList.add("cut");
          }
          this.setState("listening");
          break;
        }
        case "turn.ended":
          if (this.speakingTurn === turn) this.speakingTurn = null;
          if (this.state === "thinking") this.setState("listening");
          break;
        case "error":
          if (event.fatal) {
            this.fail(event.message || "The call could not continue.");
          } else {
            console.warn("parley:", event.code, event.message);
          }
          break;
        case "call.ended":
          if (this.active) this.finish();
          break;
        default:
          break;
      }
    }
  }

  // ------------------------------------------------------------------ mount

  function mount() {
    if (!config.agent || (!config.key && !config.tokenUrl)) {
      console.error("parley: the widget needs data-agent and data-key attributes");
      return;
    }
    let parent = document.body;
    if (config.mode === "inline") {
      parent = config.target ? document.querySelector(config.target) : null;
      if (!parent) {
        console.error(`parley: data-target ${config.target} matches no element`);
        return;
      }
    }
    const host = document.createElement("parley-widget");
    host.setAttribute("data-agent", config.agent);
    parent.appendChild(host);
    const widget = new ParleyWidget(host);
    // A small JS API on the element (docs/widget.md).
    host.parley = {
      start: () => widget.start(),
      hangup: () => widget.hangup(),
      get state() {
        return widget.state;
      },
      get stats() {
        return widget.stats;
      },
      /** True while the widget holds a live microphone track (false after hang-up). */
      get microphoneLive() {
        return !!widget.stream && widget.stream.getTracks().some((t) => t.readyState === "live");
      },
    };
    window.addEventListener("pagehide", () => widget.hangup());
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
  else mount();
})();
