"""Emulates ldmatrix / mma.m16n8k16 (PTX ISA fragment layouts) on numpy and checks the address formulas
of csrc/loop_attention/cuda/flash_common.cuh (ldsm_a, ldsm_b_nk, ldsm_b_kn, pack_a, swizzle): the operands the kernels feed
to the tensor cores are the intended sub-matrices, and the swizzled tiles are bank-conflict free for
ldmatrix. Emulation from the PTX ISA's description of ldmatrix and mma.m16n8k16, not a GPU run.
Run: python -m tests.ops.cuda_emulation.fragment_layouts, or call check_fragment_layouts() (raises AssertionError on a failed check)."""
import numpy as np

def swizzle(D, row, col): return row * D + (((col >> 3) ^ (row & 7)) << 3) + (col & 7)

def store_tile(M, D):  # M: rows x D logical -> flat swizzled smem
    flat = np.zeros(M.shape[0] * D)
    for r in range(M.shape[0]):
        for c in range(D):
            flat[swizzle(D, r, c)] = M[r, c]
    return flat

def ldmatrix_x4(flat, addr, trans):
    # addr[lane] = flat index of the start of the row supplied by lane; matrix i rows from lanes 8i..8i+7
    regs = [[None]*4 for _ in range(32)]
    for i in range(4):
        mat = np.array([flat[addr[8*i + j]: addr[8*i + j] + 8] for j in range(8)])  # 8x8
        if trans: mat = mat.T
        for lane in range(32):
            g, t = lane >> 2, lane & 3
            regs[lane][i] = (mat[g, 2*t], mat[g, 2*t+1])
    return regs

def ldsm_a(flat, D, r0, k0):
    addr = [swizzle(D, r0 + (l & 15), k0 + ((l >> 4) << 3)) for l in range(32)]
    return ldmatrix_x4(flat, addr, False)

def ldsm_b_nk(flat, D, n0, k0):
    addr = [swizzle(D, n0 + (l & 7) + ((l >> 4) << 3), k0 + (((l >> 3) & 1) << 3)) for l in range(32)]
    return ldmatrix_x4(flat, addr, False)

def ldsm_b_kn(flat, D, k0, n0):
    addr = [swizzle(D, k0 + (l & 7) + (((l >> 3) & 1) << 3), n0 + ((l >> 4) << 3)) for l in range(32)]
    return ldmatrix_x4(flat, addr, True)

def a_matrix(regs):  # PTX A layout -> 16x16
    A = np.full((16, 16), np.nan)
    for lane in range(32):
        g, t = lane >> 2, lane & 3
        for i, (r, c) in enumerate([(g, 2*t), (g+8, 2*t), (g, 2*t+8), (g+8, 2*t+8)]):
            A[r, c], A[r, c+1] = regs[lane][i]
    return A

def b_matrix(regs, first):  # PTX B layout (k x n = 16 x 8) from regs[first], regs[first+1]
    B = np.full((16, 8), np.nan)
    for lane in range(32):
        g, t = lane >> 2, lane & 3
        B[2*t, g], B[2*t+1, g] = regs[lane][first]
        B[2*t+8, g], B[2*t+9, g] = regs[lane][first+1]
    return B

def c_to_lanes(C):  # 16x8 -> per-lane c[4]
    out = []
    for lane in range(32):
        g, t = lane >> 2, lane & 3
        out.append([C[g, 2*t], C[g, 2*t+1], C[g+8, 2*t], C[g+8, 2*t+1]])
    return out

def check_fragment_layouts(seed=0, head_dims=(64, 128)):
    """All checks above for each head dim on random tiles; raises AssertionError on a failure. Returns
    dict(tiles=16x16 tiles checked, phases=ldmatrix phases found conflict free, max_error=largest deviation)."""
    rng = np.random.default_rng(seed)
    tiles = phases = 0
    worst = 0.0
    for D in head_dims:
        rows = 64
        Q = rng.standard_normal((rows, D)); K = rng.standard_normal((rows, D)); V = rng.standard_normal((rows, D))
        fq, fk, fv = store_tile(Q, D), store_tile(K, D), store_tile(V, D)
        for (r0, n0) in [(0, 0), (16, 32), (48, 48)]:
            # S[16 x 16] = Q[r0:r0+16] K[n0:n0+16]^T via k-blocks
            S = np.zeros((16, 16))
            for kb in range(D // 16):
                A = a_matrix(ldsm_a(fq, D, r0, kb*16))
                assert np.allclose(A, Q[r0:r0+16, kb*16:kb*16+16])
                worst = max(worst, np.abs(A - Q[r0:r0+16, kb*16:kb*16+16]).max())
                bregs = ldsm_b_nk(fk, D, n0, kb*16)
                S[:, 0:8] += A @ b_matrix(bregs, 0)
                S[:, 8:16] += A @ b_matrix(bregs, 2)
            assert np.allclose(S, Q[r0:r0+16] @ K[n0:n0+16].T), "S = Q K^T"
            # P (C fragments of n-blocks 0, 1) -> pack_a -> A; O[:, n0:n0+16] = P V[keys r0.., d n0..]
            c0, c1 = c_to_lanes(S[:, 0:8]), c_to_lanes(S[:, 8:16])
            pa = [[(c0[l][0], c0[l][1]), (c0[l][2], c0[l][3]), (c1[l][0], c1[l][1]), (c1[l][2], c1[l][3])] for l in range(32)]
            PA = a_matrix(pa)
            assert np.allclose(PA, S), "pack_a"
            bregs = ldsm_b_kn(fv, D, r0, n0)  # k = keys r0..r0+15, n = d n0..n0+15
            O = np.hstack([PA @ b_matrix(bregs, 0), PA @ b_matrix(bregs, 2)])
            assert np.allclose(O, S @ V[r0:r0+16, n0:n0+16]), "P V"
            worst = max(worst, np.abs(S - Q[r0:r0+16] @ K[n0:n0+16].T).max(), np.abs(PA - S).max(),
                        np.abs(O - S @ V[r0:r0+16, n0:n0+16]).max())
            tiles += 1
        # bank conflicts: 8 lanes of one ldmatrix phase hit distinct 16-byte bank groups
        for l0 in range(0, 32, 8):
            banks = {((swizzle(D, (l & 15), ((l >> 4) << 3)) * 2) // 16) % 8 for l in range(l0, l0 + 8)}
            assert len(banks) == 8
            phases += 1
    return dict(tiles=tiles, phases=phases, max_error=float(worst))


if __name__ == "__main__":
    check_fragment_layouts()
    print("fragment layouts: all checks passed")
