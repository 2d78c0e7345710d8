"""numpy emulations of the CUDA attention kernels (csrc/loop_attention/cuda), checked on the CPU by
tests/ops/test_cuda_emulation.py."""
