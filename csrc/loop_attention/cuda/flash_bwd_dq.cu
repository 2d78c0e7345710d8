// Backward, query side, and the row-statistics kernels that precede the backward.
//
// dQ: one CTA per (query tile of 64 rows, query head, sequence), each warp owning 16 rows, walking per
// branch the same key tiles as the forward (K/V double-buffered through cp.async):
//   S = Q K^T, P = exp(scale S - lse) (masked), dP = dO V^T, dS = c P (dP - delta), dQ += dS K
// with c the branch's share of dO. The sum over branches stays in registers; loop attention adds the
// gate term dlogit * gate_weight[h]. No atomics: each dQ row is written once, by one thread.
#include "flash_common.cuh"
#include "flash_dispatch.h"

namespace iquest::cuda {
namespace {

template <int D>
struct DqTile {
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kBlockM = 16 * kWarps;
  static constexpr int kBlockN = 64;
  static constexpr int kSmemBytes = (2 * kBlockM + 4 * kBlockN) * D * 2;  // Q, dO + double-buffered K, V
};

template <typename T, int D>
__global__ void __launch_bounds__(DqTile<D>::kThreads) flash_bwd_dq_kernel(const AttentionParams p) {
  using Tile = DqTile<D>;
  constexpr int BM = Tile::kBlockM, BN = Tile::kBlockN, NT = Tile::kThreads;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);
  T* sdO = sQ + BM * D;
  T* sK = sdO + BM * D;     // [2][BN][D]
  T* sV = sK + 2 * BN * D;  // [2][BN][D]

  const int s = blockIdx.z, h = blockIdx.y;
  const int m_block = gridDim.x - 1 - blockIdx.x;
  const SeqBounds sb = seq_bounds(p, s);
  const int64_t i0 = static_cast<int64_t>(m_block) * BM;
  if (i0 >= sb.q_count) return;
  const int m = static_cast<int>(min_i64(BM, sb.q_count - i0));

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int H = p.heads, hk = h / (p.heads / p.kv_heads);
  const int64_t q_row_stride = static_cast<int64_t>(H) * D, kv_row_stride = static_cast<int64_t>(p.kv_heads) * D;
  const float scale_log2 = p.scale * kLog2e;

  const int64_t q_off = (sb.q_begin + i0) * q_row_stride + h * D;
  load_tile_async<D, BM, NT>(sQ, static_cast<const T*>(p.q) + q_off, q_row_stride, m);
  load_tile_async<D, BM, NT>(sdO, static_cast<const T*>(p.dout) + q_off, q_row_stride, m);
  cute::cp_async_fence();

  const int r_local[2] = {warp * 16 + g, warp * 16 + g + 8};
  const int64_t q_pos[2] = {p.q_start + i0 + r_local[0], p.q_start + i0 + r_local[1]};
  const int64_t q_pos_lo = p.q_start + i0, q_pos_hi = p.q_start + i0 + m;

  float acc[D / 8][4];
#pragma unroll
  for (int nd = 0; nd < D / 8; ++nd) acc[nd][0] = acc[nd][1] = acc[nd][2] = acc[nd][3] = 0.f;

