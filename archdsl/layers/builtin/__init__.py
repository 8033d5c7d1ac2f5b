"""The torch-free half of the built-in layers, one file per layer type: its parameter model,
description and analytic cost, registered as a :class:`~archdsl.layers.LayerContract` whose
``module`` names the ``nn.Module`` in :mod:`archdsl.nn.layers`."""
