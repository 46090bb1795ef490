#!/usr/bin/env node
// Reference outputs for the TF.js layers-model reader and KerasModel (tests/MlNetFineTune.Models.Tests,
// KerasModelTests / TfjsModelTests), computed with TensorFlow.js itself (pure-JS CPU backend).
//
// Writes into tests/MlNetFineTune.Models.Tests/fixtures/tfjs/:
//   reference_mobilenet_v2.json  data/models/mobilenet_v2 (as shipped) on 2 synthetic 96x96 images
//   reference_inception_v3.json  data/models/inception_v3 (as shipped) on 2 synthetic 139x139 images
//   tiny/model.json + tiny/group1-shard{1,2}of2 + tiny/reference.json
//                                a small generated functional model that exercises every layer kind the
//                                reader supports (asymmetric "same" padding for conv, depthwise, max and
//                                average pooling, dilation, ZeroPadding2D, Add, Concatenate, BN with and
//                                without scale, ReLU(max_value), activations, Flatten, Dropout, Dense,
//                                GlobalAveragePooling2D, SeparableConv2D, LeakyReLU, Multiply, Average,
//                                Softmax, Cropping2D, Reshape, GlobalMaxPooling2D, Dense on 4-D input, BN on
//                                2-D input, swish/gelu/hard_sigmoid) with uint8 / uint16 / float16 / float32 weights in
//                                two shards split mid-weight; every layer's full output is recorded.
// Each layer record: shape (NHWC, as TF.js), "mean" = per-image per-channel mean over H and W ([N, C],
// base64 float32 LE), "samples" = values at 256 deterministic NHWC flat indices, and for small maps "full"
// = every value (NHWC order, base64 float32 LE).
//
// Images are integers 0..255 from a fixed formula (pixel(), mirrored in the C# tests), scaled x/255 as
// nsfwjs does; "input_sum" lets the tests check they generated the same input.
//
// Run (needs @tensorflow/tfjs 4.22.0, see package.json beside this file; install it OUTSIDE the repo):
//   mkdir -p /work/scratch/tfjs-node && cd /work/scratch/tfjs-node && npm install @tensorflow/tfjs@4.22.0
//   cd /work/scratch/tfjs-node && node /work/main/tests/golden/tfjs_reference.mjs
// The module is resolved from the current directory (or $TFJS_MODULES_DIR), so node_modules never has to
// live in the repository.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(path.join(process.env.TFJS_MODULES_DIR ?? process.cwd(), 'noop.js'));
const tf = require('@tensorflow/tfjs');
await tf.setBackend('cpu');

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const fixtures = path.join(repo, 'tests', 'MlNetFineTune.Models.Tests', 'fixtures', 'tfjs');
const FULL_LIMIT = 40000; // store every value of maps up to this many elements

// ---------------------------------------------------------------- helpers

/** Pixel value 0..255 of image n at row y, column x, channel c (integer arithmetic only). */
function pixel(n, y, x, c) {
  return (Math.floor((x * x * (n + 1)) / 7) + y * (5 + 3 * c) + ((x ^ y) & 15) * 4 + 60 * c + 90 * n) % 256;
}

function images(n, h, w) {
  const data = new Float32Array(n * h * w * 3);
  let sum = 0;
  let i = 0;
  for (let b = 0; b < n; b++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let c = 0; c < 3; c++) { const v = pixel(b, y, x, c); data[i++] = v; sum += v; }
  return { tensor: tf.tensor4d(data, [n, h, w, 3]).div(tf.scalar(255)), sum };
}

const b64 = (f32) => Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength).toString('base64');

/** 256 distinct-ish flat indices from a fixed LCG. */
function sampleIndices(numel, count = 256) {
  const out = [];
  let s = 12345;
  for (let i = 0; i < count; i++) { s = (s * 1103515245 + 12345) % 2147483648; out.push(s % numel); }
  return out;
}