  for (int b = 0; b < p.num_branches; ++b) {
    const AttentionBranch& br = p.branch[b];
    float lse2[2], delta[2], coef[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      lse2[r] = INFINITY;
      delta[r] = coef[r] = 0.f;
      if (r_local[r] < m) {
        const int64_t stat = (sb.q_begin + i0 + r_local[r]) * H + h;
        const float lse = br.lse[stat];
        lse2[r] = lse == -INFINITY ? INFINITY : lse * kLog2e;
        delta[r] = br.delta[stat];
        coef[r] = grad_coef(br.coef, p.gate ? p.gate[stat] : 0.f);
      }
    }
    const PosRange keys = key_index_range(p, q_pos_lo, q_pos_hi, sb.k_count, br.window);
    const int n_tiles = keys.empty() ? 0 : static_cast<int>((keys.hi - keys.lo + BN - 1) / BN);
    const T* k_base = static_cast<const T*>(br.k) + sb.k_begin * kv_row_stride + hk * D;
    const T* v_base = static_cast<const T*>(br.v) + sb.k_begin * kv_row_stride + hk * D;

    __syncthreads();  // every warp is done with the previous branch's K/V buffers
    if (n_tiles > 0) {
      const int valid = static_cast<int>(min_i64(BN, sb.k_count - keys.lo));
      load_tile_async<D, BN, NT>(sK, k_base + keys.lo * kv_row_stride, kv_row_stride, valid);
      load_tile_async<D, BN, NT>(sV, v_base + keys.lo * kv_row_stride, kv_row_stride, valid);
      cute::cp_async_fence();
    }
    for (int tile = 0; tile < n_tiles; ++tile) {
      const int64_t j0 = keys.lo + static_cast<int64_t>(tile) * BN;
      const int buf = tile & 1;
      cute::cp_async_wait<0>();
      __syncthreads();
      if (tile + 1 < n_tiles) {
        const int64_t j1 = j0 + BN;
        const int valid = static_cast<int>(min_i64(BN, sb.k_count - j1));
        load_tile_async<D, BN, NT>(sK + (buf ^ 1) * BN * D, k_base + j1 * kv_row_stride, kv_row_stride, valid);
        load_tile_async<D, BN, NT>(sV + (buf ^ 1) * BN * D, v_base + j1 * kv_row_stride, kv_row_stride, valid);
        cute::cp_async_fence();
      }
      const T* k_tile = sK + buf * BN * D;
      const T* v_tile = sV + buf * BN * D;

      // S = Q K^T and dP = dO V^T (16 x BN per warp).
      float sc[BN / 8][4], dp[BN / 8][4];
#pragma unroll
      for (int nb = 0; nb < BN / 8; ++nb) {
#pragma unroll
        for (int e = 0; e < 4; ++e) sc[nb][e] = dp[nb][e] = 0.f;
      }
#pragma unroll
      for (int kb = 0; kb < D / 16; ++kb) {
        uint32_t qa[4], da[4];
        ldsm_a<D>(qa, sQ, warp * 16, kb * 16, lane);
        ldsm_a<D>(da, sdO, warp * 16, kb * 16, lane);
#pragma unroll
        for (int nb2 = 0; nb2 < BN / 16; ++nb2) {
          uint32_t bf[4];
          ldsm_b_nk<D>(bf, k_tile, nb2 * 16, kb * 16, lane);
          mma<T>(sc[2 * nb2], qa, bf[0], bf[1]);
          mma<T>(sc[2 * nb2 + 1], qa, bf[2], bf[3]);
          ldsm_b_nk<D>(bf, v_tile, nb2 * 16, kb * 16, lane);
          mma<T>(dp[2 * nb2], da, bf[0], bf[1]);
          mma<T>(dp[2 * nb2 + 1], da, bf[2], bf[3]);
        }
      }

      // dS = c P (dP - delta), masked.
      const int64_t k_pos0 = p.k_start + j0;
      const bool full = j0 + BN <= sb.k_count && block_fully_visible(q_pos_lo, q_pos_hi, k_pos0, k_pos0 + BN, br.window);
#pragma unroll
      for (int nb = 0; nb < BN / 8; ++nb) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = nb * 8 + 2 * t + (e & 1);
          const int r = e >> 1;
          const bool ok = full || (j0 + col < sb.k_count && is_visible(q_pos[r], k_pos0 + col, br.window));
          const float prob = ok ? exp2f(sc[nb][e] * scale_log2 - lse2[r]) : 0.f;
          sc[nb][e] = coef[r] * prob * (dp[nb][e] - delta[r]);
        }
      }

      // dQ += dS K.
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        uint32_t sa[4];
        pack_a<T>(sa, sc[2 * kk], sc[2 * kk + 1]);
#pragma unroll
        for (int nd2 = 0; nd2 < D / 16; ++nd2) {
          uint32_t bf[4];
          ldsm_b_kn<D>(bf, k_tile, kk * 16, nd2 * 16, lane);
          mma<T>(acc[2 * nd2], sa, bf[0], bf[1]);
          mma<T>(acc[2 * nd2 + 1], sa, bf[2], bf[3]);
        }
      }
    }
  }
  cute::cp_async_wait<0>();  // the Q/dO copy is outstanding when no branch visited a key tile

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (r_local[r] >= m) continue;
    const int64_t row = sb.q_begin + i0 + r_local[r];
    const float dlogit = p.dlogit ? p.dlogit[row * H + h] : 0.f;
    const int64_t at = row * q_row_stride + h * D + 2 * t;
