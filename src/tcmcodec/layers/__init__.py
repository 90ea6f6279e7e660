"""Building blocks of TCM: window attention, transformer and TCM blocks, SWAtten."""

from tcmcodec.layers.attention import WindowAttention, relative_position_index
from tcmcodec.layers.blocks import ConvTransBlock, SwinBlock, SWAtten, TransformerBlock, tcm_stage

__all__ = [
    "ConvTransBlock", "SWAtten", "SwinBlock", "TransformerBlock", "WindowAttention",
    "relative_position_index", "tcm_stage",
]
