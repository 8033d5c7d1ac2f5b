"""From one line of text to a model, its cost and a few generated tokens.

python examples/quickstart.py
"""

import torch

import archdsl

spec = archdsl.parse("4x(ssm) 1x(attn window=512) mlp", d_model=256, vocab=1000)
print(spec)  # canonical text

graph = archdsl.to_graph(spec)  # networkx.DiGraph: embed -> L0 ... L5 -> norm -> head
print(f"{graph.number_of_nodes()} graph nodes")

cost = archdsl.cost(spec, seq_len=8192)
print(
    f"{cost.params:,} parameters, {cost.train_flops / 1e9:.2f} GFLOP per training token at 8k, "
    f"{cost.state_bytes / 2**20:.2f} MiB of inference state per sequence"
)

model = archdsl.build(spec)
ids = torch.randint(0, 1000, (2, 16))
logits = model(ids)  # (2, 16, 1000)
print("logits", tuple(logits.shape))

torch.manual_seed(0)
tokens = model.generate(ids, max_new_tokens=8, temperature=0.8, top_k=50)
print("generated", tokens[:, 16:].tolist())