function record(name, t) {
  const shape = t.shape;
  const v = t.dataSync();
  const rec = { name, shape };
  if (shape.length === 4) {
    const [n, h, w, c] = shape;
    const mean = new Float32Array(n * c);
    for (let b = 0; b < n; b++)
      for (let ch = 0; ch < c; ch++) {
        let s = 0;
        for (let p = 0; p < h * w; p++) s += v[(b * h * w + p) * c + ch];
        mean[b * c + ch] = s / (h * w);
      }
    rec.mean = b64(mean);
  }
  const idx = sampleIndices(v.length);
  rec.samples = { index: idx, values: b64(Float32Array.from(idx, (i) => v[i])) };
  if (v.length <= FULL_LIMIT) rec.full = b64(Float32Array.from(v));
  const abs = v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
  console.log(`  ${name.padEnd(26)} [${shape.join(', ')}]  max|x| ${abs.toPrecision(4)}${rec.full ? '  (full)' : ''}`);
  return rec;
}

async function loadDir(dir) {
  const modelJson = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const paths = modelJson.weightsManifest.flatMap((g) => g.paths);
  const buf = Buffer.concat(paths.map((p) => fs.readFileSync(path.join(dir, p))));
  const weightData = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const weightSpecs = modelJson.weightsManifest.flatMap((g) => g.weights);
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: modelJson.modelTopology, weightSpecs, weightData }));
}

async function reference(model, dir, n, size, layers, file) {
  console.log(`${model}: ${n} images ${size}x${size}`);
  const m = await loadDir(dir);
  const sub = tf.model({ inputs: m.inputs, outputs: layers.map((l) => m.getLayer(l).output) });
  const { tensor, sum } = images(n, size, size);
  let outs = sub.predict(tensor);
  if (!Array.isArray(outs)) outs = [outs];
  const out = {
    generator: 'tests/golden/tfjs_reference.mjs',
    tfjs: tf.version.tfjs,
    backend: tf.getBackend(),
    model,
    images: { n, height: size, width: size, scale: '1/255', input_sum: sum },
    layers: layers.map((l, i) => record(l, outs[i])),
  };
  fs.writeFileSync(path.join(fixtures, file), JSON.stringify(out));
}

// ---------------------------------------------------------------- tiny model

function quantize(values, scheme) {
  if (scheme === 'float32') return { bytes: Buffer.from(values.buffer.slice(0)), quantization: undefined };
  if (scheme === 'float16') {
    const f16 = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i++) f16[i] = toHalf(values[i]);
    return { bytes: Buffer.from(f16.buffer), quantization: { dtype: 'float16' } };
  }
  const bits = scheme === 'uint8' ? 8 : 16;
  let min = Infinity, max = -Infinity;
  for (const v of values) { min = Math.min(min, v); max = Math.max(max, v); }
  const scale = (max - min) / (2 ** bits - 1) || 1;
  const q = bits === 8 ? new Uint8Array(values.length) : new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) q[i] = Math.round((values[i] - min) / scale);
  return { bytes: Buffer.from(q.buffer), quantization: { dtype: scheme, min, scale } };
}

