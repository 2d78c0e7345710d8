// Flash-style CPU kernels of causal (optionally windowed) attention and of fused gated loop
// attention, forward and backward, on float32 row-major buffers (AttentionParams of ../params.h with
// elem = kF32).
//
// Included once per instruction set by kernels_<isa>.cpp, which defines CPU_CAPABILITY (the at::vec
// namespace) and IQ_ISA (this file's namespace) first; dispatch.cpp picks one at run time.
//
// Structure: a tile of query rows of one head meets the key tiles it can see; scores come from BLAS
// micro-GEMMs, the softmax is online (running max and sum per row), masks are per-row column ranges
// from common/attention_math.h. No buffer larger than a (query tile x key tile) block is allocated.
// Forward parallelises over (sequence, head, query tile); backward over (sequence, head), each task
// owning its dq rows and its per-query-head dk/dv accumulators, so results are bitwise deterministic.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <vector>

#include "../../common/attention_math.h"
#include "../params.h"
#include "blas.h"

namespace iquest::cpu::IQ_ISA {

using Vec = at::vec::Vectorized<float>;

// Views of AttentionParams' sequence and head layout for the host loops below.
struct SequenceLayout {
  int64_t num_seqs, q_len, k_len;
  const int32_t* cu_seqlens;

  int64_t q_begin(int64_t s) const { return cu_seqlens ? cu_seqlens[s] : s * q_len; }
  int64_t k_begin(int64_t s) const { return cu_seqlens ? cu_seqlens[s] : s * k_len; }
  int64_t q_count(int64_t s) const { return cu_seqlens ? cu_seqlens[s + 1] - cu_seqlens[s] : q_len; }
  int64_t k_count(int64_t s) const { return cu_seqlens ? cu_seqlens[s + 1] - cu_seqlens[s] : k_len; }
};

struct HeadLayout {
  int64_t heads, kv_heads, head_dim;
  int64_t q_row() const { return heads * head_dim; }
  int64_t kv_row() const { return kv_heads * head_dim; }
  int64_t kv_head_of(int64_t h) const { return h / (heads / kv_heads); }
};

inline SequenceLayout sequences_of(const AttentionParams& p) { return {p.num_seqs, p.q_len, p.k_len, p.cu_seqlens}; }
inline HeadLayout heads_of(const AttentionParams& p) { return {p.heads, p.kv_heads, p.head_dim}; }
inline const float* f32(const void* x) { return static_cast<const float*>(x); }
inline float* f32(void* x) { return static_cast<float*>(x); }

// Tile sizes (rows of queries x rows of keys). The windowed branch uses small query tiles so that
// it computes few scores outside the window.
constexpr int64_t kFwdQueryTile = 256;
constexpr int64_t kFwdKeyTile = 512;
constexpr int64_t kBwdQueryTile = 64;
constexpr int64_t kBwdKeyTile = 256;
constexpr int64_t kWindowQueryTile = 32;

// ---------------------------------------------------------------------------------------------
// Row primitives

inline void fill(float* x, int64_t n, float value) { std::fill(x, x + n, value); }

inline void scale(float* x, int64_t n, float a) {
  at::vec::map([a](Vec v) { return v * Vec(a); }, x, x, n);
}

inline float max_of(const float* x, int64_t n) {
  return at::vec::reduce_all<float>([](Vec& a, Vec& b) { return at::vec::maximum(a, b); }, x, n);
}

inline float dot(const float* a, const float* b, int64_t n) {
  return at::vec::map2_reduce_all<float>([](Vec x, Vec y) { return x * y; },
                                         [](Vec x, Vec y) { return x + y; }, a, b, n);
}

// x = exp(x - shift) in place; returns the sum of the new values.
inline float exp_shifted_sum(float* x, int64_t n, float shift) {
  const Vec vshift(shift);
  Vec acc(0.f);
  int64_t i = 0;
  for (; i + Vec::size() <= n; i += Vec::size()) {
    Vec e = (Vec::loadu(x + i) - vshift).exp_u20();
    e.store(x + i);
    acc = acc + e;
  }
  float sum = at::vec::vec_reduce_all<float>([](Vec& a, Vec& b) { return a + b; }, acc);
  for (; i < n; ++i) {
    x[i] = std::exp(x[i] - shift);
    sum += x[i];
  }
  return sum;
}

// x = p * (x - c) in place (softmax backward: dS = P * (dP - delta)).
inline void softmax_grad(float* x, const float* p, int64_t n, float c) {
  at::vec::map2([c](Vec dp, Vec pv) { return pv * (dp - Vec(c)); }, x, x, p, n);
}

// ---------------------------------------------------------------------------------------------
// One branch over one tile of queries

// Query rows of one head: rows [0, count) at positions pos0 + r, row r at ptr + r * stride.
struct QueryRows {
  const float* ptr;
  int64_t stride;
  int64_t count;
  int64_t pos0;
};

// Keys and values of one (sequence, kv head): key j at position pos0 + j.
struct KeyRows {
  const float* k;
  const float* v;
  int64_t stride;
  int64_t count;
  int64_t pos0;
};

struct Workspace {
  std::vector<float> scores, grads, row_max, row_sum;
  Workspace(int64_t q_tile, int64_t k_tile)
      : scores(q_tile * k_tile), grads(q_tile * k_tile), row_max(q_tile), row_sum(q_tile) {}
};

// Positions of keys the tile's queries see, restricted to the keys that exist.
inline PosRange tile_keys(const QueryRows& q, const KeyRows& kv, int64_t window) {
  return intersect(visible_keys_of_block(q.pos0, q.pos0 + q.count, window), {kv.pos0, kv.pos0 + kv.count});
}

// Columns [lo, hi) of a key block starting at position k0 (n keys) seen by the query at q_pos.
inline PosRange visible_columns(int64_t q_pos, int64_t k0, int64_t n, int64_t window) {
  const PosRange r = intersect(visible_keys(q_pos, window), {k0, k0 + n});
  return {r.lo - k0, r.hi - k0};
}

// out (count x D, row stride out_stride) = softmax(scale * q k^T, masked) v, lse[r * lse_stride].
inline void attend_tile_fwd(const QueryRows& q, const KeyRows& kv, int64_t D, int64_t window, float sm_scale,
                            float* out, int64_t out_stride, float* lse, int64_t lse_stride, Workspace& ws) {
  const int64_t m = q.count;
  float* row_max = ws.row_max.data();
  float* row_sum = ws.row_sum.data();
  fill(row_max, m, -INFINITY);
  fill(row_sum, m, 0.f);
  const PosRange keys = tile_keys(q, kv, window);
  bool first = true;
  for (int64_t k0 = keys.lo; k0 < keys.hi; k0 += kFwdKeyTile) {
    const int64_t n = std::min(kFwdKeyTile, keys.hi - k0);
    const float* kt = kv.k + (k0 - kv.pos0) * kv.stride;
    const float* vt = kv.v + (k0 - kv.pos0) * kv.stride;
    float* s = ws.scores.data();
    gemm(Op::T, Op::N, n, m, D, sm_scale, kt, kv.stride, q.ptr, q.stride, 0.f, s, n);
    for (int64_t r = 0; r < m; ++r) {
      float* srow = s + r * n;
      const PosRange cols = visible_columns(q.pos0 + r, k0, n, window);
      if (cols.empty()) {
        fill(srow, n, 0.f);
        continue;
      }
      fill(srow, cols.lo, 0.f);
      fill(srow + cols.hi, n - cols.hi, 0.f);
      const float new_max = std::max(row_max[r], max_of(srow + cols.lo, cols.hi - cols.lo));
      const float alpha = rescale_factor(row_max[r], new_max);
      const float sum = exp_shifted_sum(srow + cols.lo, cols.hi - cols.lo, new_max);
      row_sum[r] = row_sum[r] * alpha + sum;
      row_max[r] = new_max;
      if (!first) scale(out + r * out_stride, D, alpha);
    }
    gemm(Op::N, Op::N, D, m, n, 1.f, vt, kv.stride, s, n, first ? 0.f : 1.f, out, out_stride);
    first = false;
  }
  for (int64_t r = 0; r < m; ++r) {
    if (first) fill(out + r * out_stride, D, 0.f);
    else scale(out + r * out_stride, D, row_sum[r] > 0.f ? 1.f / row_sum[r] : 0.f);
    lse[r * lse_stride] = lse_of(row_max[r], row_sum[r]);
  }
}

// Backward of attend_tile_fwd for one tile: dq rows are accumulated, dk/dv rows (indexed like kv,
// row stride dkv_stride) are accumulated. dout rows have stride dout_stride; delta[r] is
// rowsum(dout * out) minus the incoming lse gradient.
inline void attend_tile_bwd(const QueryRows& q, const KeyRows& kv, int64_t D, int64_t window, float sm_scale,
                            const float* dout, int64_t dout_stride, const float* lse, int64_t lse_stride,
                            const float* delta, float* dq, int64_t dq_stride, float* dk, float* dv,
                            int64_t dkv_stride, Workspace& ws) {
  const int64_t m = q.count;
  const PosRange keys = tile_keys(q, kv, window);
  for (int64_t k0 = keys.lo; k0 < keys.hi; k0 += kBwdKeyTile) {
    const int64_t n = std::min(kBwdKeyTile, keys.hi - k0);
    const int64_t j0 = k0 - kv.pos0;
    const float* kt = kv.k + j0 * kv.stride;
    const float* vt = kv.v + j0 * kv.stride;
    float* p = ws.scores.data();
    float* ds = ws.grads.data();
    gemm(Op::T, Op::N, n, m, D, sm_scale, kt, kv.stride, q.ptr, q.stride, 0.f, p, n);
    for (int64_t r = 0; r < m; ++r) {
      float* prow = p + r * n;
      const PosRange cols = visible_columns(q.pos0 + r, k0, n, window);
      const float row_lse = lse[r * lse_stride];
      if (cols.empty() || row_lse == -INFINITY) {
        fill(prow, n, 0.f);
        continue;
      }
      fill(prow, cols.lo, 0.f);
      fill(prow + cols.hi, n - cols.hi, 0.f);
      exp_shifted_sum(prow + cols.lo, cols.hi - cols.lo, row_lse);
    }
    gemm(Op::N, Op::T, D, n, m, 1.f, dout, dout_stride, p, n, 1.f, dv + j0 * dkv_stride, dkv_stride);
    gemm(Op::T, Op::N, n, m, D, 1.f, vt, kv.stride, dout, dout_stride, 0.f, ds, n);
    for (int64_t r = 0; r < m; ++r) softmax_grad(ds + r * n, p + r * n, n, delta[r]);
    gemm(Op::N, Op::N, D, m, n, sm_scale, kt, kv.stride, ds, n, 1.f, dq, dq_stride);
    gemm(Op::N, Op::T, D, n, m, sm_scale, q.ptr, q.stride, ds, n, 1.f, dk + j0 * dkv_stride, dkv_stride);
  }
}

// ---------------------------------------------------------------------------------------------
// Work decomposition

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Query tiles of all sequences, numbered 0..total(); each sequence's tiles are visited in zigzag
// order (light, heavy, light, ...) so that contiguous chunks of work carry similar causal cost.
struct QueryTiles {
  std::vector<int64_t> first;  // first tile number of each sequence, plus the total at the end
  int64_t tile;

