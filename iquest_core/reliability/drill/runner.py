"""The silent-data-corruption drill run by `iquest drill`.

Trains the "tiny" LoopCoder (gated loop attention through the fused op) on the package's own source
text as R data-parallel replicas simulated in one process (default 2; the gradient all-reduce is a ring
written out message by message, `iquest_core.reliability.simulated_dp`) under an `SDCGuard`, and
injects single-bit faults where hardware makes them, one per experiment, at each fault site of the
registry `iquest_core.reliability.drill.sites` (compute, compute_recurring, allreduce, optimizer, weights:
inside a training step; checkpoint: the trainer's checkpoint files), whose modules say what each does.

Every fault is classified by experiment: the same steps from the same state with and without it,
unguarded; if the parameters and optimizer state come out bitwise equal it is masked, else effective
(`same_bits`: torch.equal of the tensors' bytes, never the guard's own fingerprint).
Then the guarded steps run with it: detected before the update (raised in the step the fault struck,
the guard rolling back to its last verified state), detected later (at the window's check), or missed
(the drill then goes on from the fault-free state, so that later faults strike a healthy run).
Clean guarded steps with the default thread count and with 2 threads count false positives. Optional:
the guard's overhead per step on `small-cpu` and a larger CPU shape.
"""

from __future__ import annotations

import copy
import os
import random
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from tqdm import tqdm

import iquest_core
from iquest_core.model import LoopCoderConfig, LoopCoderForCausalLM
from iquest_core.model.loss import next_token_loss
from iquest_core.reliability.drill.injection import Injection
from iquest_core.reliability.drill.report import summarise
from iquest_core.reliability.drill.sites import REGISTRY, SITES
from iquest_core.reliability.errors import SilentDataCorruptionError
from iquest_core.reliability.guard import SDCGuard, TrainingState
from iquest_core.reliability.replay_state import RngState, deterministic_algorithms
from iquest_core.reliability.simulated_dp import ring_allreduce_mean
from iquest_core.reliability.state import optimizer_tensors


def corpus_tokens() -> torch.Tensor:
    """The package's own Python sources as a stream of 7-bit character codes (int64)."""
    root = Path(iquest_core.__file__).parent
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.py")))
    return torch.tensor([min(ord(c), 127) for c in text], dtype=torch.int64)


