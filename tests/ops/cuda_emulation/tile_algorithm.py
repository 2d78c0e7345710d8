"""Tile-level numpy port of the CUDA kernels' control flow (flash_fwd.cu, flash_bwd_dkdv.cu,
flash_bwd_dq.cu of csrc/loop_attention/cuda, the prep kernels, the host glue): work decomposition, key/query ranges, masks and the
'full tile' shortcut, online softmax in the exp2 domain, GQA walk, branch coefficients, delta / dlogit.
Checks it against iquest_core.ops.reference in float64.

This is NOT a test of the CUDA code itself (nothing here runs it): it checks, on a machine without a
GPU, that the kernels' algorithm as written (ranges, masks, coefficients, reductions) is right. Any
change of control flow in the kernels should be mirrored here. Run: python -m tests.ops.cuda_emulation.tile_algorithm (a few seconds), or
call loop_case(*case) / attn_case(*case) for the cases of LOOP_CASES / ATTENTION_CASES: each raises
AssertionError on a mismatch and returns its relative errors.
"""
import math
import numpy as np, torch
from iquest_core.ops.reference import loop_attention_reference, attention_with_lse_reference

LOG2E = 1.4426950408889634
INF = math.inf

def visible(qp, kp, W): return kp <= qp and (W <= 0 or qp - W < kp)
def visible_keys_of_block(qlo, qhi, W): return (qlo - W + 1 if W > 0 else -10**18, qhi)
def visible_queries_of_block(klo, khi, W): return (klo, khi - 1 + W if W > 0 else 10**18)
def inter(a, b): return (max(a[0], b[0]), min(a[1], b[1]))
def full_block(qlo, qhi, klo, khi, W): return khi - 1 <= qlo and (W <= 0 or qhi - 1 - W < klo)

class P:  # mirrors FlashParams
    pass

def seqs(p):
    if p.cu is not None:
        return [(p.cu[s], p.cu[s+1]-p.cu[s], p.cu[s], p.cu[s+1]-p.cu[s]) for s in range(len(p.cu)-1)]
    return [(s*p.q_len, p.q_len, s*p.k_len, p.k_len) for s in range(p.num_seqs)]

