// Hugging Face Llama checkpoints: a folder with config.json and one or more *.safetensors
// files holding `model.embed_tokens.weight`, `model.layers.N.self_attn.q_proj.weight`, ...,
// `model.norm.weight` and `lm_head.weight` (absent or ignored when the embeddings are tied).
//
// HF's conversion script permutes the rows of q_proj and k_proj so that its half-split
// rotary embedding (rotate_half) equals Meta's interleaved one: within each head, row
// 2i+j of the original becomes row j*headSize/2 + i. We undo that on load, since our
// forward passes rotate interleaved pairs (see types.ts), and apply it again on export
// (rotary.ts).
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { ReadPart } from './llama2c.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from './safetensors.js';
import type { FloatDtype } from './f16.js';
import type { HeadWeights, LayerWeights, LlamaConfig, ModelWeights } from './types.js';
import { permuteRotary } from './rotary.js';
import { dequantize } from './weights.js';

const hfConfigSchema = z.object({
  model_type: z.string().optional(),
  hidden_size: z.number().int().positive(),
  intermediate_size: z.number().int().positive(),
  num_hidden_layers: z.number().int().positive(),
  num_attention_heads: z.number().int().positive(),
  num_key_value_heads: z.number().int().positive().optional(),
  vocab_size: z.number().int().positive(),
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().default(10000),
  max_position_embeddings: z.number().int().positive(),
  tie_word_embeddings: z.boolean().optional(),
  head_dim: z.number().int().positive().optional(),
  rope_scaling: z.union([z.null(), z.object({
    rope_type: z.string().optional(),
    type: z.string().optional(),
    factor: z.number().positive().optional(),
    low_freq_factor: z.number().positive().optional(),
    high_freq_factor: z.number().positive().optional(),
    original_max_position_embeddings: z.number().int().positive().optional(),
  }).loose()]).optional(),
  hidden_act: z.string().optional(),
});

/** Parses config.json text into our LlamaConfig, refusing what our forward pass cannot run. */
export function parseHfConfig(text: string, source = 'config.json'): { config: LlamaConfig; tied: boolean | undefined } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${source}: not valid JSON (${(err as Error).message})`);
  }
  const parsed = hfConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`${source}: not a Llama config.json: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const c = parsed.data;
  const problems: string[] = [];
  if (c.model_type !== undefined && c.model_type !== 'llama') problems.push(`model_type is '${c.model_type}', not 'llama'`);
  if (c.hidden_act !== undefined && c.hidden_act !== 'silu') problems.push(`hidden_act is '${c.hidden_act}', not 'silu'`);
  const nKvHeads = c.num_key_value_heads ?? c.num_attention_heads;
  const headSize = c.hidden_size / c.num_attention_heads;
  let ropeFreqFactors: number[] | undefined;
  if (c.rope_scaling) {
    const s = c.rope_scaling;
    const kind = s.rope_type ?? s.type;
    if (kind !== 'llama3' || !s.factor || !s.low_freq_factor || !s.high_freq_factor || !s.original_max_position_embeddings) {
      problems.push(`rope_scaling of type '${kind}' is not supported (only 'llama3' with factor, low_freq_factor, high_freq_factor and original_max_position_embeddings)`);
    } else {
      ropeFreqFactors = llama3FreqFactors(headSize, c.rope_theta, {
        factor: s.factor, lowFreqFactor: s.low_freq_factor, highFreqFactor: s.high_freq_factor,
        originalContext: s.original_max_position_embeddings,
      });
    }
  }
  if (!Number.isInteger(headSize) || headSize % 2 !== 0) problems.push('hidden_size / num_attention_heads is not an even integer');
  if (c.head_dim !== undefined && c.head_dim !== headSize) problems.push(`head_dim ${c.head_dim} differs from hidden_size / num_attention_heads`);
  if (c.num_attention_heads % nKvHeads !== 0) problems.push('num_attention_heads is not a multiple of num_key_value_heads');
  if (problems.length > 0) throw new Error(`${source}: unsupported checkpoint: ${problems.join('; ')}`);
  return {
    config: {
      dim: c.hidden_size, hiddenDim: c.intermediate_size, nLayers: c.num_hidden_layers,
      nHeads: c.num_attention_heads, nKvHeads, vocabSize: c.vocab_size, seqLen: c.max_position_embeddings,
      sharedClassifier: c.tie_word_embeddings ?? false, normEps: c.rms_norm_eps, ropeTheta: c.rope_theta,
      ...(ropeFreqFactors ? { ropeFreqFactors } : {}),
    },
    tied: c.tie_word_embeddings,
  };
}