  QueryTiles(const SequenceLayout& seq, int64_t tile_rows) : first(seq.num_seqs + 1, 0), tile(tile_rows) {
    for (int64_t s = 0; s < seq.num_seqs; ++s) first[s + 1] = first[s] + ceil_div(seq.q_count(s), tile);
  }
  int64_t total() const { return first.back(); }

  // (sequence, first query row inside the sequence) of tile number t.
  std::pair<int64_t, int64_t> locate(int64_t t) const {
    const int64_t s = std::upper_bound(first.begin(), first.end(), t) - first.begin() - 1;
    const int64_t count = first[s + 1] - first[s], i = t - first[s];
    const int64_t zigzag = (i % 2 == 0) ? i / 2 : count - 1 - i / 2;
    return {s, zigzag * tile};
  }
};

inline QueryRows query_rows(const float* q, const SequenceLayout& seq, const HeadLayout& dims, int64_t s,
                            int64_t h, int64_t i0, int64_t count, int64_t pos0) {
  return {q + (seq.q_begin(s) + i0) * dims.q_row() + h * dims.head_dim, dims.q_row(), count, pos0};
}

inline KeyRows key_rows(const float* k, const float* v, const SequenceLayout& seq, const HeadLayout& dims,
                        int64_t s, int64_t h, int64_t pos0) {
  const int64_t offset = seq.k_begin(s) * dims.kv_row() + dims.kv_head_of(h) * dims.head_dim;
  return {k + offset, v + offset, dims.kv_row(), seq.k_count(s), pos0};
}

// ---------------------------------------------------------------------------------------------
// attention_with_lse

inline void attention_fwd(const AttentionParams& p) {
  const SequenceLayout seq = sequences_of(p);
  const HeadLayout dims = heads_of(p);
  const AttentionBranch& br = p.branch[0];
  const QueryTiles tiles(seq, kFwdQueryTile);
  const int64_t H = dims.heads, D = dims.head_dim;
  at::parallel_for(0, H * tiles.total(), 1, [&](int64_t begin, int64_t end) {
    Workspace ws(kFwdQueryTile, kFwdKeyTile);
    for (int64_t w = begin; w < end; ++w) {
      const int64_t h = w / tiles.total();
      const auto [s, i0] = tiles.locate(w % tiles.total());
      const int64_t m = std::min(kFwdQueryTile, seq.q_count(s) - i0);
      const QueryRows q = query_rows(f32(p.q), seq, dims, s, h, i0, m, p.q_start + i0);
      const KeyRows kv = key_rows(f32(br.k), f32(br.v), seq, dims, s, h, p.k_start);
      const int64_t row = seq.q_begin(s) + i0;
      attend_tile_fwd(q, kv, D, br.window, p.scale, f32(br.out) + row * dims.q_row() + h * D, dims.q_row(),
                      br.lse + row * H + h, H, ws);
    }
  });
}

inline void attention_bwd(const AttentionParams& p) {
  const SequenceLayout seq = sequences_of(p);
  const HeadLayout dims = heads_of(p);
  const AttentionBranch& br = p.branch[0];
  const float *q = f32(p.q), *out = f32(br.out), *dout = f32(p.dout);
  float *dq = f32(p.dq), *dk = f32(br.dk), *dv = f32(br.dv);
  const int64_t H = dims.heads, D = dims.head_dim, row_len = dims.q_row();
  at::parallel_for(0, seq.num_seqs * H, 1, [&](int64_t begin, int64_t end) {
    Workspace ws(kBwdQueryTile, kBwdKeyTile);
    std::vector<float> delta(kBwdQueryTile);
    for (int64_t w = begin; w < end; ++w) {
      const int64_t s = w / H, h = w % H;
      const KeyRows kv = key_rows(f32(br.k), f32(br.v), seq, dims, s, h, p.k_start);
      const int64_t kv_offset = seq.k_begin(s) * row_len + h * D;
      for (int64_t i0 = 0; i0 < seq.q_count(s); i0 += kBwdQueryTile) {
        const int64_t m = std::min(kBwdQueryTile, seq.q_count(s) - i0);
        const int64_t row = seq.q_begin(s) + i0;
        const int64_t off = row * row_len + h * D;
        for (int64_t r = 0; r < m; ++r) {
          const int64_t stat = (row + r) * H + h;
          delta[r] = dot(dout + off + r * row_len, out + off + r * row_len, D) - (p.dlse ? p.dlse[stat] : 0.f);
          fill(dq + off + r * row_len, D, 0.f);
        }
        attend_tile_bwd(query_rows(q, seq, dims, s, h, i0, m, p.q_start + i0), kv, D, br.window, p.scale,
                        dout + off, row_len, br.lse + row * H + h, H, delta.data(), dq + off, row_len,
                        dk + kv_offset, dv + kv_offset, row_len, ws);
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Fused gated loop attention

inline void loop_attention_fwd(const AttentionParams& p) {
  const SequenceLayout seq = sequences_of(p);
  const HeadLayout dims = heads_of(p);
  const AttentionBranch &global = p.branch[0], &local = p.branch[1];
  const float* q = f32(p.q);
  float *out = f32(p.out), *out_global = f32(global.out), *out_local = f32(local.out);
  const QueryTiles tiles(seq, kFwdQueryTile);
  const int64_t H = dims.heads, D = dims.head_dim, row_len = dims.q_row();
  at::parallel_for(0, H * tiles.total(), 1, [&](int64_t begin, int64_t end) {
    Workspace ws(kFwdQueryTile, kFwdKeyTile);
    for (int64_t w = begin; w < end; ++w) {
      const int64_t h = w / tiles.total();
      const auto [s, i0] = tiles.locate(w % tiles.total());
      const int64_t m = std::min(kFwdQueryTile, seq.q_count(s) - i0);
      const int64_t row = seq.q_begin(s) + i0;
      const int64_t off = row * row_len + h * D;
      const KeyRows kv_global = key_rows(f32(global.k), f32(global.v), seq, dims, s, h, 0);
      const KeyRows kv_local = key_rows(f32(local.k), f32(local.v), seq, dims, s, h, 0);
      attend_tile_fwd(query_rows(q, seq, dims, s, h, i0, m, i0), kv_global, D, kNoWindow, p.scale,
                      out_global + off, row_len, global.lse + row * H + h, H, ws);
      for (int64_t j0 = 0; j0 < m; j0 += kWindowQueryTile) {
        const int64_t mj = std::min(kWindowQueryTile, m - j0);
        attend_tile_fwd(query_rows(q, seq, dims, s, h, i0 + j0, mj, i0 + j0), kv_local, D, local.window, p.scale,
                        out_local + off + j0 * row_len, row_len, local.lse + (row + j0) * H + h, H, ws);
      }
      const float* w_h = p.gate_weight + h * D;
      const float b_h = p.gate_bias[h];
      for (int64_t r = 0; r < m; ++r) {
        const int64_t o = off + r * row_len;
        const float g = sigmoid(dot(q + o, w_h, D) + b_h);
        p.gate[(row + r) * H + h] = g;
        at::vec::map2([g](Vec og, Vec ol) { return ol + Vec(g) * (og - ol); }, out + o, out_global + o,
                      out_local + o, D);
      }
    }
  });
}

inline void loop_attention_bwd(const AttentionParams& p) {
  const SequenceLayout seq = sequences_of(p);
  const HeadLayout dims = heads_of(p);
  const AttentionBranch &global = p.branch[0], &local = p.branch[1];
  const float *q = f32(p.q), *out_global = f32(global.out), *out_local = f32(local.out);
  float* dq = f32(p.dq);
  const int64_t H = dims.heads, D = dims.head_dim, row_len = dims.q_row();
  at::parallel_for(0, seq.num_seqs * H, 1, [&](int64_t begin, int64_t end) {
    Workspace ws(kBwdQueryTile, kBwdKeyTile);
    std::vector<float> dout_global(kBwdQueryTile * D), dout_local(kBwdQueryTile * D);
    std::vector<float> delta_global(kBwdQueryTile), delta_local(kBwdQueryTile), dw(D);
    for (int64_t w = begin; w < end; ++w) {
      const int64_t s = w / H, h = w % H;
      const KeyRows kv_global = key_rows(f32(global.k), f32(global.v), seq, dims, s, h, 0);
      const KeyRows kv_local = key_rows(f32(local.k), f32(local.v), seq, dims, s, h, 0);
      const int64_t kv_offset = seq.k_begin(s) * row_len + h * D;
      const float* w_h = p.gate_weight + h * D;
      fill(dw.data(), D, 0.f);
      float db = 0.f;
      for (int64_t i0 = 0; i0 < seq.q_count(s); i0 += kBwdQueryTile) {
        const int64_t m = std::min(kBwdQueryTile, seq.q_count(s) - i0);
        const int64_t row = seq.q_begin(s) + i0;
        const int64_t off = row * row_len + h * D;
        for (int64_t r = 0; r < m; ++r) {
          const int64_t o = off + r * row_len;
          const float g = p.gate[(row + r) * H + h];
          const float* dout = f32(p.dout) + o;
          const float dot_global = dot(dout, out_global + o, D), dot_local = dot(dout, out_local + o, D);
          const float dlogit = gate_logit_grad(dot_global - dot_local, g);
          at::vec::map([g](Vec x) { return x * Vec(g); }, dout_global.data() + r * D, dout, D);
          at::vec::map([g](Vec x) { return x * Vec(1.f - g); }, dout_local.data() + r * D, dout, D);
          delta_global[r] = g * dot_global;
          delta_local[r] = (1.f - g) * dot_local;
          at::vec::map([dlogit](Vec x) { return x * Vec(dlogit); }, dq + o, w_h, D);
          at::vec::map2([dlogit](Vec acc, Vec x) { return acc + x * Vec(dlogit); }, dw.data(), dw.data(),
                        q + o, D);
          db += dlogit;
        }
        attend_tile_bwd(query_rows(q, seq, dims, s, h, i0, m, i0), kv_global, D, kNoWindow, p.scale,
                        dout_global.data(), D, global.lse + row * H + h, H, delta_global.data(), dq + off,
                        row_len, f32(global.dk) + kv_offset, f32(global.dv) + kv_offset, row_len, ws);
        for (int64_t j0 = 0; j0 < m; j0 += kWindowQueryTile) {
          const int64_t mj = std::min(kWindowQueryTile, m - j0);
          attend_tile_bwd(query_rows(q, seq, dims, s, h, i0 + j0, mj, i0 + j0), kv_local, D, local.window,
                          p.scale, dout_local.data() + j0 * D, D, local.lse + (row + j0) * H + h, H,
                          delta_local.data() + j0, dq + off + j0 * row_len, row_len, f32(local.dk) + kv_offset,
                          f32(local.dv) + kv_offset, row_len, ws);
        }
      }
      std::copy(dw.begin(), dw.end(), p.d_gate_weight + (s * H + h) * D);
      p.d_gate_bias[s * H + h] = db;
    }
  });
}

}  // namespace iquest::cpu::IQ_ISA
