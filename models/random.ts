// Seeded random weights of any Llama shape, for tests and for benchmarking shapes we have no
// checkpoint of. The scale keeps activations of a deep stack in a sane range, as a trained
// model's would be: matrices ~ N(0, 1/in) (LeCun initialization), norm gains near 1.
import { Random } from './head.js';
import type { HeadWeights, LayerWeights, LlamaConfig, ModelWeights } from './types.js';

export function llamaConfig(shape: Pick<LlamaConfig, 'dim' | 'hiddenDim' | 'nLayers' | 'nHeads' | 'nKvHeads' | 'vocabSize' | 'seqLen'>
  & Partial<LlamaConfig>): LlamaConfig {
  return { sharedClassifier: true, normEps: 1e-5, ropeTheta: 10000, ...shape };
}

/** Standard normal draws by Box–Muller from the seeded uniform generator. */
function fillNormal(a: Float32Array, random: Random, std: number, mean = 0): Float32Array {
  for (let i = 0; i < a.length; i += 2) {
    const u = 1 - random.next();
    const v = random.next();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    a[i] = mean + r * Math.cos(2 * Math.PI * v);
    if (i + 1 < a.length) a[i + 1] = mean + r * Math.sin(2 * Math.PI * v);
  }
  return a;
}

export function randomWeights(config: LlamaConfig, seed: number): ModelWeights {
  const random = new Random(seed);
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize } = config;
  const headSize = dim / nHeads;
  const kvDim = nKvHeads * headSize;
  const matrix = (rows: number, cols: number) => fillNormal(new Float32Array(rows * cols), random, 1 / Math.sqrt(cols));
  const gain = () => fillNormal(new Float32Array(dim), random, 0.1, 1);
  const layers: LayerWeights[] = Array.from({ length: nLayers }, () => ({
    attnNorm: gain(),
    wq: matrix(nHeads * headSize, dim),
    wk: matrix(kvDim, dim),
    wv: matrix(kvDim, dim),
    wo: matrix(dim, nHeads * headSize),
    ffnNorm: gain(),
    w1: matrix(hiddenDim, dim),
    w2: matrix(dim, hiddenDim),
    w3: matrix(hiddenDim, dim),
  }));
  const tokenEmbedding = fillNormal(new Float32Array(vocabSize * dim), random, 1);
  const head: HeadWeights = {
    tokenEmbedding,
    finalNorm: gain(),
    classifier: config.sharedClassifier ? tokenEmbedding : matrix(vocabSize, dim),
  };
  return { config, head, range: { from: 0, to: nLayers }, layers };
}
