"""The Build stage: PyTorch modules made by walking the graph."""

from archdsl.nn.blocks import ParallelResidual, Residual
from archdsl.nn.build import build_model
from archdsl.nn.model import ArchModel
from archdsl.nn.norm import GatedRMSNorm, RMSNorm

__all__ = ["ArchModel", "GatedRMSNorm", "ParallelResidual", "RMSNorm", "Residual", "build_model"]
