#!/usr/bin/env node
// ONNX Runtime's side of the peer benchmark, with the same method as
// `mobileone bench` (the authors' ModelBench method): per round one warm-up
// run, then --runs timed runs, sorted, and the --trim fastest and slowest
// dropped for the trimmed mean; min, median and p90 over all timed runs.
//
//   node ort_bench.js --model s0.onnx [--threads 1] [--batch 1] [--size 224[xW]]
//                     [--rounds 20 --runs 50 --trim 10] [--json] [--profile]
//   node ort_bench.js --model s0.onnx --npy in.npy --out logits.npy [--threads 1]
//
// The second form runs a float32 (N, C, H, W) .npy tensor once and writes the
// output as a float32 .npy file (for parity checks against `mobileone predict`).
// --profile turns on ONNX Runtime's profiler and then prints each node's
// median kernel time over all runs, in graph order, next to `mobileone bench
// --profile`'s per-layer times (the profiler itself adds a little to each run).
// onnxruntime-node is found through NODE_PATH (run.sh sets it; install it with
// `npm install --ignore-scripts onnxruntime-node@1.30.0` outside the repo).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const ort = require('onnxruntime-node');
const { readNpy, writeNpy, normals } = require('./npy.js');

function usage(msg) {
  if (msg) process.stderr.write(`ort_bench.js: ${msg}\n`);
  process.stderr.write('usage: node ort_bench.js --model FILE.onnx [--threads T] [--batch B] [--size H[xW]] ' +
    '[--rounds R --runs N --trim T] [--json] [--profile] [--optimization all|disabled] | --model FILE.onnx --npy IN.npy --out OUT.npy\n');
  process.exit(2);
}

function parseArgs(argv) {
  const o = { threads: 1, batch: 1, size: '224', rounds: 20, runs: 50, trim: 10, json: false, seed: 1 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i].replace(/^--?/, '');
    const val = () => { if (i + 1 >= argv.length) usage(`--${a} needs a value`); return argv[++i]; };
    switch (a) {
      case 'model': case 'm': o.model = val(); break;
      case 'threads': o.threads = +val(); break;
      case 'batch': o.batch = +val(); break;
      case 'size': o.size = val(); break;
      case 'rounds': o.rounds = +val(); break;
      case 'runs': o.runs = +val(); break;
      case 'trim': o.trim = +val(); break;
      case 'seed': o.seed = +val(); break;
      case 'npy': o.npy = val(); break;
      case 'out': case 'o': o.out = val(); break;
      case 'json': o.json = true; break;
      case 'profile': o.profile = true; break;
      case 'optimization': o.optimization = val(); break;
      case 'h': case 'help': usage();
      default: usage(`unknown flag ${argv[i]}`);
    }
  }
  if (!o.model) usage('need --model FILE.onnx');
  for (const k of ['threads', 'batch', 'rounds', 'runs', 'trim']) {
    if (!Number.isInteger(o[k]) || o[k] < 0) usage(`--${k} must be a non-negative integer`);
  }
  if (o.threads < 1 || o.batch < 1 || o.rounds < 1 || o.runs < 1) usage('--threads, --batch, --rounds, --runs must be >= 1');
  if (2 * o.trim >= o.runs) usage(`--trim ${o.trim} must leave runs: need 2*trim < runs (${o.runs})`);
  if (!!o.npy !== !!o.out) usage('--npy and --out go together');
  if (o.optimization === undefined) o.optimization = 'all';
  if (!['all', 'disabled', 'basic', 'extended'].includes(o.optimization)) usage('--optimization must be all, extended, basic or disabled');
  return o;
}

