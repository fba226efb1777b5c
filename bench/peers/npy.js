// Float32 .npy reading and writing, and a seeded normal generator, for the
// peer benchmark's node scripts (no dependencies).
'use strict';

const fs = require('fs');

// readNpy reads a little-endian float32 C-order .npy file (versions 1-3).
function readNpy(path) {
  const b = fs.readFileSync(path);
  if (b.length < 10 || b.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${path}: not a .npy file`);
  const major = b[6];
  let hlen, off;
  if (major === 1) { hlen = b.readUInt16LE(8); off = 10; } else { hlen = b.readUInt32LE(8); off = 12; }
  const hdr = b.toString('latin1', off, off + hlen);
  const descr = /'descr':\s*'([^']*)'/.exec(hdr);
  const fortran = /'fortran_order':\s*(True|False)/.exec(hdr);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(hdr);
  if (!descr || !fortran || !shape) throw new Error(`${path}: bad .npy header ${hdr.trim()}`);
  if (descr[1] !== '<f4') throw new Error(`${path}: dtype ${descr[1]}, want <f4 (float32)`);
  if (fortran[1] !== 'False') throw new Error(`${path}: Fortran order is not supported`);
  const dims = shape[1].split(',').map(s => s.trim()).filter(s => s !== '').map(Number);
  const n = dims.reduce((a, d) => a * d, 1);
  const start = off + hlen;
  if (b.length - start !== 4 * n) throw new Error(`${path}: shape (${dims}) needs ${4 * n} bytes, has ${b.length - start}`);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = b.readFloatLE(start + 4 * i);
  return { dims, data };
}

// writeNpy writes a float32 tensor as a version 1.0 .npy file.
function writeNpy(path, dims, data) {
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let hdr = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + hdr.length + 1;
  hdr += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1; head[7] = 0;
  head.writeUInt16LE(hdr.length, 8);
  const body = Buffer.alloc(4 * data.length);
  for (let i = 0; i < data.length; i++) body.writeFloatLE(data[i], 4 * i);
  const tmp = `${path}.tmp${process.pid}`;
  fs.writeFileSync(tmp, Buffer.concat([head, Buffer.from(hdr, 'latin1'), body]));
  fs.renameSync(tmp, path);
}

// A small seeded normal generator (the input's values do not matter for timing).
function normals(n, seed) {
  let s = (seed >>> 0) || 1;
  const u = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return (s + 0.5) / 4294967296; };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

module.exports = { readNpy, writeNpy, normals };
