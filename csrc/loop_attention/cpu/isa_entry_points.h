// Out-of-line entry points of one instruction-set build of kernels.h (IQ_ISA names it).
#pragma once

namespace iquest::cpu::IQ_ISA {

void attention_fwd_entry(const AttentionParams& p) { attention_fwd(p); }
void attention_bwd_entry(const AttentionParams& p) { attention_bwd(p); }
void loop_attention_fwd_entry(const AttentionParams& p) { loop_attention_fwd(p); }
void loop_attention_bwd_entry(const AttentionParams& p) { loop_attention_bwd(p); }

}  // namespace iquest::cpu::IQ_ISA
