"""Evaluation: HumanEval problems and pass@k (`humaneval`) and the harness behind `iquest eval` (`harness`)."""
