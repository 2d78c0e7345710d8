"""Model-in-the-loop synthesis with verifiers: test-driven code (CodeT dual agreement in the sandbox),
perturbation and reverse flow of verified problems, symbolically checked math, judge debates; every
accepted record is decontaminated against the package's evaluations before it is written."""
