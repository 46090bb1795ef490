#!/usr/bin/env node
// Re-derives data/models/{mobilenet_v2,inception_v3}/ from the pinned npm package nsfwjs@4.4.0.
//
// What it does, per model:
//   1. Reads the TF.js Keras layers model (model.json + uint8-quantized binary shards), either from the npm
//      package itself (--npm: `npm pack nsfwjs@4.4.0`, then require() of dist/models/<m>/model.min.js and
//      group*.min.js, each group file being a base64 string of one shard) or from an already decoded copy
//      (--assets DIR, default /work/shared/assets/nsfwjs-4.4.0, holding <m>/model.json + shards).
//   2. Cuts the graph at the backbone's last feature layer (MobileNetV2: out_relu, 1280 channels;
//      InceptionV3: mixed10, 2048 channels) and keeps only that layer and its ancestors. The content-class
//      head (AveragePooling2D, Flatten, Dense, Dropout, softmax over the 5 nsfwjs classes) is dropped from the
//      topology, from the weights manifest and from the shards. Nothing of it is shipped.
//   3. Sets the input layer's batch_input_shape to [null, null, null, 3] (the cut graph is fully
//      convolutional; nsfwjs itself feeds 224x224 (MobileNetV2) / 299x299 (InceptionV3) images scaled x/255)
//      and drops training_config (the optimizer/loss of the head's training run).
//   4. Copies the kept weights' bytes unchanged (uint8 quantization and per-tensor min/scale are kept as
//      they are), re-sharded into 4 MiB files named group1-shard{i}of{n} as the TF.js converter names them,
//      and writes model.json with JSON.stringify (compact, key order preserved), plus the package's MIT
//      LICENSE beside it.
// The output is deterministic: running it again reproduces the committed files byte for byte.
//
// Usage (Node.js >= 18, no npm dependencies):
//   node data/scripts/derive_tfjs_models.mjs [--assets DIR | --npm] [--out DIR] [--check]
//     (no source flag: the decoded assets at /work/shared/assets/nsfwjs-4.4.0 when that folder exists,
//      else --npm; both give identical bytes)
//     --out DIR   where to write (default: data/models next to this script's folder)
//     --check     write into a temporary folder and compare byte for byte with --out; exit 1 on difference

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const PACKAGE = 'nsfwjs@4.4.0';
const MODELS = { mobilenet_v2: 'out_relu', inception_v3: 'mixed10' };
const SHARD_BYTES = 4 * 1024 * 1024;
const BYTES = { uint8: 1, uint16: 2, float16: 2, float32: 4, int32: 4, bool: 1 };

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const outDir = path.resolve(opt('--out') ?? path.join(here, '..', 'models'));
const check = args.includes('--check');

function fail(msg) { console.error(`derive_tfjs_models: ${msg}`); process.exit(1); }

// ---------------------------------------------------------------- sources

function fromAssets(dir, model) {
  if (!fs.existsSync(path.join(dir, model, 'model.json'))) fail(`no ${path.join(dir, model, 'model.json')} (use --npm to read the npm package)`);
  const modelJson = JSON.parse(fs.readFileSync(path.join(dir, model, 'model.json'), 'utf8'));
  const shards = modelJson.weightsManifest.flatMap((g) => g.paths).map((p) => fs.readFileSync(path.join(dir, model, p)));
  return { modelJson, shards, license: fs.readFileSync(path.join(dir, 'LICENSE')) };
}

let npmRoot;
function fromNpm(model) {
  if (!npmRoot) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nsfwjs-'));
    execFileSync('npm', ['pack', PACKAGE, '--silent'], { cwd: tmp, stdio: ['ignore', 'pipe', 'inherit'] });
    execFileSync('tar', ['xzf', 'nsfwjs-4.4.0.tgz'], { cwd: tmp });
    npmRoot = path.join(tmp, 'package');
  }
  const dir = path.join(npmRoot, 'dist', 'models', model);
  const require = createRequire(path.join(dir, 'index.js'));
  const modelJson = require(path.join(dir, 'model.min.js'));
  const shards = modelJson.weightsManifest.flatMap((g) => g.paths)
    .map((p) => Buffer.from(require(path.join(dir, `${p}.min.js`)), 'base64'));
  return { modelJson, shards, license: fs.readFileSync(path.join(npmRoot, 'LICENSE')) };
}

// ---------------------------------------------------------------- derivation

function inboundNames(layer) {
  const names = [];
  for (const node of layer.inbound_nodes ?? []) for (const t of node) names.push(t[0]);
  return names;
}

function weightBytes(spec) {
  const dtype = spec.quantization?.dtype ?? spec.dtype;
  const b = BYTES[dtype];
  if (!b) fail(`weight ${spec.name}: unsupported dtype ${dtype}`);
  return spec.shape.reduce((a, s) => a * s, 1) * b;
}

