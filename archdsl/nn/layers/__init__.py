"""The torch half of the built-in layers: one ``nn.Module`` per layer type, and the kernels they
run (SSD, the selective scan, the causal convolution, RoPE). Imported by build only; each
layer's parameters and cost formula are in :mod:`archdsl.layers.builtin`, which does not
import torch."""
