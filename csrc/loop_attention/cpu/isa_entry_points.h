// Out-of-line entry points of one instruction-set build of kernels.h (IQ_ISA names it).
#pragma once

namespace iquest::cpu::IQ_ISA {

void run(const AttentionFwdParams& p) { attention_fwd(p); }
void run(const AttentionBwdParams& p) { attention_bwd(p); }
void run(const LoopAttentionFwdParams& p) { loop_attention_fwd(p); }
void run(const LoopAttentionBwdParams& p) { loop_attention_bwd(p); }

}  // namespace iquest::cpu::IQ_ISA
