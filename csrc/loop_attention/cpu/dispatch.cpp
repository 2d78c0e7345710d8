// Run-time choice of the CPU kernel build: AVX2 + FMA where the processor has them, else baseline.
#include "../params.h"

namespace iquest::cpu {

#define IQ_DECLARE_ISA(isa)                     \
  namespace isa {                               \
  void run(const AttentionFwdParams& p);        \
  void run(const AttentionBwdParams& p);        \
  void run(const LoopAttentionFwdParams& p);    \
  void run(const LoopAttentionBwdParams& p);    \
  }
IQ_DECLARE_ISA(baseline)
#if defined(__x86_64__) || defined(_M_X64)
IQ_DECLARE_ISA(avx2)
#endif
#undef IQ_DECLARE_ISA

template <typename Params>
void dispatch(const Params& p) {
#if defined(__x86_64__) || defined(_M_X64)
  static const bool has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (has_avx2) return avx2::run(p);
#endif
  baseline::run(p);
}

}  // namespace iquest::cpu

namespace iquest {

void attention_fwd_cpu(const AttentionFwdParams& p) { cpu::dispatch(p); }
void attention_bwd_cpu(const AttentionBwdParams& p) { cpu::dispatch(p); }
void loop_attention_fwd_cpu(const LoopAttentionFwdParams& p) { cpu::dispatch(p); }
void loop_attention_bwd_cpu(const LoopAttentionBwdParams& p) { cpu::dispatch(p); }

}  // namespace iquest