function derive(model, cut, src) {
  const topology = src.modelJson.modelTopology;
  const config = topology.model_config.config;
  const byName = new Map(config.layers.map((l) => [l.name, l]));
  if (!byName.has(cut)) fail(`${model}: no layer ${cut}`);
  const keep = new Set();
  const stack = [cut];
  while (stack.length) {
    const n = stack.pop();
    if (keep.has(n)) continue;
    keep.add(n);
    stack.push(...inboundNames(byName.get(n)));
  }
  const layers = config.layers.filter((l) => keep.has(l.name)).map((l) => {
    if (l.class_name !== 'InputLayer') return l;
    return { ...l, config: { ...l.config, batch_input_shape: [null, null, null, 3] } };
  });

  const data = Buffer.concat(src.shards);
  const kept = [];
  const parts = [];
  let offset = 0;
  for (const group of src.modelJson.weightsManifest) {
    for (const spec of group.weights) {
      const size = weightBytes(spec);
      const layer = spec.name.slice(0, spec.name.lastIndexOf('/'));
      if (!byName.has(layer)) fail(`${model}: weight ${spec.name} belongs to no layer`);
      if (keep.has(layer)) {
        kept.push(spec);
        parts.push(data.subarray(offset, offset + size));
      }
      offset += size;
    }
  }
  if (offset !== data.length) fail(`${model}: manifest describes ${offset} bytes but the shards hold ${data.length}`);
  const weights = Buffer.concat(parts);
  const n = Math.max(1, Math.ceil(weights.length / SHARD_BYTES));
  const files = new Map();
  const paths = [];
  for (let i = 0; i < n; i++) {
    const name = `group1-shard${i + 1}of${n}`;
    paths.push(name);
    files.set(name, weights.subarray(i * SHARD_BYTES, Math.min(weights.length, (i + 1) * SHARD_BYTES)));
  }
  const modelJson = {
    format: 'layers-model',
    generatedBy: `keras ${topology.keras_version} via nsfwjs@4.4.0; content-class head removed by data/scripts/derive_tfjs_models.mjs`,
    modelTopology: {
      keras_version: topology.keras_version,
      backend: topology.backend,
      model_config: {
        class_name: topology.model_config.class_name,
        config: { ...config, layers, output_layers: [[cut, 0, 0]] },
      },
    },
    weightsManifest: [{ paths, weights: kept }],
  };
  files.set('model.json', Buffer.from(JSON.stringify(modelJson), 'utf8'));
  files.set('LICENSE', src.license);
  return { files, dropped: config.layers.filter((l) => !keep.has(l.name)).map((l) => l.name) };
}

// ---------------------------------------------------------------- main

const DEFAULT_ASSETS = '/work/shared/assets/nsfwjs-4.4.0';
const assetsDir = opt('--assets') ?? DEFAULT_ASSETS;
const useNpm = args.includes('--npm') || (!opt('--assets') && !fs.existsSync(assetsDir));
console.log(`source: ${useNpm ? `npm ${PACKAGE}` : assetsDir}`);
const target = check ? fs.mkdtempSync(path.join(os.tmpdir(), 'derive-tfjs-')) : outDir;
let differences = 0;
for (const [model, cut] of Object.entries(MODELS)) {
  const src = useNpm ? fromNpm(model) : fromAssets(assetsDir, model);
  const { files, dropped } = derive(model, cut, src);
  const dir = path.join(target, model);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  console.log(`${model}: cut at ${cut}; dropped ${dropped.join(', ')}`);
  for (const [name, bytes] of files) {
    fs.writeFileSync(path.join(dir, name), bytes);
    const sha = crypto.createHash('sha256').update(bytes).digest('hex');
    let status = '';
    if (check) {
      const theirs = path.join(outDir, model, name);
      const same = fs.existsSync(theirs) && fs.readFileSync(theirs).equals(bytes);
      status = same ? '  identical' : '  DIFFERS';
      if (!same) differences++;
    }
    console.log(`  ${name.padEnd(18)} ${String(bytes.length).padStart(9)} bytes  sha256 ${sha}${status}`);
  }
  if (check) {
    const extra = fs.existsSync(path.join(outDir, model))
      ? fs.readdirSync(path.join(outDir, model)).filter((f) => !files.has(f)) : [];
    for (const f of extra) { console.log(`  unexpected file ${model}/${f}`); differences++; }
  }
}
if (check) {
  fs.rmSync(target, { recursive: true, force: true });
  if (differences) fail(`${differences} file(s) differ from ${outDir}`);
  console.log(`all files in ${outDir} are reproduced byte for byte`);
}