/**
 * Llama 3.1's "llama3" rope scaling as divisors of each rotation frequency (Meta's
 * apply_scaling in llama3 model.py; HF's _compute_llama3_parameters): wavelengths shorter
 * than originalContext/highFreqFactor keep their frequency, longer than
 * originalContext/lowFreqFactor are divided by `factor`, and the band between is blended.
 */
export function llama3FreqFactors(headSize: number, theta: number,
  s: { factor: number; lowFreqFactor: number; highFreqFactor: number; originalContext: number }): number[] {
  const lowWavelen = s.originalContext / s.lowFreqFactor;
  const highWavelen = s.originalContext / s.highFreqFactor;
  return Array.from({ length: headSize / 2 }, (_, i) => {
    const wavelen = 2 * Math.PI * Math.pow(theta, (2 * i) / headSize);
    if (wavelen < highWavelen) return 1;
    if (wavelen > lowWavelen) return s.factor;
    const smooth = (s.originalContext / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return 1 / ((1 - smooth) / s.factor + smooth);
  });
}

export { permuteRotary, permuteRotaryVector } from './rotary.js';

const layerTensor = (l: number, suffix: string) => `model.layers.${l}.${suffix}`;

/** Opens every *.safetensors file of an HF folder; the caller closes them. */
function openFolder(dir: string): { files: SafetensorsFile[]; find: (name: string) => SafetensorsFile | undefined } {
  const names = readdirSync(dir).filter((n) => n.endsWith('.safetensors')).sort();
  if (names.length === 0) throw new Error(`${dir}: no *.safetensors file found next to config.json`);
  const files: SafetensorsFile[] = [];
  try {
    for (const n of names) files.push(new SafetensorsFile(join(dir, n)));
  } catch (err) {
    files.forEach((f) => f.close());
    throw err;
  }
  return { files, find: (name) => files.find((f) => f.has(name)) };
}

export function readHfConfig(dir: string): LlamaConfig {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new Error(`${dir}: no config.json; a Hugging Face checkpoint folder needs one next to its safetensors`);
  return parseHfConfig(readFileSync(path, 'utf8'), path).config;
}

/** Reads a Hugging Face Llama checkpoint folder (f32, f16 or bf16 safetensors) into float32. */
export function readHfLlama(dir: string, part: ReadPart = {}): ModelWeights {
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new Error(`${dir}: no config.json; a Hugging Face checkpoint folder needs one next to its safetensors`);
  const { config: base, tied } = parseHfConfig(readFileSync(configPath, 'utf8'), configPath);
  const { files, find } = openFolder(dir);
  try {
    const hasLmHead = find('lm_head.weight') !== undefined;
    if (tied === false && !hasLmHead) throw new Error(`${dir}: tie_word_embeddings is false but there is no lm_head.weight`);
    // Absent tie_word_embeddings: HF's LlamaConfig defaults it to false, but exports that tie
    // the head often drop the key along with lm_head.weight; the file decides.
    const config: LlamaConfig = { ...base, sharedClassifier: tied ?? !hasLmHead };
    const { dim, hiddenDim, nHeads, nKvHeads, vocabSize, nLayers } = config;
    const headSize = dim / nHeads;
    const kvDim = nKvHeads * headSize;
    const get = (name: string, shape: number[]) => {
      const file = find(name);
      if (!file) throw new Error(`${dir}: tensor '${name}' is missing from every safetensors file`);
      return file.read(name, shape);
    };
    const matrix = (name: string, rows: number, cols: number) => {
      const file = find(name);
      if (!file) throw new Error(`${dir}: tensor '${name}' is missing from every safetensors file`);
      return file.readMatrix(name, rows, cols);
    };
    const range = part.range ?? { from: 0, to: nLayers };
    if (range.from < 0 || range.from > range.to || range.to > nLayers) {
      throw new Error(`block range [${range.from}, ${range.to}) is outside the model's ${nLayers} layers`);
    }
    const layers: LayerWeights[] = [];
    for (let l = range.from; l < range.to; l++) {
      layers.push({
        attnNorm: get(layerTensor(l, 'input_layernorm.weight'), [dim]),
        wq: permuteRotary(matrix(layerTensor(l, 'self_attn.q_proj.weight'), dim, dim), nHeads, headSize, true),
        wk: permuteRotary(matrix(layerTensor(l, 'self_attn.k_proj.weight'), kvDim, dim), nKvHeads, headSize, true),
        wv: matrix(layerTensor(l, 'self_attn.v_proj.weight'), kvDim, dim),
        wo: matrix(layerTensor(l, 'self_attn.o_proj.weight'), dim, dim),
        ffnNorm: get(layerTensor(l, 'post_attention_layernorm.weight'), [dim]),
        w1: matrix(layerTensor(l, 'mlp.gate_proj.weight'), hiddenDim, dim),
        w2: matrix(layerTensor(l, 'mlp.down_proj.weight'), dim, hiddenDim),
        w3: matrix(layerTensor(l, 'mlp.up_proj.weight'), hiddenDim, dim),
      });
    }
    let head: HeadWeights | undefined;
    if (part.head ?? true) {
      const tokenEmbedding = matrix('model.embed_tokens.weight', vocabSize, dim);
      head = {
        tokenEmbedding,
        finalNorm: get('model.norm.weight', [dim]),
        classifier: config.sharedClassifier ? tokenEmbedding : matrix('lm_head.weight', vocabSize, dim),
      };
    }
    return { config, head, range, layers };
  } finally {
    files.forEach((f) => f.close());
  }
}

/** The dtypes of an HF folder's tensors (for `model info`). */
export function hfDtypes(dir: string): FloatDtype[] {
  const { files } = openFolder(dir);
  try {
    return [...new Set(files.flatMap((f) => [...f.tensors.values()].map((t) => t.dtype)))];
  } finally {
    files.forEach((f) => f.close());
  }
}

/** Writes a whole model as an HF Llama folder: config.json and model.safetensors. */
export function writeHfLlama(dir: string, weights: ModelWeights, dtype: 'f32' | 'f16' = 'f32'): void {
  const { config, head, layers, range } = weights;
  if (!head || range.from !== 0 || range.to !== config.nLayers) throw new Error('writeHfLlama needs a whole model');
  const { dim, hiddenDim, nHeads, nKvHeads, vocabSize } = config;
  const headSize = dim / nHeads;
  const kvDim = nKvHeads * headSize;
  const tensors: TensorToWrite[] = [{ name: 'model.embed_tokens.weight', shape: [vocabSize, dim], data: dequantize(head.tokenEmbedding) }];
  layers.forEach((w, l) => {
    tensors.push(
      { name: layerTensor(l, 'input_layernorm.weight'), shape: [dim], data: w.attnNorm },
      { name: layerTensor(l, 'self_attn.q_proj.weight'), shape: [dim, dim], data: dequantize(permuteRotary(w.wq, nHeads, headSize, false)) },
      { name: layerTensor(l, 'self_attn.k_proj.weight'), shape: [kvDim, dim], data: dequantize(permuteRotary(w.wk, nKvHeads, headSize, false)) },
      { name: layerTensor(l, 'self_attn.v_proj.weight'), shape: [kvDim, dim], data: dequantize(w.wv) },
      { name: layerTensor(l, 'self_attn.o_proj.weight'), shape: [dim, dim], data: dequantize(w.wo) },
      { name: layerTensor(l, 'post_attention_layernorm.weight'), shape: [dim], data: w.ffnNorm },
      { name: layerTensor(l, 'mlp.gate_proj.weight'), shape: [hiddenDim, dim], data: dequantize(w.w1) },
      { name: layerTensor(l, 'mlp.down_proj.weight'), shape: [dim, hiddenDim], data: dequantize(w.w2) },
      { name: layerTensor(l, 'mlp.up_proj.weight'), shape: [hiddenDim, dim], data: dequantize(w.w3) },
    );
  });
  tensors.push({ name: 'model.norm.weight', shape: [dim], data: head.finalNorm });
  if (!config.sharedClassifier) tensors.push({ name: 'lm_head.weight', shape: [vocabSize, dim], data: dequantize(head.classifier) });
  mkdirSync(dir, { recursive: true });
  const hfConfig = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu',
    hidden_size: dim, intermediate_size: hiddenDim, num_hidden_layers: config.nLayers,
    num_attention_heads: nHeads, num_key_value_heads: nKvHeads, vocab_size: vocabSize,
    rms_norm_eps: config.normEps, rope_theta: config.ropeTheta, max_position_embeddings: config.seqLen,
    tie_word_embeddings: config.sharedClassifier, torch_dtype: dtype === 'f16' ? 'float16' : 'float32',
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(hfConfig, null, 2) + '\n');
  writeSafetensors(join(dir, 'model.safetensors'), tensors, dtype, { format: 'pt' });
}
