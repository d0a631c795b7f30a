/* ArmorClaw call page: what it measures of audio, with WebAudio analysers. Loaded before
 * call.js, which finds it as window.armorclawAudio.
 */
/* global window */
'use strict';

(function () {
  /** A level meter: a short analyser window, shown in dBFS over 60 dB, with a falling peak. */
  function meter(el) {
    const fill = el.querySelector('.meter-fill');
    let node = null;
    let samples = null;
    let shown = 0;
    let announced = -1;
    let lastAria = 0;
    return {
      source(src) {
        node = src.context.createAnalyser();
        node.fftSize = 2048; // ~43 ms: follows syllables
        samples = new Float32Array(node.fftSize);
        src.connect(node);
      },
      update(now, active) {
        let level = 0;
        if (node && active) {
          node.getFloatTimeDomainData(samples);
          let sum = 0;
          for (const s of samples) sum += s * s;
          const db = 10 * Math.log10(sum / samples.length || 1e-12);
          level = Math.min(1, Math.max(0, (db + 60) / 54));
        }
        shown = Math.max(level, shown * 0.85);
        if (shown < 0.01) shown = 0;
        fill.style.transform = `scaleX(${shown.toFixed(3)})`;
        const value = Math.round(shown * 100);
        // Assistive technology needs the value, not 60 updates a second.
        if (value !== announced && (now - lastAria > 200 || value === 0)) {
          el.setAttribute('aria-valuenow', String(value));
          el.setAttribute('aria-valuetext', value === 0 ? 'silent' : `${value} percent`);
          announced = value;
          lastAria = now;
        }
      },
    };
  }

  /** RMS (0..1) and pitch (Hz, 0 for silence) of an analyser's whole window. */
  function levelAndPitch(analyser) {
    const samples = new Float32Array(analyser.fftSize);
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    const rms = Math.sqrt(sum / samples.length);
    return {
      rms,
      frequency: rms < 1e-4 ? 0 : zeroCrossingFrequency(samples, analyser.context.sampleRate),
    };
  }

  /** Upward zero crossings, interpolated between samples, over the span they cover. */
  function zeroCrossingFrequency(samples, sampleRate) {
    let first = -1;
    let last = -1;
    let count = 0;
    for (let i = 1; i < samples.length; i++) {
      const a = samples[i - 1];
      const b = samples[i];
      if (a < 0 && b >= 0) {
        const at = i - 1 + a / (a - b);
        if (first < 0) first = at;
        last = at;
        count++;
      }
    }
    return count < 2 ? 0 : ((count - 1) * sampleRate) / (last - first);
  }

  window.armorclawAudio = { meter, levelAndPitch };
})();
