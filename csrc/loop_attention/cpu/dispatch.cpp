// Run-time choice of the CPU kernel build: AVX2 + FMA where the processor has them, else baseline.
#include "../params.h"

namespace iquest::cpu {

#define IQ_DECLARE_ISA(isa)                                  \
  namespace isa {                                            \
  void attention_fwd_entry(const AttentionParams& p);        \
  void attention_bwd_entry(const AttentionParams& p);        \
  void loop_attention_fwd_entry(const AttentionParams& p);   \
  void loop_attention_bwd_entry(const AttentionParams& p);   \
  }
IQ_DECLARE_ISA(baseline)
#if defined(__x86_64__) || defined(_M_X64)
IQ_DECLARE_ISA(avx2)
#endif
#undef IQ_DECLARE_ISA

using Entry = void (*)(const AttentionParams&);

void dispatch(Entry baseline_entry, [[maybe_unused]] Entry avx2_entry, const AttentionParams& p) {
#if defined(__x86_64__) || defined(_M_X64)
  static const bool has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (has_avx2) return avx2_entry(p);
#endif
  baseline_entry(p);
}

}  // namespace iquest::cpu

#if defined(__x86_64__) || defined(_M_X64)
#define IQ_ENTRIES(name) iquest::cpu::baseline::name##_entry, iquest::cpu::avx2::name##_entry
#else
#define IQ_ENTRIES(name) iquest::cpu::baseline::name##_entry, nullptr
#endif

namespace iquest {

void attention_fwd_cpu(const AttentionParams& p) { cpu::dispatch(IQ_ENTRIES(attention_fwd), p); }
void attention_bwd_cpu(const AttentionParams& p) { cpu::dispatch(IQ_ENTRIES(attention_bwd), p); }
void loop_attention_fwd_cpu(const AttentionParams& p) { cpu::dispatch(IQ_ENTRIES(loop_attention_fwd), p); }
void loop_attention_bwd_cpu(const AttentionParams& p) { cpu::dispatch(IQ_ENTRIES(loop_attention_bwd), p); }

}  // namespace iquest
