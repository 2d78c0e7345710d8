// Forward kernel: one CTA per (query tile of kBlockM rows, query head, sequence); each of its warps owns
// 16 query rows. The CTA keeps its Q fragments in registers and walks, per branch, only the key tiles
// its queries can see (the causal branch: all tiles up to the diagonal; a windowed branch: the tiles
// under the window), with K/V tiles double-buffered in shared memory through cp.async, scores and
// P V on tensor cores, and the online softmax in registers (exp2 domain). Tiles entirely inside the
// visible region skip the mask.
//
// Loop attention (two branches): the gate logit q . w[h] is reduced from the Q fragments; the global
// branch's normalised output is written (float32) to out_global, the window branch's to out_local, and
// the mix g * out_global + (1 - g) * out_local re-reads the global values this same thread wrote.
#include "flash_common.cuh"
#include "flash_dispatch.h"

namespace iquest::cuda {
namespace {

template <int D>
struct FwdTile {
  static constexpr int kWarps = 4;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kBlockM = 16 * kWarps;
  static constexpr int kBlockN = 64;
  static constexpr int kSmemBytes = (kBlockM + 4 * kBlockN) * D * 2;  // Q + double-buffered K and V
};

template <typename T, int D>
__global__ void __launch_bounds__(FwdTile<D>::kThreads) flash_fwd_kernel(const AttentionParams p) {
  using Tile = FwdTile<D>;
  constexpr int BM = Tile::kBlockM, BN = Tile::kBlockN, NT = Tile::kThreads;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);
  T* sK = sQ + BM * D;      // [2][BN][D]
  T* sV = sK + 2 * BN * D;  // [2][BN][D]

  const int s = blockIdx.z, h = blockIdx.y;
  const int m_block = gridDim.x - 1 - blockIdx.x;  // longest (causal) tiles first
  const SeqBounds sb = seq_bounds(p, s);
  const int64_t i0 = static_cast<int64_t>(m_block) * BM;
  if (i0 >= sb.q_count) return;
  const int m = static_cast<int>(min_i64(BM, sb.q_count - i0));

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int H = p.heads, hk = h / (p.heads / p.kv_heads);
  const int64_t q_row_stride = static_cast<int64_t>(H) * D, kv_row_stride = static_cast<int64_t>(p.kv_heads) * D;
  const float scale_log2 = p.scale * kLog2e;

  // Q tile -> shared -> registers (A fragments of the 16 rows of this warp, all of head_dim).
  const T* q_tile = static_cast<const T*>(p.q) + (sb.q_begin + i0) * q_row_stride + h * D;
  load_tile_async<D, BM, NT>(sQ, q_tile, q_row_stride, m);
  cute::cp_async_fence();
  cute::cp_async_wait<0>();
  __syncthreads();
  uint32_t qf[D / 16][4];
#pragma unroll
  for (int kb = 0; kb < D / 16; ++kb) ldsm_a<D>(qf[kb], sQ, warp * 16, kb * 16, lane);

  // Rows of this thread: local r0 = warp * 16 + g and r0 + 8.
  const int r_local[2] = {warp * 16 + g, warp * 16 + g + 8};
  const int64_t q_pos[2] = {p.q_start + i0 + r_local[0], p.q_start + i0 + r_local[1]};
  const int64_t q_pos_lo = p.q_start + i0, q_pos_hi = p.q_start + i0 + m;

  // Loop attention's gate from the Q fragments: thread holds columns 16kb + 2t + {0, 1, 8, 9}.
  float gate[2] = {0.f, 0.f};
  if (p.num_branches == 2) {
    const float* w = p.gate_weight + h * D;
    float dot[2] = {0.f, 0.f};
#pragma unroll
    for (int kb = 0; kb < D / 16; ++kb) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int col = kb * 16 + 2 * t + ((e >> 1) << 3);
        const T* pair = reinterpret_cast<const T*>(&qf[kb][e]);
        dot[e & 1] += Elem<T>::to_float(pair[0]) * w[col] + Elem<T>::to_float(pair[1]) * w[col + 1];
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      gate[r] = sigmoid(quad_sum(dot[r]) + p.gate_bias[h]);
      if (t == 0 && r_local[r] < m) p.gate[(sb.q_begin + i0 + r_local[r]) * H + h] = gate[r];
    }
  }

  for (int b = 0; b < p.num_branches; ++b) {
    const AttentionBranch& br = p.branch[b];
    const PosRange keys = key_index_range(p, q_pos_lo, q_pos_hi, sb.k_count, br.window);
    const int n_tiles = keys.empty() ? 0 : static_cast<int>((keys.hi - keys.lo + BN - 1) / BN);
    const T* k_base = static_cast<const T*>(br.k) + sb.k_begin * kv_row_stride + hk * D;
    const T* v_base = static_cast<const T*>(br.v) + sb.k_begin * kv_row_stride + hk * D;

    float acc[D / 8][4];
#pragma unroll
    for (int nd = 0; nd < D / 8; ++nd) acc[nd][0] = acc[nd][1] = acc[nd][2] = acc[nd][3] = 0.f;
    float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};

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
      __syncthreads();  // tile `tile` landed; every warp left tile - 1, whose buffer is refilled next
      if (tile + 1 < n_tiles) {
        const int64_t j1 = j0 + BN;
        const int valid = static_cast<int>(min_i64(BN, sb.k_count - j1));
        load_tile_async<D, BN, NT>(sK + (buf ^ 1) * BN * D, k_base + j1 * kv_row_stride, kv_row_stride, valid);
        load_tile_async<D, BN, NT>(sV + (buf ^ 1) * BN * D, v_base + j1 * kv_row_stride, kv_row_stride, valid);
        cute::cp_async_fence();
      }
      const T* k_tile = sK + buf * BN * D;
      const T* v_tile = sV + buf * BN * D;

