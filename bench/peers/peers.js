#!/usr/bin/env node
// Helpers of run.sh (no dependencies):
//
//   node peers.js input OUT.npy N C H W [SEED]   write a seeded normal float32 (N, C, H, W) tensor
//   node peers.js compare OURS.npy ORT.npy [TOL] print max |a-b| / max |a|; exit 1 above TOL (1e-4)
//   node peers.js table RESULTS.jsonl            print the markdown tables of a run
'use strict';

const fs = require('fs');
const { readNpy, writeNpy, normals } = require('./npy.js');

function die(msg) {
  process.stderr.write(`peers.js: ${msg}\n`);
  process.exit(2);
}

function input(args) {
  if (args.length < 5) die('usage: peers.js input OUT.npy N C H W [SEED]');
  const dims = args.slice(1, 5).map(Number);
  if (!dims.every(d => Number.isInteger(d) && d > 0)) die(`bad shape ${args.slice(1, 5)}`);
  const seed = args.length > 5 ? Number(args[5]) : 1;
  writeNpy(args[0], dims, normals(dims.reduce((a, d) => a * d, 1), seed));
}

function compare(args) {
  if (args.length < 2) die('usage: peers.js compare OURS.npy ORT.npy [TOL]');
  const tol = args.length > 2 ? Number(args[2]) : 1e-4;
  const a = readNpy(args[0]), b = readNpy(args[1]);
  if (a.dims.join() !== b.dims.join()) {
    process.stdout.write(JSON.stringify({ ok: false, error: `shapes (${a.dims}) and (${b.dims}) differ` }) + '\n');
    process.exit(1);
  }
  let scale = 0, diff = 0;
  for (let i = 0; i < a.data.length; i++) {
    scale = Math.max(scale, Math.abs(a.data[i]));
    diff = Math.max(diff, Math.abs(a.data[i] - b.data[i]));
  }
  const rel = scale > 0 ? diff / scale : diff;
  const ok = rel <= tol && Number.isFinite(rel);
  process.stdout.write(JSON.stringify({ ok, max_rel: rel, max_abs: diff, scale, shape: a.dims, tol }) + '\n');
  process.exit(ok ? 0 : 1);
}

const f = (v, d) => (v === undefined || v === null || Number.isNaN(v) ? '–' : v.toFixed(d));