#pragma unroll
    for (int nd = 0; nd < D / 8; ++nd) {
      const int col = nd * 8 + 2 * t;
      float w0 = 0.f, w1 = 0.f;
      if (p.dlogit) {
        w0 = p.gate_weight[h * D + col];
        w1 = p.gate_weight[h * D + col + 1];
      }
      store_pair_as<T>(p.dq, at + nd * 8, p.grads_are_f32, acc[nd][2 * r] * p.scale + dlogit * w0,
                       acc[nd][2 * r + 1] * p.scale + dlogit * w1);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Row statistics before the backward: one warp per (token, head) row, butterfly reductions (fixed
// order, deterministic).

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

template <typename T, int D>
__global__ void __launch_bounds__(128) attention_prep_kernel(const AttentionPrepParams p) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * 4;
  for (int64_t row = blockIdx.x * 4 + (threadIdx.x >> 5); row < p.rows; row += warps) {
    const T* dout = static_cast<const T*>(p.dout) + row * D;
    float dot = 0.f;
    if (p.out_is_f32) {
      const float* out = static_cast<const float*>(p.out) + row * D;
#pragma unroll
      for (int d = lane; d < D; d += 32) dot += Elem<T>::to_float(dout[d]) * out[d];
    } else {
      const T* out = static_cast<const T*>(p.out) + row * D;
#pragma unroll
      for (int d = lane; d < D; d += 32) dot += Elem<T>::to_float(dout[d]) * Elem<T>::to_float(out[d]);
    }
    dot = warp_sum(dot);
    if (lane == 0) p.delta[row] = dot - (p.dlse ? p.dlse[row] : 0.f);
  }
}

// Block (chunk of kPrepChunk tokens, head): 4 warps take the chunk's tokens round robin, then the
// warps' gate-weight partial sums are added in warp order.
template <typename T, int D>
__global__ void __launch_bounds__(128) loop_prep_kernel(const LoopPrepParams p) {
  __shared__ float red_w[4][D];
  __shared__ float red_b[4];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int chunk = blockIdx.x, h = blockIdx.y, H = p.heads;
  float dw[D / 32];
#pragma unroll
  for (int i = 0; i < D / 32; ++i) dw[i] = 0.f;
  float db = 0.f;
  for (int k = warp; k < kPrepChunk; k += 4) {
    const int64_t tok = static_cast<int64_t>(chunk) * kPrepChunk + k;
    if (tok >= p.tokens) break;
    const int64_t row = tok * H + h;
    const T* dout = static_cast<const T*>(p.dout) + row * D;
    const T* q = static_cast<const T*>(p.q) + row * D;
    const float* og = p.out_global + row * D;
    const float* ol = p.out_local + row * D;
    float dot_g = 0.f, dot_l = 0.f;
#pragma unroll
    for (int i = 0; i < D / 32; ++i) {
      const float d = Elem<T>::to_float(dout[lane + 32 * i]);
      dot_g += d * og[lane + 32 * i];
      dot_l += d * ol[lane + 32 * i];
    }
    dot_g = warp_sum(dot_g);
    dot_l = warp_sum(dot_l);
    const float dlogit = gate_logit_grad(dot_g - dot_l, p.gate[row]);
    if (lane == 0) {
      p.delta_global[row] = dot_g;
      p.delta_local[row] = dot_l;
      p.dlogit[row] = dlogit;
    }
#pragma unroll
    for (int i = 0; i < D / 32; ++i) dw[i] += dlogit * Elem<T>::to_float(q[lane + 32 * i]);
    db += dlogit;
  }
#pragma unroll
  for (int i = 0; i < D / 32; ++i) red_w[warp][lane + 32 * i] = dw[i];
  if (lane == 0) red_b[warp] = db;
  __syncthreads();
  for (int d = threadIdx.x; d < D; d += 128) {
    p.d_gate_weight_partial[(static_cast<int64_t>(chunk) * H + h) * D + d] =
        ((red_w[0][d] + red_w[1][d]) + red_w[2][d]) + red_w[3][d];
  }
  if (threadIdx.x == 0) p.d_gate_bias_partial[static_cast<int64_t>(chunk) * H + h] = ((red_b[0] + red_b[1]) + red_b[2]) + red_b[3];
}

}  // namespace

void flash_bwd_dq(const AttentionParams& p, cudaStream_t stream) {
  dispatch_elem_and_dim(p.elem, p.head_dim, [&]<typename T, int D>() {
    using Tile = DqTile<D>;
    const dim3 grid(static_cast<unsigned>((p.max_q_len + Tile::kBlockM - 1) / Tile::kBlockM), p.heads, p.num_seqs);
    if (grid.x == 0) return;
    launch(flash_bwd_dq_kernel<T, D>, grid, dim3(Tile::kThreads), Tile::kSmemBytes, stream, p);
  });
}

void flash_bwd(const AttentionParams& p, cudaStream_t stream) {
  flash_bwd_dkdv(p, stream);
  flash_bwd_dq(p, stream);
}

void attention_bwd_prep(const AttentionPrepParams& p, cudaStream_t stream) {
  if (p.rows == 0) return;
  dispatch_elem_and_dim(p.elem, p.head_dim, [&]<typename T, int D>() {
    const int64_t blocks = min_i64((p.rows + 3) / 4, 65536);
    attention_prep_kernel<T, D><<<static_cast<unsigned>(blocks), 128, 0, stream>>>(p);
  });
}

void loop_bwd_prep(const LoopPrepParams& p, cudaStream_t stream) {
  if (p.tokens == 0) return;
  dispatch_elem_and_dim(p.elem, p.head_dim, [&]<typename T, int D>() {
    const dim3 grid(static_cast<unsigned>((p.tokens + kPrepChunk - 1) / kPrepChunk), p.heads);
    loop_prep_kernel<T, D><<<grid, 128, 0, stream>>>(p);
  });
}

}  // namespace iquest::cuda