      // S = Q K^T (16 x BN per warp).
      float sc[BN / 8][4];
#pragma unroll
      for (int nb = 0; nb < BN / 8; ++nb) sc[nb][0] = sc[nb][1] = sc[nb][2] = sc[nb][3] = 0.f;
#pragma unroll
      for (int kb = 0; kb < D / 16; ++kb) {
#pragma unroll
        for (int nb2 = 0; nb2 < BN / 16; ++nb2) {
          uint32_t bf[4];
          ldsm_b_nk<D>(bf, k_tile, nb2 * 16, kb * 16, lane);
          mma<T>(sc[2 * nb2], qf[kb], bf[0], bf[1]);
          mma<T>(sc[2 * nb2 + 1], qf[kb], bf[2], bf[3]);
        }
      }

      // Mask unless every query of the CTA sees every key of the tile.
      const int64_t k_pos0 = p.k_start + j0;
      const bool full = j0 + BN <= sb.k_count && block_fully_visible(q_pos_lo, q_pos_hi, k_pos0, k_pos0 + BN, br.window);
      if (!full) {
#pragma unroll
        for (int nb = 0; nb < BN / 8; ++nb) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int col = nb * 8 + 2 * t + (e & 1);
            const bool ok = j0 + col < sb.k_count && is_visible(q_pos[e >> 1], k_pos0 + col, br.window);
            if (!ok) sc[nb][e] = -INFINITY;
          }
        }
      }

      // Online softmax (per thread: rows g and g + 8; the row is spread over the 4 threads of a quad).
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float tile_max = -INFINITY;
#pragma unroll
        for (int nb = 0; nb < BN / 8; ++nb) tile_max = fmaxf(tile_max, fmaxf(sc[nb][2 * r], sc[nb][2 * r + 1]));
        const float new_max = fmaxf(row_max[r], quad_max(tile_max));
        const float alpha = row_max[r] == -INFINITY ? 0.f : exp2f((row_max[r] - new_max) * scale_log2);
        const float shift = new_max == -INFINITY ? 0.f : new_max * scale_log2;
        row_max[r] = new_max;
        float sum = 0.f;
#pragma unroll
        for (int nb = 0; nb < BN / 8; ++nb) {
          sc[nb][2 * r] = exp2f(sc[nb][2 * r] * scale_log2 - shift);
          sc[nb][2 * r + 1] = exp2f(sc[nb][2 * r + 1] * scale_log2 - shift);
          sum += sc[nb][2 * r] + sc[nb][2 * r + 1];
        }
        row_sum[r] = row_sum[r] * alpha + sum;  // per-thread partial; reduced over the quad at the end
#pragma unroll
        for (int nd = 0; nd < D / 8; ++nd) {
          acc[nd][2 * r] *= alpha;
          acc[nd][2 * r + 1] *= alpha;
        }
      }

      // O += P V.
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        uint32_t pa[4];
        pack_a<T>(pa, sc[2 * kk], sc[2 * kk + 1]);
#pragma unroll
        for (int nd2 = 0; nd2 < D / 16; ++nd2) {
          uint32_t bf[4];
          ldsm_b_kn<D>(bf, v_tile, kk * 16, nd2 * 16, lane);
          mma<T>(acc[2 * nd2], pa, bf[0], bf[1]);
          mma<T>(acc[2 * nd2 + 1], pa, bf[2], bf[3]);
        }
      }
    }

    // Epilogue of the branch: normalise, write lse and the branch output; mix after the last branch.
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float total = quad_sum(row_sum[r]);
      const float inv = total > 0.f ? 1.f / total : 0.f;
      const float lse = lse_of(row_max[r] * p.scale, total);
      if (r_local[r] >= m) continue;
      const int64_t row = sb.q_begin + i0 + r_local[r];
      if (t == 0) br.lse[row * H + h] = lse;
      const int64_t base = row * q_row_stride + h * D + 2 * t;
#pragma unroll
      for (int nd = 0; nd < D / 8; ++nd) {
        const float o0 = acc[nd][2 * r] * inv, o1 = acc[nd][2 * r + 1] * inv;
        const int64_t at = base + nd * 8;
        store_pair_as<T>(br.out, at, br.out_is_f32, o0, o1);
        if (p.num_branches == 2 && b == 1) {
          const float2 og = *reinterpret_cast<const float2*>(static_cast<const float*>(p.branch[0].out) + at);
          const float gr = gate[r];
          store_pair(static_cast<T*>(p.out) + at, gr * og.x + (1.f - gr) * o0, gr * og.y + (1.f - gr) * o1);
        }
      }
    }
  }
}

}  // namespace

bool flash_supported_head_dim(int head_dim) { return head_dim == 64 || head_dim == 128; }

void flash_fwd(const AttentionParams& p, cudaStream_t stream) {
  dispatch_elem_and_dim(p.elem, p.head_dim, [&]<typename T, int D>() {
    using Tile = FwdTile<D>;
    const dim3 grid(static_cast<unsigned>((p.max_q_len + Tile::kBlockM - 1) / Tile::kBlockM), p.heads, p.num_seqs);
    if (grid.x == 0) return;
    launch(flash_fwd_kernel<T, D>, grid, dim3(Tile::kThreads), Tile::kSmemBytes, stream, p);
  });
}

}  // namespace iquest::cuda