function table(args) {
  if (args.length < 1) die('usage: peers.js table RESULTS.jsonl');
  const rows = fs.readFileSync(args[0], 'utf8').split('\n').filter(l => l.trim()).map(l => JSON.parse(l))
    .map(j => (j.r ? Object.assign({}, j.r, { side: j.side, variant: j.variant }) : j));
  // Several results per cell (run.sh --repeat): minimum of the minimums,
  // median of the medians and of the images/s.
  const median = xs => {
    const s = xs.filter(x => x !== undefined).sort((a, b) => a - b);
    if (!s.length) return undefined;
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  const get = (side, variant, threads, batch) => {
    const rs = rows.filter(r => r.side === side && r.variant === variant && r.threads === threads && r.batch === batch);
    if (!rs.length) return {};
    return {
      min_ms: Math.min(...rs.map(r => r.min_ms)),
      median_ms: median(rs.map(r => r.median_ms)),
      images_per_s: median(rs.map(r => r.images_per_s)),
      repeats: rs.length,
    };
  };
  const variants = [...new Set(rows.filter(r => r.side).map(r => r.variant))];
  const threads = [...new Set(rows.filter(r => r.side).map(r => r.threads))].sort((a, b) => a - b);
  const out = [];
  out.push('| variant | threads | ours min ms | ours median ms | ORT min ms | ORT median ms | ours/ORT (min) | ours/ORT (median) | ours b8 img/s | ORT b8 img/s |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const v of variants) {
    for (const t of threads) {
      const o = get('ours', v, t, 1), r = get('ort', v, t, 1);
      const o8 = get('ours', v, t, 8), r8 = get('ort', v, t, 8);
      if (o.min_ms === undefined && r.min_ms === undefined) continue;
      out.push(`| ${v.toUpperCase()} | ${t} | ${f(o.min_ms, 2)} | ${f(o.median_ms, 2)} | ${f(r.min_ms, 2)} | ${f(r.median_ms, 2)} | ` +
        `${f(o.min_ms / r.min_ms, 2)} | ${f(o.median_ms / r.median_ms, 2)} | ${f(o8.images_per_s, 1)} | ${f(r8.images_per_s, 1)} |`);
    }
  }
  if (rows.some(r => r.side === 'ours_bf16')) {
    out.push('');
    out.push('| variant | threads | ours bf16 min ms | ours bf16 median ms | bf16/float32 ours (min) | bf16/ORT float32 (min) | bf16/ORT float32 (median) | ours bf16 b8 img/s |');
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const v of variants) {
      for (const t of threads) {
        const b = get('ours_bf16', v, t, 1), o = get('ours', v, t, 1), r = get('ort', v, t, 1), b8 = get('ours_bf16', v, t, 8);
        if (b.min_ms === undefined) continue;
        out.push(`| ${v.toUpperCase()} | ${t} | ${f(b.min_ms, 2)} | ${f(b.median_ms, 2)} | ${f(b.min_ms / o.min_ms, 2)} | ` +
          `${f(b.min_ms / r.min_ms, 2)} | ${f(b.median_ms / r.median_ms, 2)} | ${f(b8.images_per_s, 1)} |`);
      }
    }
  }
  if (rows.some(r => r.side === 'ours_int8')) {
    out.push('');
    out.push('| variant | threads | ours int8 min ms | ours int8 median ms | ORT int8 min ms | ORT int8 median ms | ours int8/ORT float32 (min) | ours int8/ORT int8 (min) | ours int8/ORT int8 (median) | ours int8 b8 img/s | ORT int8 b8 img/s |');
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const v of variants) {
      for (const t of threads) {
        const q = get('ours_int8', v, t, 1), qo = get('ort_int8', v, t, 1), r = get('ort', v, t, 1);
        const q8 = get('ours_int8', v, t, 8), qo8 = get('ort_int8', v, t, 8);
        if (q.min_ms === undefined && qo.min_ms === undefined) continue;
        out.push(`| ${v.toUpperCase()} | ${t} | ${f(q.min_ms, 2)} | ${f(q.median_ms, 2)} | ${f(qo.min_ms, 2)} | ${f(qo.median_ms, 2)} | ` +
          `${f(q.min_ms / r.min_ms, 2)} | ${f(q.min_ms / qo.min_ms, 2)} | ${f(q.median_ms / qo.median_ms, 2)} | ${f(q8.images_per_s, 1)} | ${f(qo8.images_per_s, 1)} |`);
      }
    }
  }
  const parity = rows.filter(r => r.parity);
  if (parity.length) {
    out.push('');
    out.push('| variant | logits compared | max \\|ours − ORT\\| / max \\|ours\\| | within 1e-4 |');
    out.push('|---|---|---:|---|');
    for (const p of parity) {
      out.push(`| ${p.variant.toUpperCase()} | (${(p.shape || []).join(', ')}) | ${p.max_rel === undefined ? '–' : p.max_rel.toExponential(1)} | ${p.ok ? 'yes' : 'NO'} |`);
    }
  }
  const ours = rows.find(r => r.side === 'ours' && r.kernels);
  const ort = rows.find(r => r.side === 'ort' && r.ort_version);
  out.push('');
  if (ours) out.push(`Ours: kernels \`${ours.kernels}\`${ours.go ? `, ${ours.go}` : ''}.`);
  if (ort) out.push(`ONNX Runtime ${ort.ort_version} (onnxruntime-node, CPU execution provider, graph optimisation level 'all', inter-op threads 1).`);
  const one = rows.find(r => r.side && r.rounds);
  if (one) out.push(`Batch 1: ${one.rounds} rounds × ${one.runs} runs after one warm-up per round; min and median over all timed runs.`);
  const b8 = rows.find(r => r.side && r.batch === 8);
  if (b8) out.push(`Batch 8: ${b8.rounds} rounds × ${b8.runs} runs; images/s = 8 / median.`);
  const reps = variants.length && threads.length ? get('ours', variants[0], threads[0], 1).repeats : 0;
  if (reps > 1) out.push(`Each cell: ${reps} alternating runs per side; minimum of the minimums, median of the medians and of the images/s.`);
  process.stdout.write(out.join('\n') + '\n');
}

const [cmd, ...args] = process.argv.slice(2);
try {
  switch (cmd) {
    case 'input': input(args); break;
    case 'compare': compare(args); break;
    case 'table': table(args); break;
    default: die('usage: peers.js input|compare|table ...');
  }
} catch (e) {
  die(String(e && e.message || e).split('\n')[0]);
}
