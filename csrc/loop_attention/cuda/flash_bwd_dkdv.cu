// Backward, key side: one CTA per (key block of 64 keys, KV head, sequence); each warp owns 16 keys and
// accumulates their dK and dV in registers while the CTA walks, for each branch, the query heads of
// the GQA group and the query blocks that see the key block, in a fixed order (Q, dO and the per-query
// lse / delta / coef double-buffered in shared memory). Per step, with the scores transposed so that
// keys are the MMA rows:
//   S^T = K Q^T, P^T = exp(scale S^T - lse) (masked), dP^T = V dO^T,
//   dV += (c P)^T dO, dS^T = c P^T (dP^T - delta), dK += dS^T Q     (c: the branch's share of dO)
// dK is scaled once at the end. No atomics: each dK/dV row is written by exactly one thread.
#include "flash_common.cuh"
#include "flash_dispatch.h"

namespace iquest::cuda {
namespace {

template <int D>
struct DkdvTile {
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kBlockN = 16 * kWarps;       // keys per CTA
  static constexpr int kBlockQ = D == 128 ? 32 : 64;  // queries per step (register budget at D = 128)
  static constexpr int kSmemBytes = (2 * kBlockN + 4 * kBlockQ) * D * 2 + 3 * 2 * kBlockQ * 4;
};

template <typename T, int D>
__global__ void __launch_bounds__(DkdvTile<D>::kThreads) flash_bwd_dkdv_kernel(const AttentionParams p) {
  using Tile = DkdvTile<D>;
  constexpr int BN = Tile::kBlockN, BQ = Tile::kBlockQ, NT = Tile::kThreads;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* sK = reinterpret_cast<T*>(smem_raw);
  T* sV = sK + BN * D;
  T* sQ = sV + BN * D;       // [2][BQ][D]
  T* sdO = sQ + 2 * BQ * D;  // [2][BQ][D]
  float* sLse = reinterpret_cast<float*>(sdO + 2 * BQ * D);  // [2][BQ], log2 domain, +inf: row sees nothing
  float* sDelta = sLse + 2 * BQ;                             // [2][BQ]
  float* sCoef = sDelta + 2 * BQ;                            // [2][BQ]

  const int s = blockIdx.z, hk = blockIdx.y, n_block = blockIdx.x;
  const SeqBounds sb = seq_bounds(p, s);
  const int64_t j0 = static_cast<int64_t>(n_block) * BN;
  if (j0 >= sb.k_count) return;
  const int nk = static_cast<int>(min_i64(BN, sb.k_count - j0));

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int H = p.heads, group = p.heads / p.kv_heads;
  const int64_t q_row_stride = static_cast<int64_t>(H) * D, kv_row_stride = static_cast<int64_t>(p.kv_heads) * D;
  const float scale_log2 = p.scale * kLog2e;
  const int k_local[2] = {warp * 16 + g, warp * 16 + g + 8};
  const int64_t k_pos0 = p.k_start + j0;
  const int64_t k_pos[2] = {k_pos0 + k_local[0], k_pos0 + k_local[1]};

  for (int b = 0; b < p.num_branches; ++b) {
    const AttentionBranch& br = p.branch[b];
    __syncthreads();  // every warp is done with the previous branch's buffers
    const int64_t kv_off = (sb.k_begin + j0) * kv_row_stride + hk * D;
    load_tile_async<D, BN, NT>(sK, static_cast<const T*>(br.k) + kv_off, kv_row_stride, nk);
    load_tile_async<D, BN, NT>(sV, static_cast<const T*>(br.v) + kv_off, kv_row_stride, nk);
    cute::cp_async_fence();

    const PosRange qp = intersect(visible_queries_of_block(k_pos0, k_pos0 + nk, br.window),
                                  {p.q_start, p.q_start + sb.q_count});
    const int64_t i_lo = qp.lo - p.q_start;
    const int n_qt = qp.empty() ? 0 : static_cast<int>((qp.hi - qp.lo + BQ - 1) / BQ);
    const int steps = n_qt * group;

    // Step `it`: query head hk * group + it / n_qt, query block starting at i_lo + (it % n_qt) * BQ.
    auto issue = [&](int it, int buf) {
      const int h = hk * group + it / n_qt;
      const int64_t i = i_lo + static_cast<int64_t>(it % n_qt) * BQ;
      const int valid = static_cast<int>(min_i64(BQ, sb.q_count - i));
      const int64_t off = (sb.q_begin + i) * q_row_stride + h * D;
      load_tile_async<D, BQ, NT>(sQ + buf * BQ * D, static_cast<const T*>(p.q) + off, q_row_stride, valid);
      load_tile_async<D, BQ, NT>(sdO + buf * BQ * D, static_cast<const T*>(p.dout) + off, q_row_stride, valid);
      cute::cp_async_fence();
      for (int r = threadIdx.x; r < BQ; r += NT) {
        float lse2 = INFINITY, delta = 0.f, coef = 0.f;
        if (r < valid) {
          const int64_t stat = (sb.q_begin + i + r) * H + h;
          const float lse = br.lse[stat];
          lse2 = lse == -INFINITY ? INFINITY : lse * kLog2e;
          delta = br.delta[stat];
          coef = grad_coef(br.coef, p.gate ? p.gate[stat] : 0.f);
        }
        sLse[buf * BQ + r] = lse2;
        sDelta[buf * BQ + r] = delta;
        sCoef[buf * BQ + r] = coef;
      }
    };

    float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
    for (int nd = 0; nd < D / 8; ++nd) {
#pragma unroll
      for (int e = 0; e < 4; ++e) dk[nd][e] = dv[nd][e] = 0.f;
    }

    if (steps > 0) issue(0, 0);
    for (int it = 0; it < steps; ++it) {
      const int buf = it & 1;
      const int64_t i = i_lo + static_cast<int64_t>(it % n_qt) * BQ;
      cute::cp_async_wait<0>();
      __syncthreads();  // step `it` landed; every warp left step it - 1, whose buffer is refilled next
      if (it + 1 < steps) issue(it + 1, buf ^ 1);
      const T* q_t = sQ + buf * BQ * D;
      const T* do_t = sdO + buf * BQ * D;
      const float* lse_t = sLse + buf * BQ;
      const float* delta_t = sDelta + buf * BQ;
      const float* coef_t = sCoef + buf * BQ;

      // S^T = K Q^T (16 keys x BQ queries per warp).
      float st[BQ / 8][4];
#pragma unroll
      for (int qb = 0; qb < BQ / 8; ++qb) st[qb][0] = st[qb][1] = st[qb][2] = st[qb][3] = 0.f;
#pragma unroll
      for (int kb = 0; kb < D / 16; ++kb) {
        uint32_t ka[4];
        ldsm_a<D>(ka, sK, warp * 16, kb * 16, lane);
#pragma unroll
        for (int qb2 = 0; qb2 < BQ / 16; ++qb2) {
          uint32_t bf[4];
          ldsm_b_nk<D>(bf, q_t, qb2 * 16, kb * 16, lane);
          mma<T>(st[2 * qb2], ka, bf[0], bf[1]);
          mma<T>(st[2 * qb2 + 1], ka, bf[2], bf[3]);
        }
      }
      const int64_t q_pos0 = p.q_start + i;
      const bool full = block_fully_visible(q_pos0, q_pos0 + BQ, k_pos0, k_pos0 + BN, br.window);
#pragma unroll
      for (int qb = 0; qb < BQ / 8; ++qb) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = qb * 8 + 2 * t + (e & 1);
          const bool ok = full || is_visible(q_pos0 + col, k_pos[e >> 1], br.window);
          st[qb][e] = ok ? exp2f(st[qb][e] * scale_log2 - lse_t[col]) : 0.f;
        }
      }

      // dP^T = V dO^T.
      float dpt[BQ / 8][4];
#pragma unroll
      for (int qb = 0; qb < BQ / 8; ++qb) dpt[qb][0] = dpt[qb][1] = dpt[qb][2] = dpt[qb][3] = 0.f;
#pragma unroll
      for (int kb = 0; kb < D / 16; ++kb) {
        uint32_t va[4];
        ldsm_a<D>(va, sV, warp * 16, kb * 16, lane);
#pragma unroll
        for (int qb2 = 0; qb2 < BQ / 16; ++qb2) {
          uint32_t bf[4];
          ldsm_b_nk<D>(bf, do_t, qb2 * 16, kb * 16, lane);
          mma<T>(dpt[2 * qb2], va, bf[0], bf[1]);
          mma<T>(dpt[2 * qb2 + 1], va, bf[2], bf[3]);
        }
      }

      // st <- c P^T, dpt <- dS^T = c P^T (dP^T - delta).
#pragma unroll
      for (int qb = 0; qb < BQ / 8; ++qb) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = qb * 8 + 2 * t + (e & 1);
          const float cp = coef_t[col] * st[qb][e];
          dpt[qb][e] = cp * (dpt[qb][e] - delta_t[col]);
          st[qb][e] = cp;
        }
      }

