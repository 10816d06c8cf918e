/*
 * The speed bar for the TF.js forward pass: the same Llama forward (RMSNorm, interleaved
 * RoPE, grouped-query attention, SwiGLU) in plain single-threaded C, float32, one token at a
 * time, reading a llama2.c version-0 checkpoint. `heliomesh bench model` compiles it with
 * `cc -O2` and runs it on the same weights and prompt as the TF.js pass.
 *
 * usage: forward <checkpoint.bin> <steps> <rope_theta> <norm_eps> <token> [<token> ...]
 * (llama2.c files carry neither constant; run.c uses 10000 and 1e-5.)
 * Feeds the prompt tokens one by one, then greedily decodes until `steps` positions have been
 * processed, and prints one JSON line: the generated ids and the time spent in the prompt
 * and in decoding.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  int dim, hidden, layers, heads, kv_heads, vocab, seq_len, shared;
  float rope_theta, norm_eps;
} Config;

typedef struct {
  float *embedding;                 /* [vocab][dim] */
  float *attn_norm, *wq, *wk, *wv, *wo; /* per layer, stored layer after layer */
  float *ffn_norm, *w1, *w2, *w3;
  float *final_norm, *classifier;   /* classifier: [vocab][dim] */
} Weights;

typedef struct {
  float *x, *xb, *q, *att_out, *proj, *gate, *up, *scores, *logits;
  float *keys, *values; /* [layers][seq_len][kv_dim] */
} State;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void *checked_malloc(size_t bytes) {
  void *p = calloc(1, bytes);
  if (!p) {
    fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
    exit(1);
  }
  return p;
}

/* Reads `count` floats into a fresh array; the file's arrays follow each other in order. */
static float *read_floats(FILE *f, size_t count) {
  float *a = checked_malloc(count * sizeof(float));
  if (fread(a, sizeof(float), count, f) != count) {
    fprintf(stderr, "checkpoint ended early\n");
    exit(1);
  }
  return a;
}

static void load(const char *path, Config *c, Weights *w) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "cannot open %s\n", path);
    exit(1);
  }
  int h[7];
  if (fread(h, sizeof(int), 7, f) != 7) {
    fprintf(stderr, "%s: no llama2.c header\n", path);
    exit(1);
  }
  c->dim = h[0]; c->hidden = h[1]; c->layers = h[2]; c->heads = h[3]; c->kv_heads = h[4];
  c->shared = h[5] > 0; c->vocab = abs(h[5]); c->seq_len = h[6];
  size_t dim = c->dim, L = c->layers, head_size = dim / c->heads, kv_dim = c->kv_heads * head_size;
  w->embedding = read_floats(f, (size_t)c->vocab * dim);
  w->attn_norm = read_floats(f, L * dim);
  w->wq = read_floats(f, L * dim * dim);
  w->wk = read_floats(f, L * kv_dim * dim);
  w->wv = read_floats(f, L * kv_dim * dim);
  w->wo = read_floats(f, L * dim * dim);
  w->ffn_norm = read_floats(f, L * dim);
  w->w1 = read_floats(f, L * c->hidden * dim);
  w->w2 = read_floats(f, L * dim * c->hidden);
  w->w3 = read_floats(f, L * c->hidden * dim);
  w->final_norm = read_floats(f, dim);
  free(read_floats(f, (size_t)c->seq_len * head_size)); /* freq_cis tables, unused */
  w->classifier = c->shared ? w->embedding : read_floats(f, (size_t)c->vocab * dim);
  fclose(f);
}

/* out = weight * x / sqrt(mean(x^2) + 1e-5) (Zhang & Sennrich 2019, eq. 4) */
static void rmsnorm(float *out, const float *x, const float *weight, int n, float eps) {
  float ss = 0;
  for (int i = 0; i < n; i++) ss += x[i] * x[i];
  float scale = 1.0f / sqrtf(ss / n + eps);
  for (int i = 0; i < n; i++) out[i] = weight[i] * (scale * x[i]);
}

/* out[rows] = W[rows][n] x[n] */
static void matvec(float *out, const float *w, const float *x, int rows, int n) {
  for (int r = 0; r < rows; r++) {
    const float *row = w + (size_t)r * n;
    float s = 0;
    for (int i = 0; i < n; i++) s += row[i] * x[i];
    out[r] = s;
  }
}

/* Rotates interleaved pairs of each head by pos * theta^(-2i/head_size) (RoFormer, eq. 34). */
static void rope(float *v, int n, int head_size, int pos, float theta) {
  for (int i = 0; i < n; i += 2) {
    float angle = pos * powf(theta, -(float)(i % head_size) / head_size);
    float c = cosf(angle), s = sinf(angle), a = v[i], b = v[i + 1];
    v[i] = a * c - b * s;
    v[i + 1] = a * s + b * c;
  }
}

static void softmax(float *x, int n) {
  float max = x[0], sum = 0;
  for (int i = 1; i < n; i++) if (x[i] > max) max = x[i];
  for (int i = 0; i < n; i++) { x[i] = expf(x[i] - max); sum += x[i]; }
  for (int i = 0; i < n; i++) x[i] /= sum;
}

