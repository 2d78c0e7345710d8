"""Train a tiny LoopCoder for a few dozen steps on this package's own Python source (byte-level tokens),
printing the loss and tokens/s, then sample a completion of a prompt with the decode caches.

    python -m iquest_core.jobs.demo [--steps 40] [--seq-len 256] [--batch-size 4] [--save DIR]

Everything is local: the corpus is the iquest_core/*.py files of this package. The step is the shared
language-model step of iquest_core.train.step.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from tqdm import tqdm

from iquest_core.command_line import CommandParser
import iquest_core
from iquest_core.model import LoopCoderConfig, LoopCoderForCausalLM
from iquest_core.train.step import train_step


def source_bytes(root: Path) -> torch.Tensor:
    """The bytes of every .py file under root, in path order, as int64 tokens (vocabulary 256)."""
    data = b"\n".join(path.read_bytes() for path in sorted(root.rglob("*.py")))
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).long()


def random_batch(corpus: torch.Tensor, batch_size: int, seq_len: int, generator: torch.Generator) -> torch.Tensor:
    """(batch_size, seq_len + 1) windows of the corpus at random offsets."""
    starts = torch.randint(0, corpus.numel() - seq_len - 1, (batch_size,), generator=generator)
    return torch.stack([corpus[s:s + seq_len + 1] for s in starts.tolist()])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = CommandParser(prog="iquest demo", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--attn-implementation", choices=["fused", "reference"], default="fused")
    parser.add_argument("--save", type=Path, default=None, help="save the trained model in the Hugging Face layout")
    args = parser.parse_args(argv)
    for name, least in (("steps", 3), ("seq_len", 1), ("batch_size", 1)):
        if getattr(args, name) < least:
            parser.error(f"--{name.replace('_', '-')} must be >= {least}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    corpus = source_bytes(Path(iquest_core.__file__).parent)
    config = LoopCoderConfig.preset("small-cpu", hidden_size=128, intermediate_size=384, num_attention_heads=4,
                                    num_key_value_heads=2, head_dim=32, max_position_embeddings=args.seq_len + 64)
    model = LoopCoderForCausalLM(config, attn_implementation=args.attn_implementation)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.steps,
                                                   pct_start=max(0.1, 2 / args.steps))  # warm-up of >= 2 steps
    params = sum(p.numel() for p in model.parameters())
    print(f"corpus: {corpus.numel():,} bytes of iquest_core source; model: {params:,} parameters, "
          f"{config.num_hidden_layers} layers x {config.loop_num} loops, window {config.loop_window_size}, "
          f"{args.attn_implementation} loop attention")

    tokens_seen, train_time, losses = 0, 0.0, []
    progress = tqdm(range(args.steps), desc="training", unit="step")
    for _ in progress:
        batch = random_batch(corpus, args.batch_size, args.seq_len, generator)
        start = time.perf_counter()
        result = train_step(model, optimizer, batch[:, :-1], batch[:, 1:], max_grad_norm=1.0)
        schedule.step()
        train_time += time.perf_counter() - start
        tokens_seen += batch[:, :-1].numel()
        losses.append(result.loss)
        progress.set_postfix(loss=f"{losses[-1]:.3f}", tok_s=f"{tokens_seen / train_time:,.0f}")
    print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f} (uniform over bytes: {torch.log(torch.tensor(256.0)):.3f}); "
          f"{tokens_seen / train_time:,.0f} training tokens/s")

    model.eval()
    prompt = torch.tensor([list(b"def ")])
    completion = model.generate(prompt, 64, do_sample=True, temperature=0.8, top_k=20, generator=generator)[0]
    print("sampled completion of 'def ':", repr(bytes(completion.tolist()).decode("utf-8", errors="replace")))
    if args.save is not None:
        model.save_pretrained(args.save)
        print(f"saved to {args.save} (config.json + model.safetensors)")


if __name__ == "__main__":
    main()
