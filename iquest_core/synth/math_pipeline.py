"""Math synthesis: sampled solutions kept only when their final answer equals the gold one symbolically.

`problems` are {"id", "problem", "answer"}; `client` has `chat_many` (serve.client.ChatClient).
"""

from __future__ import annotations

from iquest_core.serve.client import EndpointError
from iquest_core.synth.math_check import answers_match
from iquest_core.synth.records import RecordSink

INSTRUCTION = "Solve; put the final answer in \\boxed{}.\n\n"


def math_pipeline(problems, client, sink: RecordSink, *, samples: int = 4, max_tokens: int = 512) -> None:
    """Keep the first of `samples` solutions whose final answer matches the gold answer symbolically."""
    for item in problems:
        record = {"kind": "math", "id": item["id"], "problem": item["problem"], "answer": item["answer"]}
        try:
            texts = client.chat_many([[{"role": "user", "content": INSTRUCTION + item["problem"]}]] * samples,
                                     temperature=0.8, max_tokens=max_tokens)
        except EndpointError as error:
            sink.offer(record, [f"endpoint-error:{error}"])
            continue
        right = [t for t in texts if answers_match(str(item["answer"]), t)]
        sink.offer({**record, "solution": right[0]} if right else record, [] if right else ["wrong-answer"],
                   text=item["problem"] + "\n" + (right[0] if right else ""))
