// AudioWorklet: microphone samples (at the context's rate) -> 16 kHz PCM16 frames of 20 ms + a level.
class PCM16Downsampler extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / 16000; // input samples per output sample
    this.pos = 0;                    // fractional read position into the input stream
    this.prev = 0;
    this.frame = new Int16Array(320);
    this.n = 0;
    this.peak = 0;
  }
  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    // box-average over each output period (anti-aliasing), then take the sample
    let acc = 0, count = 0;
    for (let i = 0; i < input.length; i++) {
      const x = input[i];
      acc += x; count++;
      this.pos += 1;
      if (this.pos >= this.ratio) {
        this.pos -= this.ratio;
        const y = Math.max(-1, Math.min(1, acc / count));
        acc = 0; count = 0;
        this.peak = Math.max(this.peak, Math.abs(y));
        this.frame[this.n++] = y < 0 ? y * 32768 : y * 32767;
        if (this.n === this.frame.length) {
          this.port.postMessage({ pcm: this.frame.buffer, level: this.peak }, [this.frame.buffer]);
          this.frame = new Int16Array(320);
          this.n = 0;
          this.peak = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor("pcm16-downsampler", PCM16Downsampler);