function cpuName() {
  try {
    const m = /model name\s*:\s*(.*)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch (e) { /* fall through */ }
  return os.cpus().length ? os.cpus()[0].model : os.arch();
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const opts = {
    intraOpNumThreads: o.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: o.optimization, // disabled: QDQ models run literally in float (no int8 kernels)
    executionMode: 'sequential',
  };
  let profDir = '';
  if (o.profile) {
    profDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ort-profile-'));
    opts.enableProfiling = true;
    opts.profileFilePrefix = path.join(profDir, 'ort');
  }
  const session = await ort.InferenceSession.create(o.model, opts);
  const inName = session.inputNames[0];
  const outName = session.outputNames[0];

  if (o.npy) {
    const x = readNpy(o.npy);
    const res = await session.run({ [inName]: new ort.Tensor('float32', x.data, x.dims) });
    const y = res[outName];
    writeNpy(o.out, y.dims.map(Number), y.data);
    return;
  }

  const parts = o.size.split('x').map(Number);
  const [h, w] = parts.length === 1 ? [parts[0], parts[0]] : parts;
  if (parts.length > 2 || !(Number.isInteger(h) && Number.isInteger(w) && h >= 1 && w >= 1)) usage(`bad --size ${o.size}`);
  const meta = session.inputMetadata ? session.inputMetadata[0] : null;
  let c = 3;
  if (meta && meta.shape && typeof meta.shape[1] === 'number') c = meta.shape[1];
  const input = new ort.Tensor('float32', normals(o.batch * c * h * w, o.seed), [o.batch, c, h, w]);
  const feeds = { [inName]: input };
  const run = async () => {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  const all = [], kept = [];
  for (let r = 0; r < o.rounds; r++) {
    await run(); // warm-up
    const round = [];
    for (let j = 0; j < o.runs; j++) round.push(await run());
    round.sort((a, b) => a - b);
    all.push(...round);
    kept.push(...round.slice(o.trim, o.runs - o.trim));
  }
  all.sort((a, b) => a - b);
  const res = {
    runtime: 'onnxruntime-node',
    ort_version: (ort.env && ort.env.versions && ort.env.versions.common) || '',
    model: o.model,
    batch: o.batch, height: h, width: w, threads: o.threads,
    rounds: o.rounds, runs: o.runs, trim: o.trim,
    min_ms: all[0],
    median_ms: all[Math.floor(all.length / 2)],
    mean_ms: kept.reduce((a, v) => a + v, 0) / kept.length,
    p90_ms: all[Math.floor(all.length * 9 / 10)],
    kernels: 'onnxruntime CPU execution provider',
    cpu: cpuName(),
  };
  res.images_per_s = o.batch / (res.median_ms / 1e3);
  if (o.profile) {
    await session.endProfiling();
    try {
      res.layers = nodeTimes(profDir);
    } finally {
      fs.rmSync(profDir, { recursive: true, force: true });
    }
  }
  if (o.json) {
    process.stdout.write(JSON.stringify(res) + '\n');
  } else {
    process.stdout.write(`ONNX Runtime ${res.ort_version}: ${o.model}, batch ${o.batch}, ${h}x${w}, ${o.threads} threads\n` +
      `${o.rounds} rounds x ${o.runs} runs, trim ${o.trim}: min ${res.min_ms.toFixed(3)} ms  median ${res.median_ms.toFixed(3)} ms  ` +
      `mean ${res.mean_ms.toFixed(3)} ms  p90 ${res.p90_ms.toFixed(3)} ms\n${res.images_per_s.toFixed(1)} images/s at the median\n`);
    if (res.layers) {
      const total = res.layers.reduce((a, l) => a + l.ms, 0);
      process.stdout.write(`\n${'node'.padStart(28)}  ${'op'.padEnd(18)} ${'ms'.padStart(7)}  share\n`);
      for (const l of res.layers) {
        process.stdout.write(`${l.name.padStart(28)}  ${l.op.padEnd(18)} ${l.ms.toFixed(3).padStart(7)}  ${(100 * l.ms / total).toFixed(1).padStart(4)}%\n`);
      }
    }
  }
}

// nodeTimes reads the profiler's JSON file in dir and returns, per node in
// the order it first ran, its operator and median kernel time in ms.
function nodeTimes(dir) {
  const files = fs.readdirSync(dir).filter(f => f.endsWith('.json'));
  if (files.length !== 1) throw new Error(`profiler wrote ${files.length} files in ${dir}, want 1`);
  const events = JSON.parse(fs.readFileSync(path.join(dir, files[0]), 'utf8'));
  const nodes = new Map();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const name = e.name.slice(0, -'_kernel_time'.length);
    if (!nodes.has(name)) nodes.set(name, { op: (e.args && e.args.op_name) || '', durs: [] });
    nodes.get(name).durs.push(e.dur);
  }
  return [...nodes].map(([name, n]) => {
    n.durs.sort((a, b) => a - b);
    return { name, op: n.op, ms: n.durs[Math.floor(n.durs.length / 2)] / 1e3 };
  });
}

main().catch(e => { process.stderr.write(`ort_bench.js: ${String(e && e.message || e).split('\n')[0]}\n`); process.exit(1); });
