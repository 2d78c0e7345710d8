"""`iquest export CHECKPOINT HF_DIR`: a training checkpoint to the Hugging Face layout.

    iquest export runs/sft/checkpoints/step-3000 models/my-loopcoder

HF_DIR gets config.json (model_type iquestloopcoder, or a Llama-style dense config when loop_num = 1),
model.safetensors with the published key names, and the run's tokenizer (tokenizer.json,
tokenizer_config.json) when the run had one. The checkpoint's fingerprints are verified first. A
`loop_num = 1` export loads in transformers' LlamaForCausalLM; any export loads in
iquest_core's LoopCoderForCausalLM.from_pretrained. HF_DIR must not exist or be empty; it is written to
a temporary directory and renamed into place.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp

from iquest_core.command_line import CommandParser
from iquest_core.model import LoopCoderConfig, LoopCoderForCausalLM
from iquest_core.train.checkpoint import quiet_single_process, read_trainer_state, verify

LLAMA_FIELDS = {"model_type": "llama", "architectures": ["LlamaForCausalLM"]}


def load_checkpoint_model(path: str | Path) -> LoopCoderForCausalLM:
    """The model weights of a training checkpoint (verified), as a float32 LoopCoderForCausalLM on the CPU."""
    path = Path(path)
    state = read_trainer_state(path)
    verify(path)
    model = LoopCoderForCausalLM(LoopCoderConfig.from_dict(state["model_config"]))
    weights = {"model": model.state_dict()}
    with quiet_single_process():
        dcp.load(weights, checkpoint_id=str(path))
    model.load_state_dict(weights["model"])
    return model


def export(checkpoint: str | Path, target: str | Path) -> Path:
    """Write the Hugging Face directory of a training checkpoint (see the module doc); returns it."""
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(f"HF_DIR: {target} exists and is not an empty directory; nothing was written")
    model = load_checkpoint_model(checkpoint)
    tokenizer = read_trainer_state(checkpoint).get("tokenizer")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        if model.config.loop_num == 1:
            model.config = LoopCoderConfig.from_dict({**model.config.to_dict(), **LLAMA_FIELDS})
        model.save_pretrained(tmp)
        if model.config.loop_num == 1:  # save_pretrained names LoopCoder's architecture; a dense model is Llama's
            config = LoopCoderConfig.from_json(tmp)
            config.extra["architectures"] = LLAMA_FIELDS["architectures"]
            config.to_json(tmp)
        if tokenizer and Path(tokenizer).is_dir():
            for name in ("tokenizer.json", "tokenizer_config.json"):
                if (Path(tokenizer) / name).is_file():
                    shutil.copy(Path(tokenizer) / name, tmp / name)
        if target.exists():
            target.rmdir()
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="iquest export", description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a training checkpoint directory (RUN/checkpoints/step-N)")
    parser.add_argument("hf_dir", help="the Hugging Face directory to write (absent or empty)")
    args = parser.parse_args(argv)
    try:
        path = export(args.checkpoint, args.hf_dir)
    except ValueError as e:
        print(f"iquest export: error: {e}", file=sys.stderr)
        return 2
    print(f"exported {args.checkpoint} to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