/* One position through every layer and the classifier; leaves the logits in s->logits. */
static void forward(const Config *c, const Weights *w, State *s, int token, int pos) {
  int dim = c->dim, head_size = dim / c->heads, kv_dim = c->kv_heads * head_size;
  int kv_mul = c->heads / c->kv_heads;
  memcpy(s->x, w->embedding + (size_t)token * dim, dim * sizeof(float));
  for (int l = 0; l < c->layers; l++) {
    float *keys = s->keys + (size_t)l * c->seq_len * kv_dim;
    float *values = s->values + (size_t)l * c->seq_len * kv_dim;
    rmsnorm(s->xb, s->x, w->attn_norm + (size_t)l * dim, dim, c->norm_eps);
    matvec(s->q, w->wq + (size_t)l * dim * dim, s->xb, dim, dim);
    matvec(keys + (size_t)pos * kv_dim, w->wk + (size_t)l * kv_dim * dim, s->xb, kv_dim, dim);
    matvec(values + (size_t)pos * kv_dim, w->wv + (size_t)l * kv_dim * dim, s->xb, kv_dim, dim);
    rope(s->q, dim, head_size, pos, c->rope_theta);
    rope(keys + (size_t)pos * kv_dim, kv_dim, head_size, pos, c->rope_theta);
    /* causal attention; query head h reads KV head h / kv_mul (Vaswani et al. 2017, eq. 1) */
    for (int h = 0; h < c->heads; h++) {
      const float *q = s->q + h * head_size;
      int kv = (h / kv_mul) * head_size;
      for (int t = 0; t <= pos; t++) {
        const float *k = keys + (size_t)t * kv_dim + kv;
        float dot = 0;
        for (int i = 0; i < head_size; i++) dot += q[i] * k[i];
        s->scores[t] = dot / sqrtf((float)head_size);
      }
      softmax(s->scores, pos + 1);
      float *o = s->att_out + h * head_size;
      memset(o, 0, head_size * sizeof(float));
      for (int t = 0; t <= pos; t++) {
        const float *v = values + (size_t)t * kv_dim + kv;
        for (int i = 0; i < head_size; i++) o[i] += s->scores[t] * v[i];
      }
    }
    matvec(s->proj, w->wo + (size_t)l * dim * dim, s->att_out, dim, dim);
    for (int i = 0; i < dim; i++) s->x[i] += s->proj[i];
    /* SwiGLU feed-forward (Shazeer 2020, eq. 6) */
    rmsnorm(s->xb, s->x, w->ffn_norm + (size_t)l * dim, dim, c->norm_eps);
    matvec(s->gate, w->w1 + (size_t)l * c->hidden * dim, s->xb, c->hidden, dim);
    matvec(s->up, w->w3 + (size_t)l * c->hidden * dim, s->xb, c->hidden, dim);
    for (int i = 0; i < c->hidden; i++) s->gate[i] = s->gate[i] / (1.0f + expf(-s->gate[i])) * s->up[i];
    matvec(s->proj, w->w2 + (size_t)l * dim * c->hidden, s->gate, dim, c->hidden);
    for (int i = 0; i < dim; i++) s->x[i] += s->proj[i];
  }
  rmsnorm(s->xb, s->x, w->final_norm, dim, c->norm_eps);
  matvec(s->logits, w->classifier, s->xb, c->vocab, dim);
}

static int argmax(const float *x, int n) {
  int best = 0;
  for (int i = 1; i < n; i++) if (x[i] > x[best]) best = i;
  return best;
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s <checkpoint.bin> <steps> <rope_theta> <norm_eps> <token> [<token> ...]\n", argv[0]);
    return 2;
  }
  Config c;
  Weights w;
  load(argv[1], &c, &w);
  c.rope_theta = strtof(argv[3], NULL);
  c.norm_eps = strtof(argv[4], NULL);
  int steps = atoi(argv[2]), n_prompt = argc - 5;
  if (steps > c.seq_len) steps = c.seq_len;
  if (n_prompt > steps) {
    fprintf(stderr, "the prompt (%d tokens) is longer than steps (%d)\n", n_prompt, steps);
    return 2;
  }
  int kv_dim = c.kv_heads * (c.dim / c.heads);
  State s = {
    .x = checked_malloc(c.dim * sizeof(float)), .xb = checked_malloc(c.dim * sizeof(float)),
    .q = checked_malloc(c.dim * sizeof(float)), .att_out = checked_malloc(c.dim * sizeof(float)),
    .proj = checked_malloc(c.dim * sizeof(float)), .gate = checked_malloc(c.hidden * sizeof(float)),
    .up = checked_malloc(c.hidden * sizeof(float)), .scores = checked_malloc(c.seq_len * sizeof(float)),
    .logits = checked_malloc(c.vocab * sizeof(float)),
    .keys = checked_malloc((size_t)c.layers * c.seq_len * kv_dim * sizeof(float)),
    .values = checked_malloc((size_t)c.layers * c.seq_len * kv_dim * sizeof(float)),
  };
  double t0 = now_ms();
  int token = 0;
  for (int p = 0; p < n_prompt; p++) {
    token = atoi(argv[5 + p]);
    if (token < 0 || token >= c.vocab) {
      fprintf(stderr, "token %d outside the vocabulary\n", token);
      return 2;
    }
    forward(&c, &w, &s, token, p);
  }
  double t1 = now_ms();
  printf("{\"promptTokens\":%d,\"promptMs\":%.3f,\"ids\":[", n_prompt, t1 - t0);
  int decoded = 0;
  for (int pos = n_prompt; pos < steps; pos++) {
    token = argmax(s.logits, c.vocab);
    printf("%s%d", decoded ? "," : "", token);
    decoded++;
    if (pos + 1 < steps) forward(&c, &w, &s, token, pos);
  }
  double t2 = now_ms();
  /* the last id needs no forward: count the forwards actually timed */
  printf("],\"decodeForwards\":%d,\"decodeMs\":%.3f}\n", decoded > 0 ? decoded - 1 : 0, t2 - t1);
  return 0;
}
