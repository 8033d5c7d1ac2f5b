"""Import a Hugging Face model and check that archdsl computes the same logits.

    python examples/hf_import.py

Builds a small random LlamaForCausalLM (nothing is downloaded), imports it with
``archdsl.from_hf`` and checks that the logits agree (it fails if they differ by more than
1e-4); the spec it prints can be edited into a hybrid.
"""

import torch
import transformers

import archdsl

config = transformers.LlamaConfig(
    vocab_size=500,
    hidden_size=128,
    intermediate_size=384,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
)
reference = transformers.LlamaForCausalLM(config).eval()
model = archdsl.from_hf(reference).eval()
print(model.spec)

ids = torch.randint(0, 500, (1, 32))
with torch.no_grad():
    difference = (model(ids) - reference(ids).logits).abs().max().item()
print(f"largest logit difference: {difference:.2e}")
# float32 on a CPU: the two differ by rounding only (about 1e-6); a wrong import differs by O(1)
assert difference < 1e-4, f"archdsl and transformers disagree: largest logit difference {difference:.2e}"