function toHalf(f) {
  const f32 = new Float32Array([f]);
  const u = new Uint32Array(f32.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  let exp = ((u >>> 23) & 0xff) - 127 + 15;
  let mant = u & 0x7fffff;
  if (exp <= 0) { // subnormal half
    if (exp < -10) return sign;
    mant = (mant | 0x800000) >>> (1 - exp);
    return sign | ((mant + 0x1000) >>> 13);
  }
  if (exp >= 31) return sign | 0x7c00;
  const h = sign | (exp << 10) | (mant >>> 13);
  return (mant & 0x1000) ? h + 1 : h; // round half up on the dropped bits (fine for a fixture)
}

async function tiny() {
  console.log('tiny: generated functional model');
  const L = tf.layers;
  const inp = tf.input({ shape: [12, 14, 3], name: 'img' });
  const c1 = L.conv2d({ filters: 6, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: 'conv_same_s2' }).apply(inp);
  const b1 = L.batchNormalization({ epsilon: 1e-3, momentum: 0.99, name: 'bn_full' }).apply(c1);
  const d1 = L.depthwiseConv2d({ kernelSize: 3, strides: 1, padding: 'same', depthMultiplier: 2, useBias: true, name: 'dw_same_m2' }).apply(b1);
  const r1 = L.reLU({ maxValue: 6, name: 'relu6' }).apply(d1);
  const c2 = L.conv2d({ filters: 12, kernelSize: 1, useBias: false, name: 'pointwise' }).apply(r1);
  const add = L.add({ name: 'add' }).apply([c2, r1]);
  const dws2 = L.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', useBias: false, name: 'dw_same_s2' }).apply(add);
  const p1 = L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'maxpool_same_s2' }).apply(add);
  const p2 = L.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'avgpool_same_s2' }).apply(add);
  const c3 = L.conv2d({ filters: 5, kernelSize: 3, dilationRate: 2, padding: 'same', activation: 'sigmoid', name: 'conv_dilated' }).apply(add);
  const s3 = L.activation({ activation: 'softmax', name: 'channel_softmax' }).apply(c3);
  const p3 = L.maxPooling2d({ poolSize: [2, 1], strides: [2, 2], padding: 'valid', name: 'maxpool_valid' }).apply(s3);
  const p4 = L.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same', name: 'avgpool_same_s1' }).apply(p2);
  const cat = L.concatenate({ axis: -1, name: 'concat' }).apply([p1, p4, p3, dws2]);
  const zp = L.zeroPadding2d({ padding: [[1, 0], [2, 1]], name: 'zeropad' }).apply(cat);
  const c4 = L.conv2d({ filters: 7, kernelSize: [2, 3], strides: [1, 2], padding: 'valid', name: 'conv_rect_valid' }).apply(zp);
  const b2 = L.batchNormalization({ epsilon: 1e-3, scale: false, name: 'bn_noscale' }).apply(c4);
  const a2 = L.activation({ activation: 'relu', name: 'act_relu' }).apply(b2);
  const gap = L.globalAveragePooling2d({ name: 'gap' }).apply(a2);
  const fl = L.flatten({ name: 'flatten' }).apply(a2);
  const dr = L.dropout({ rate: 0.3, name: 'dropout' }).apply(fl);
  const dn = L.dense({ units: 8, activation: 'tanh', name: 'dense_hidden' }).apply(dr);
  // Second branch: the remaining supported layer kinds.
  const sep = L.separableConv2d({ filters: 5, kernelSize: 3, strides: 2, padding: 'same', activation: 'swish', name: 'sep_same_s2' }).apply(add);
  const leaky = L.leakyReLU({ alpha: 0.2, name: 'leaky' }).apply(sep);
  const d4 = L.dense({ units: 5, activation: 'gelu', name: 'dense_4d' }).apply(p1);
  const mul = L.multiply({ name: 'multiply' }).apply([leaky, d4]);
  const avg = L.average({ name: 'average' }).apply([mul, leaky]);
  const clip = L.reLU({ maxValue: 0.5, name: 'relu_clip' }).apply(avg);
  const smx = L.softmax({ axis: -1, name: 'softmax_layer' }).apply(clip);
  const gmp = L.globalMaxPooling2d({ name: 'gmp' }).apply(smx);
  const crop = L.cropping2D({ cropping: [[1, 0], [0, 1]], name: 'crop' }).apply(add);
  const cv = L.conv2d({ filters: 5, kernelSize: 3, strides: 2, padding: 'valid', activation: 'hardSigmoid', name: 'conv_valid_s2' }).apply(crop);
  const rs3 = L.reshape({ targetShape: [2, 10], name: 'reshape_3d' }).apply(cv);
  const fl2 = L.flatten({ name: 'flatten_3d' }).apply(rs3);
  const rs4 = L.reshape({ targetShape: [1, 1, 20], name: 'reshape_4d' }).apply(fl2);
  const gap2 = L.globalAveragePooling2d({ name: 'gap_1x1' }).apply(rs4);
  const cat2 = L.concatenate({ name: 'concat_branch' }).apply([gmp, gap2]);
  const ds = L.dense({ units: 6, activation: 'tanh', name: 'dense_small' }).apply(cat2);
  const bn1 = L.batchNormalization({ epsilon: 1e-3, name: 'bn_1d' }).apply(ds);
  const both = L.concatenate({ name: 'concat_flat' }).apply([dn, gap, bn1]);
  const out = L.dense({ units: 4, activation: 'softmax', name: 'probs' }).apply(both);
  const model = tf.model({ inputs: inp, outputs: out, name: 'tiny' });

  // Deterministic weights: a smooth formula per weight, BN variances positive.
  const schemes = ['uint8', 'uint16', 'float16', 'float32'];
  const specs = [];
  const parts = [];
  let w = 0;
  for (const layer of model.layers) {
    const newValues = [];
    for (const v of layer.weights) {
      const n = v.shape.reduce((a, s) => a * s, 1);
      const vals = new Float32Array(n);
      const base = v.name.includes('variance') ? 0.5 : 0;
      const gain = v.name.endsWith('kernel') ? 2 / Math.sqrt(n / v.shape[v.shape.length - 1]) : 1;
      for (let i = 0; i < n; i++) {
        const t = Math.sin(0.7 * i + 1.3 * w + 0.1) * 0.5 + Math.cos(0.31 * i * (w + 1)) * 0.3;
        vals[i] = base ? base + Math.abs(t) : gain * t;
      }
      const scheme = schemes[w % schemes.length];
      const { bytes, quantization } = quantize(vals, scheme);
      const name = `${layer.name}/${v.name.split('/').pop()}`;
      specs.push({ name, shape: v.shape, dtype: 'float32', ...(quantization ? { quantization } : {}) });
      parts.push(bytes);
      newValues.push(tf.tensor(vals, v.shape));
      w++;
    }
    if (newValues.length) layer.setWeights(newValues);
  }
  let topology;
  await model.save(tf.io.withSaveHandler(async (a) => { topology = a.modelTopology; return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }; }));
  const data = Buffer.concat(parts);
  const cut = Math.floor(data.length / 2) + 1; // mid-weight split: the reader must concatenate shards
  const dir = path.join(fixtures, 'tiny');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'group1-shard1of2'), data.subarray(0, cut));
  fs.writeFileSync(path.join(dir, 'group1-shard2of2'), data.subarray(cut));
  const modelJson = {
    format: 'layers-model',
    generatedBy: `tfjs-layers ${tf.version.tfjs} (tests/golden/tfjs_reference.mjs)`,
    modelTopology: topology,
    weightsManifest: [{ paths: ['group1-shard1of2', 'group1-shard2of2'], weights: specs }],
  };
  fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(modelJson, null, 1));

  // Reference from the files as written (so TF.js applies its own dequantisation).
  const loaded = await loadDir(dir);
  const names = loaded.layers.filter((l) => l.name !== 'img').map((l) => l.name);
  const sub = tf.model({ inputs: loaded.inputs, outputs: names.map((n) => loaded.getLayer(n).output) });
  const { tensor, sum } = images(2, 12, 14);
  const outs = sub.predict(tensor);
  // Dequantized weights as TF.js decoded them, for the reader test.
  const decoded = tf.io.decodeWeights(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength), specs);
  const weights = specs.map((s) => ({ name: s.name, scheme: s.quantization?.dtype ?? 'float32', values: b64(Float32Array.from(decoded[s.name].dataSync())) }));
  fs.writeFileSync(path.join(dir, 'reference.json'), JSON.stringify({
    generator: 'tests/golden/tfjs_reference.mjs', tfjs: tf.version.tfjs, backend: tf.getBackend(), model: 'tiny',
    images: { n: 2, height: 12, width: 14, scale: '1/255', input_sum: sum },
    weights,
    layers: names.map((n, i) => record(n, outs[i])),
  }, null, 1));
}

// ---------------------------------------------------------------- main

fs.mkdirSync(fixtures, { recursive: true });
const which = process.argv.slice(2);
const want = (m) => which.length === 0 || which.includes(m);
if (want('tiny')) await tiny();
if (want('mobilenet_v2'))
  await reference('mobilenet_v2', path.join(repo, 'data', 'models', 'mobilenet_v2'), 2, 96,
    ['Conv1_relu', 'block_1_depthwise_relu', 'block_3_depthwise_relu', 'block_6_project_BN', 'block_13_expand_relu', 'block_16_project_BN', 'out_relu'],
    'reference_mobilenet_v2.json');
if (want('inception_v3'))
  await reference('inception_v3', path.join(repo, 'data', 'models', 'inception_v3'), 2, 139,
    ['activation_1', 'max_pooling2d_2', 'mixed2', 'mixed5', 'mixed7', 'mixed10'],
    'reference_inception_v3.json');