      // dV += (c P)^T dO, dK += dS^T Q.
#pragma unroll
      for (int kk = 0; kk < BQ / 16; ++kk) {
        uint32_t pa[4], da[4];
        pack_a<T>(pa, st[2 * kk], st[2 * kk + 1]);
        pack_a<T>(da, dpt[2 * kk], dpt[2 * kk + 1]);
#pragma unroll
        for (int nd2 = 0; nd2 < D / 16; ++nd2) {
          uint32_t bf[4];
          ldsm_b_kn<D>(bf, do_t, kk * 16, nd2 * 16, lane);
          mma<T>(dv[2 * nd2], pa, bf[0], bf[1]);
          mma<T>(dv[2 * nd2 + 1], pa, bf[2], bf[3]);
          ldsm_b_kn<D>(bf, q_t, kk * 16, nd2 * 16, lane);
          mma<T>(dk[2 * nd2], da, bf[0], bf[1]);
          mma<T>(dk[2 * nd2 + 1], da, bf[2], bf[3]);
        }
      }
    }
    cute::cp_async_wait<0>();  // the K/V copy is outstanding when no query block sees this key block

    // dK, dV of this warp's keys (zero for keys no query sees).
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      if (k_local[r] >= nk) continue;
      const int64_t at = (sb.k_begin + j0 + k_local[r]) * kv_row_stride + hk * D + 2 * t;
#pragma unroll
      for (int nd = 0; nd < D / 8; ++nd) {
        store_pair_as<T>(br.dk, at + nd * 8, p.grads_are_f32, dk[nd][2 * r] * p.scale, dk[nd][2 * r + 1] * p.scale);
        store_pair_as<T>(br.dv, at + nd * 8, p.grads_are_f32, dv[nd][2 * r], dv[nd][2 * r + 1]);
      }
    }
  }
}

}  // namespace

void flash_bwd_dkdv(const AttentionParams& p, cudaStream_t stream) {
  dispatch_elem_and_dim(p.elem, p.head_dim, [&]<typename T, int D>() {
    using Tile = DkdvTile<D>;
    const dim3 grid(static_cast<unsigned>((p.max_k_len + Tile::kBlockN - 1) / Tile::kBlockN), p.kv_heads,
                    p.num_seqs);
    if (grid.x == 0) return;
    launch(flash_bwd_dkdv_kernel<T, D>, grid, dim3(Tile::kThreads), Tile::kSmemBytes, stream, p);
  });
}

}  // namespace iquest::cuda