def fwd(p, BM=64, BN=64):
    H, Hkv = p.H, p.Hkv; grp = H // Hkv
    for (qb, qc, kb, kc) in seqs(p):
        for h in range(H):
            hk = h // grp
            for i0 in range(0, qc, BM):
                m = min(BM, qc - i0)
                Q = np.zeros((BM, p.D)); Q[:m] = p.q[qb+i0:qb+i0+m, h]
                qpos = p.q_start + i0 + np.arange(BM); qlo, qhi = p.q_start + i0, p.q_start + i0 + m
                gate = None
                if p.nb == 2:
                    gate = 1 / (1 + np.exp(-(Q @ p.w[h] + p.b[h])))
                    p.gate[qb+i0:qb+i0+m, h] = gate[:m]
                for b in range(p.nb):
                    br = p.br[b]
                    lo, hi = inter(visible_keys_of_block(qlo, qhi, br['W']), (p.k_start, p.k_start + kc))
                    lo -= p.k_start; hi -= p.k_start
                    ntiles = 0 if hi <= lo else -(-(hi - lo) // BN)
                    acc = np.zeros((BM, p.D)); mx = np.full(BM, -INF); sm = np.zeros(BM)
                    for t in range(ntiles):
                        j0 = lo + t * BN; valid = min(BN, kc - j0)
                        K = np.zeros((BN, p.D)); V = np.zeros((BN, p.D))
                        K[:valid] = br['k'][kb+j0:kb+j0+valid, hk]; V[:valid] = br['v'][kb+j0:kb+j0+valid, hk]
                        S = Q @ K.T
                        kp0 = p.k_start + j0
                        full = j0 + BN <= kc and full_block(qlo, qhi, kp0, kp0 + BN, br['W'])
                        if not full:
                            for r in range(BM):
                                for c in range(BN):
                                    if not (j0 + c < kc and visible(qpos[r], kp0 + c, br['W'])): S[r, c] = -INF
                        sl2 = p.scale * LOG2E
                        for r in range(BM):
                            new = max(mx[r], S[r].max())
                            alpha = 0.0 if mx[r] == -INF else 2 ** ((mx[r] - new) * sl2)
                            shift = 0.0 if new == -INF else new * sl2
                            mx[r] = new
                            S[r] = np.exp2(S[r] * sl2 - shift)
                            sm[r] = sm[r] * alpha + S[r].sum(); acc[r] *= alpha
                        acc += S @ V
                    for r in range(m):
                        inv = 1 / sm[r] if sm[r] > 0 else 0.0
                        lse = mx[r] * p.scale + math.log(sm[r]) if sm[r] > 0 else -INF
                        br['lse'][qb+i0+r, h] = lse; br['out'][qb+i0+r, h] = acc[r] * inv
                        if p.nb == 2 and b == 1:
                            p.out[qb+i0+r, h] = gate[r] * p.br[0]['out'][qb+i0+r, h] + (1 - gate[r]) * acc[r] * inv

def coef_of(mode, g): return 1.0 if mode == 0 else (g if mode == 1 else 1 - g)

def dkdv(p, BN=64, BQ=32):
    H, Hkv = p.H, p.Hkv; grp = H // Hkv
    for (qb, qc, kb, kc) in seqs(p):
        for hk in range(Hkv):
            for j0 in range(0, kc, BN):
                nk = min(BN, kc - j0); kp0 = p.k_start + j0
                kpos = kp0 + np.arange(BN)
                for br in p.br[:p.nb]:
                    K = np.zeros((BN, p.D)); V = np.zeros((BN, p.D))
                    K[:nk] = br['k'][kb+j0:kb+j0+nk, hk]; V[:nk] = br['v'][kb+j0:kb+j0+nk, hk]
                    lo, hi = inter(visible_queries_of_block(kp0, kp0 + nk, br['W']), (p.q_start, p.q_start + qc))
                    ilo = lo - p.q_start
                    nqt = 0 if hi <= lo else -(-(hi - lo) // BQ)
                    dk = np.zeros((BN, p.D)); dv = np.zeros((BN, p.D))
                    for it in range(nqt * grp):
                        h = hk * grp + it // nqt; i = ilo + (it % nqt) * BQ; valid = min(BQ, qc - i)
                        Q = np.zeros((BQ, p.D)); dO = np.zeros((BQ, p.D))
                        Q[:valid] = p.q[qb+i:qb+i+valid, h]; dO[:valid] = p.dout[qb+i:qb+i+valid, h]
                        lse2 = np.full(BQ, INF); delta = np.zeros(BQ); coef = np.zeros(BQ)
                        for r in range(valid):
                            l = br['lse'][qb+i+r, h]; lse2[r] = INF if l == -INF else l * LOG2E
                            delta[r] = br['delta'][qb+i+r, h]
                            coef[r] = coef_of(br['coef'], p.gate[qb+i+r, h] if p.gate is not None else 0.0)
                        St = K @ Q.T
                        qp0 = p.q_start + i
                        full = full_block(qp0, qp0 + BQ, kp0, kp0 + BN, br['W'])
                        Pt = np.zeros_like(St)
                        for r in range(BN):
                            for c in range(BQ):
                                if full or visible(qp0 + c, kpos[r], br['W']):
                                    Pt[r, c] = np.exp2(St[r, c] * p.scale * LOG2E - lse2[c])
                        dPt = V @ dO.T
                        cP = Pt * coef[None]
                        dSt = cP * (dPt - delta[None])
                        dv += cP @ dO; dk += dSt @ Q
                    br['dk'][kb+j0:kb+j0+nk, hk] = dk[:nk] * p.scale; br['dv'][kb+j0:kb+j0+nk, hk] = dv[:nk]

def dq(p, BM=64, BN=64):
    H, Hkv = p.H, p.Hkv; grp = H // Hkv
    for (qb, qc, kb, kc) in seqs(p):
        for h in range(H):
            hk = h // grp
            for i0 in range(0, qc, BM):
                m = min(BM, qc - i0)
                Q = np.zeros((BM, p.D)); dO = np.zeros((BM, p.D))
                Q[:m] = p.q[qb+i0:qb+i0+m, h]; dO[:m] = p.dout[qb+i0:qb+i0+m, h]
                qpos = p.q_start + i0 + np.arange(BM); qlo, qhi = p.q_start + i0, p.q_start + i0 + m
                acc = np.zeros((BM, p.D))
                for br in p.br[:p.nb]:
                    lse2 = np.full(BM, INF); delta = np.zeros(BM); coef = np.zeros(BM)
                    for r in range(m):
                        l = br['lse'][qb+i0+r, h]; lse2[r] = INF if l == -INF else l * LOG2E
                        delta[r] = br['delta'][qb+i0+r, h]
                        coef[r] = coef_of(br['coef'], p.gate[qb+i0+r, h] if p.gate is not None else 0.0)
                    lo, hi = inter(visible_keys_of_block(qlo, qhi, br['W']), (p.k_start, p.k_start + kc))
                    lo -= p.k_start; hi -= p.k_start
                    ntiles = 0 if hi <= lo else -(-(hi - lo) // BN)
                    for t in range(ntiles):
                        j0 = lo + t * BN; valid = min(BN, kc - j0)
                        K = np.zeros((BN, p.D)); V = np.zeros((BN, p.D))
                        K[:valid] = br['k'][kb+j0:kb+j0+valid, hk]; V[:valid] = br['v'][kb+j0:kb+j0+valid, hk]
                        S = Q @ K.T; dP = dO @ V.T
                        kp0 = p.k_start + j0
                        full = j0 + BN <= kc and full_block(qlo, qhi, kp0, kp0 + BN, br['W'])
                        dS = np.zeros_like(S)
                        for r in range(BM):
                            for c in range(BN):
                                ok = full or (j0 + c < kc and visible(qpos[r], kp0 + c, br['W']))
                                prob = np.exp2(S[r, c] * p.scale * LOG2E - lse2[r]) if ok else 0.0
                                dS[r, c] = coef[r] * prob * (dP[r, c] - delta[r])
                        acc += dS @ K
                for r in range(m):
                    dl = p.dlogit[qb+i0+r, h] if p.dlogit is not None else 0.0
                    p.dq[qb+i0+r, h] = acc[r] * p.scale + dl * (p.w[h] if p.dlogit is not None else 0)

def check(a, b, name, tol=1e-9):
    a, b = np.asarray(a), b.detach().numpy()
    scale = np.abs(b).max()
    err = np.abs(a - b).max() / (scale if scale > 1e-10 else 1.0)
    assert err < tol, (name, err)
    return float(err)

def loop_case(lead, H, Hkv, D, W, cu=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*lead, H, D, generator=g, dtype=torch.float64)
    kvs = [torch.randn(*lead, Hkv, D, generator=g, dtype=torch.float64) for _ in range(4)]
    w = torch.randn(H, D, generator=g, dtype=torch.float64) * D**-0.5; b = torch.randn(H, generator=g, dtype=torch.float64)
    gout = torch.randn(*lead, H, D, generator=g, dtype=torch.float64)
    leaves = [t.clone().requires_grad_() for t in [q, *kvs, w, b]]
    ref = loop_attention_reference(*leaves, window=W, cu_seqlens=None if cu is None else torch.tensor(cu))
    ref.backward(gout)
    flat = lambda t: t.detach().reshape(-1, t.shape[-2], t.shape[-1]).numpy().copy()
    p = P(); p.H, p.Hkv, p.D, p.scale, p.q_start, p.k_start = H, Hkv, D, D**-0.5, 0, 0
    p.cu = cu
    if cu is None: p.num_seqs, p.q_len, p.k_len = lead[0], lead[1], lead[1]
    p.q = flat(q); T = p.q.shape[0]
    p.w, p.b = w.numpy(), b.numpy(); p.nb = 2
    p.gate = np.zeros((T, H)); p.out = np.zeros((T, H, D))
    mk = lambda k, v, W, coef: dict(k=flat(k), v=flat(v), W=W, out=np.zeros((T, H, D)), lse=np.zeros((T, H)), coef=coef,
                                   dk=np.full((T, Hkv, D), np.nan), dv=np.full((T, Hkv, D), np.nan))
    p.br = [mk(kvs[0], kvs[1], 0, 1), mk(kvs[2], kvs[3], W, 2)]
    fwd(p)
    errors = {"out": check(p.out.reshape(ref.shape), ref, "out")}
    # prep (loop_prep_kernel)
    p.dout = flat(gout)
    dg = (p.dout * p.br[0]['out']).sum(-1); dl = (p.dout * p.br[1]['out']).sum(-1)
    p.br[0]['delta'], p.br[1]['delta'] = dg, dl
    p.dlogit = (dg - dl) * p.gate * (1 - p.gate)
    dw = np.einsum('th,thd->hd', p.dlogit, p.q); db = p.dlogit.sum(0)
    p.dq = np.full((T, H, D), np.nan)
    dkdv(p); dq(p)
    names = ["dq", "dkg", "dvg", "dkl", "dvl", "dw", "db"]
    mine = [p.dq, p.br[0]['dk'], p.br[0]['dv'], p.br[1]['dk'], p.br[1]['dv'], dw, db]
    for n, a, l in zip(names, mine, leaves):
        errors[n] = check(a.reshape(l.grad.shape), l.grad, n)
    print("loop ok", lead, H, Hkv, D, W, cu)
    return errors

def attn_case(Lq, Lk, H, Hkv, D, qs, ks, W, seed=1):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, Lq, H, D, generator=g, dtype=torch.float64)
    k = torch.randn(2, Lk, Hkv, D, generator=g, dtype=torch.float64); v = torch.randn_like(k)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    out, lse = attention_with_lse_reference(*leaves, q_start=qs, k_start=ks, window=W or None)
    go = torch.randn_like(out); gl = torch.randn_like(lse)
    (out * go).sum().add((lse * gl).sum()).backward()
    flat = lambda t: t.detach().reshape(-1, t.shape[-2], t.shape[-1]).numpy().copy()
    p = P(); p.H, p.Hkv, p.D, p.scale, p.q_start, p.k_start = H, Hkv, D, D**-0.5, qs, ks
    p.cu = None; p.num_seqs, p.q_len, p.k_len = 2, Lq, Lk; p.nb = 1; p.gate = None; p.dlogit = None
    p.q = flat(q); T = p.q.shape[0]; Tk = 2 * Lk
    p.br = [dict(k=flat(k), v=flat(v), W=W, out=np.zeros((T, H, D)), lse=np.zeros((T, H)), coef=0,
                 dk=np.full((Tk, Hkv, D), np.nan), dv=np.full((Tk, Hkv, D), np.nan))]
    fwd(p)
    errors = {"out": check(p.br[0]['out'].reshape(out.shape), out, "out")}
    lse_rows = lse.detach().transpose(1, 2).reshape(T, H).numpy()
    fin = np.isfinite(lse_rows)
    assert np.array_equal(fin, np.isfinite(p.br[0]['lse'])) and np.allclose(p.br[0]['lse'][fin], lse_rows[fin])
    assert np.array_equal(p.br[0]['lse'][~fin], lse_rows[~fin])
    errors["lse"] = float(np.abs(p.br[0]['lse'][fin] - lse_rows[fin]).max()) if fin.any() else 0.0
    p.dout = flat(go)
    p.br[0]['delta'] = (p.dout * p.br[0]['out']).sum(-1) - gl.transpose(1, 2).reshape(T, H).numpy()
    p.dq = np.full((T, H, D), np.nan)
    dkdv(p); dq(p)
    for n, a, l in zip(["dq", "dk", "dv"], [p.dq, p.br[0]['dk'], p.br[0]['dv']], leaves):
        errors[n] = check(a.reshape(l.grad.shape), l.grad, n)
    print("attn ok", Lq, Lk, H, Hkv, D, qs, ks, W)
    return errors

LOOP_CASES = [  # (lead, H, Hkv, D, W, cu)
    ((2, 150), 4, 2, 16, 24, None),
    ((200,), 4, 1, 16, 40, [0, 70, 71, 200]),
    ((1, 130), 2, 2, 16, 1, None),
    ((1, 70), 2, 1, 16, 1000, None),
]
ATTENTION_CASES = [  # (Lq, Lk, H, Hkv, D, q_start, k_start, W)
    (100, 170, 4, 2, 16, 120, 40, 0),
    (100, 170, 4, 2, 16, 120, 40, 50),
    (8, 16, 2, 2, 16, 0, 4, 0),
    (77, 300, 2, 1, 16, 290, 20, 100),
]

if __name__ == "__main__":
    for case in LOOP_CASES:
        loop_case(*case)
    for case in ATTENTION_CASES:
        attn_case(*case)
    print("algorithm port: all checks passed")