class Drill:
    """The drill's training set-up and fault experiments (see the module docstring)."""

    def __init__(self, *, seed: int, replicas: int = 2, check_every: int = 1, seq_len: int = 32):
        torch.manual_seed(seed)
        model = LoopCoderForCausalLM(LoopCoderConfig.preset("tiny"))
        self.models = [model] + [copy.deepcopy(model) for _ in range(replicas - 1)]
        self.optimizers = [torch.optim.AdamW(m.parameters(), lr=1e-3) for m in self.models]
        self.guard = SDCGuard(self.models, self.optimizers, check_every=check_every)
        self.tokens, self.seq_len, self.cursor = corpus_tokens(), seq_len, 0
        self.rng = random.Random(seed)
        self.injection: Injection | None = None
        self._optimizer_mode: OpFaultMode | None = None
        for replica, optimizer in enumerate(self.optimizers):
            optimizer.register_step_pre_hook(lambda *_, r=replica: self._optimizer_enter(r))
            optimizer.register_step_post_hook(lambda *_: self._optimizer_exit())

    # -- steps ---------------------------------------------------------------------------------------

    def next_batch(self) -> list[torch.Tensor]:
        """One (1, seq_len + 1) row per replica, consecutive windows of the corpus."""
        rows = []
        for _ in self.models:
            if self.cursor + self.seq_len + 1 > len(self.tokens):
                self.cursor = 0
            rows.append(self.tokens[None, self.cursor:self.cursor + self.seq_len + 1])
            self.cursor += self.seq_len + 1
        return rows

    def step_fn(self, batch: list[torch.Tensor], injection: Injection | None):
        """Forward + backward on every replica and the ring all-reduce; `injection` fires in this step."""
        def run() -> torch.Tensor:
            self.injection = injection
            losses = []
            for r, (model, rows) in enumerate(zip(self.models, batch)):
                op_fault = injection is not None and injection.fire("compute", r)
                mode = injection.mode() if op_fault else nullcontext()
                with mode:
                    loss = next_token_loss(model, rows[:, :-1], rows[:, 1:])
                    loss.backward()
                if op_fault:
                    injection.fired(mode)
                losses.append(loss.detach())
            message = None
            if injection is not None and injection.site == "allreduce" and injection.shots > 0:
                message, injection.shots = injection.message, injection.shots - 1
            hit = ring_allreduce_mean([[p.grad for p in m.parameters()] for m in self.models], message)
            if hit is not None:
                injection.where, injection.field = hit.op, hit.field
            return torch.stack(losses)
        return run

    def _optimizer_enter(self, replica: int) -> None:
        if self.injection is not None and self.injection.fire("optimizer_update", replica):
            self._optimizer_mode = self.injection.mode()
            self._optimizer_mode.__enter__()

    def _optimizer_exit(self) -> None:
        if self._optimizer_mode is not None:
            mode, self._optimizer_mode = self._optimizer_mode, None
            mode.__exit__(None, None, None)
            self.injection.fired(mode)

    def plain_step(self, step_fn) -> None:
        """The guard's step without any check."""
        for model in self.models:
            model.zero_grad(set_to_none=True)
        with deterministic_algorithms():
            step_fn()
        for model, optimizer in zip(self.models, self.optimizers):
            optimizer.step()
            model.zero_grad(set_to_none=True)
        self.injection = None

    def guarded_step(self, step_fn) -> None:
        try:
            self.guard.step(step_fn)
        finally:
            self.injection = None

    # -- state ---------------------------------------------------------------------------------------

    def save(self) -> tuple[TrainingState, RngState]:
        return TrainingState.capture(self.models, self.optimizers), RngState.capture()

    def load(self, saved: tuple[TrainingState, RngState]) -> None:
        saved[0].restore(self.models, self.optimizers)
        saved[1].restore()

    def state_tensors(self) -> list[torch.Tensor]:
        """Every replica's parameters and optimizer state, as they are now."""
        return [t.detach() for m, o in zip(self.models, self.optimizers)
                for t in (*m.parameters(), *optimizer_tensors(o).values())]

    def snapshot(self) -> list[torch.Tensor]:
        """Copies of state_tensors(), to compare with same_bits."""
        return [t.clone() for t in self.state_tensors()]

    # -- experiments ---------------------------------------------------------------------------------

    def clean_window(self) -> list[str]:
        """check_every guarded steps without a fault (a whole check window): the messages of the errors
        the guard raised (false positives)."""
        errors = []
        for _ in range(self.guard.check_every):
            try:
                self.guarded_step(self.step_fn(self.next_batch(), None))
            except SilentDataCorruptionError as e:
                errors.append(str(e))
        return errors

    def experiment(self, site: str) -> dict:
        """Injects one fault of `site` (a name in the site registry) and returns its record."""
        return REGISTRY[site].experiment(self)

    def run_plain(self, batches, offset: int, injection: Injection | None, flip) -> None:
        """Unguarded steps; `injection` fires in step `offset`, `flip()` (an at-rest fault) runs before it."""
        for i, batch in enumerate(batches):
            if i == offset and flip is not None:
                flip()
            self.plain_step(self.step_fn(batch, injection if i == offset else None))


def run_drill(*, faults: int, clean_steps: int, seed: int, check_every: int = 1, replicas: int = 2,
              progress: bool = True, sites: tuple[str, ...] = SITES) -> dict:
    """Runs the drill with its faults spread over `sites` (names in the site registry, all by default);
    returns the JSON-able report (schema: see `summarise`)."""
    unknown = [site for site in sites if site not in REGISTRY]
    if unknown or not sites:
        raise ValueError(f"sites: expected names from {', '.join(SITES)}, got {', '.join(sites) or 'none'}")
    started = time.perf_counter()
    drill = Drill(seed=seed, replicas=replicas, check_every=check_every)
    default_threads = torch.get_num_threads()
    windows = -(-clean_steps // check_every)  # clean steps run in whole check windows
    plan = [sites[i % len(sites)] for i in range(faults)] + [None] * windows
    drill.rng.shuffle(plan)
    records, clean_runs = [], []
    bar = tqdm(total=faults + 2 * windows, desc="sdc drill", disable=not progress, file=sys.stderr)
    drill.clean_window()  # the optimizer state exists from here on
    errors = []
    for site in plan:
        if site is None:
            errors += drill.clean_window()
        else:
            records.append(drill.experiment(site))
        bar.update()
    clean_runs.append({"threads": default_threads, "steps": windows * check_every, "false_positives": len(errors)})
    two = []
    torch.set_num_threads(2)
    try:
        for _ in range(windows):
            two += drill.clean_window()
            bar.update()
    finally:
        torch.set_num_threads(default_threads)
    clean_runs.append({"threads": 2, "steps": windows * check_every, "false_positives": len(two)})
    bar.close()
    report = summarise(records, clean_runs, errors + two, sites)
    report.update(seed=seed, check_every=check_every, replicas=replicas, wall_seconds=time.perf_counter() - started,
                  omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
                  model={"preset": "tiny", "seq_len": drill.seq_len, "rows_per_replica": 1})
    return report
