"""Window multi-head self-attention (W-MSA) and its shifted variant (SW-MSA).

Swin-style attention inside non-overlapping ``w x w`` windows with a learned relative
position bias, as used by TCM's transformer path (Liu et al., CVPR 2023, Fig. 3; Liu et al.,
"Swin Transformer", ICCV 2021). The state-dict layout matches the authors' checkpoints:
``embedding_layer`` (C -> 3C, read as 3C/d groups of d channels: queries, keys, values),
``relative_position_params`` (heads, 2w-1, 2w-1) and ``linear`` (C -> C).

Unlike the reference, the relative-position index is computed once (a non-persistent
buffer), shift masks are cached per feature-map size and stored (and added) only for the
windows that mask anything, the cyclic shift and window partition are one gather (and the
merge one more), attention is an explicit matmul / softmax / matmul run on cache-sized
chunks of windows at inference, and maps whose sides are not multiples of the window are
padded internally with the padded keys masked out.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

WindowKind = Literal["W", "SW"]
#: (indices (k,) of the windows that mask anything, additive mask (k, 1, T, T))
WindowMask = tuple[Tensor, Tensor]

#: added to masked attention scores; exp() of it underflows to exactly 0 in float32, so the
#: result equals masking with -inf, but a fully masked row (padding only) gives no NaN.
MASKED_SCORE = -1.0e4
#: at inference, windows are processed in chunks (embedding, attention, projection) of at
#: most this many attention scores (4 MB): the chunk stays in cache and large maps need
#: bounded memory; the results are those of one pass. g_a of tcm-s at 768x512 measured
#: 10% faster (one thread) and 3-5% (two) than with 8 M-score chunks.
SCORE_CHUNK_ELEMENTS = 2**20


def relative_position_index(window: int) -> Tensor:
    """Index into the flattened (2w-1, 2w-1) bias table for every (query, key) pair.

    Returns a (w*w, w*w) long tensor: for query (py, px) and key (ky, kx),
    ``(py - ky + w - 1) * (2w - 1) + (px - kx + w - 1)``.
    """
    coords = torch.stack(
        torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"), dim=-1
    ).reshape(-1, 2)
    rel = coords[:, None, :] - coords[None, :, :] + window - 1
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def _window_region_ids(size: int, window: int, shifted: bool) -> Tensor:
    """Region label of each row (or column) of a rolled map, for the shift mask.

    After rolling by -w/2, the last window along an axis holds two groups of positions
    that were not neighbours before the roll; positions attend only within their group.
    """
    ids = torch.zeros(size, dtype=torch.long)
    if shifted:
        shift = window // 2
        ids[size - window : size - shift] = 1
        ids[size - shift :] = 2
    return ids


class WindowAttention(nn.Module):
    """Multi-head self-attention within (optionally shifted) windows.

    Args:
        dim: channels C of the input.
        head_dim: channels d of one head; C / d heads.
        window: window side w.
        kind: ``"W"`` (regular windows) or ``"SW"`` (windows shifted by w/2).

    Shapes: input and output (B, H, W, C), channels last.
    """

    def __init__(self, dim: int, head_dim: int, window: int, kind: WindowKind) -> None:
        super().__init__()
        if dim % head_dim:
            raise ValueError(f"WindowAttention: dim={dim} is not divisible by head_dim={head_dim}")
        if kind not in ("W", "SW"):
            raise ValueError(f"WindowAttention: kind must be 'W' or 'SW', got {kind!r}")
        if window < 2 or window % 2:
            raise ValueError(f"WindowAttention: window must be even and >= 2, got {window}")
        self.dim = dim
        self.head_dim = head_dim
        self.num_heads = dim // head_dim
        self.window = window
        self.kind = kind
        self.embedding_layer = nn.Linear(dim, 3 * dim)
        self.relative_position_params = nn.Parameter(
            torch.zeros(self.num_heads, 2 * window - 1, 2 * window - 1)
        )
        nn.init.trunc_normal_(self.relative_position_params, std=0.02)
        self.linear = nn.Linear(dim, dim)
        self.register_buffer(
            "position_index", relative_position_index(window), persistent=False
        )
        self._mask_cache: dict[tuple, WindowMask | None] = {}
        self._order_cache: dict[tuple, tuple[Tensor, Tensor]] = {}
        self._dense_cache: tuple[Tensor, Tensor] | None = None

    @property
    def shift(self) -> int:
        return self.window // 2 if self.kind == "SW" else 0

    def relative_position_bias(self) -> Tensor:
        """(heads, w*w, w*w) bias added to the attention scores."""
        table = self.relative_position_params.reshape(self.num_heads, -1)
        return table[:, self.position_index]

    def _mask(self, height: int, width: int, padded_h: int, padded_w: int, device: torch.device) -> WindowMask | None:
        """The additive mask of shifted windows and padding, or None when nothing is masked.

        Only windows on the last row or column of a shifted map (and windows holding
        padding) mask anything, so the mask is kept for those windows alone: returns
        (indices (k,) of those windows, additive mask (k, 1, T, T) broadcast over heads).
        """
        key = (height, width, padded_h, padded_w, device)
        if key in self._mask_cache:
            return self._mask_cache[key]
        with torch.inference_mode(False):  # cached: must serve a later pass under autograd too
            mask = self._build_mask(height, width, padded_h, padded_w, device)
        if len(self._mask_cache) > 32:
            self._mask_cache.clear()
        self._mask_cache[key] = mask
        return mask

    def _build_mask(self, height: int, width: int, padded_h: int, padded_w: int,
                    device: torch.device) -> WindowMask | None:
        shifted = self.kind == "SW"
        padded = padded_h != height or padded_w != width
        if not shifted and not padded:
            return None
        w = self.window
        rows = _window_region_ids(padded_h, w, shifted)
        cols = _window_region_ids(padded_w, w, shifted)
        region = rows[:, None] * 3 + cols[None, :]  # (Hp, Wp)
        valid = torch.zeros(padded_h, padded_w, dtype=torch.bool)
        valid[:height, :width] = True
        if shifted:
            valid = torch.roll(valid, shifts=(-self.shift, -self.shift), dims=(0, 1))
        region = _partition(region[None, :, :, None], w).reshape(-1, w * w)  # (nW, T)
        valid = _partition(valid[None, :, :, None], w).reshape(-1, w * w)
        blocked = region[:, :, None] != region[:, None, :]
        blocked |= ~valid[:, None, :]
        windows = blocked.flatten(1).any(1).nonzero().flatten()
        values = torch.zeros(blocked[windows].shape, dtype=torch.float32)
        values.masked_fill_(blocked[windows], MASKED_SCORE)
        return windows.to(device), values[:, None].to(device)

    def _token_order(self, padded_h: int, padded_w: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """Where each window token comes from in the (padded) map, and the way back.

        Returns ``order`` and its inverse, (Hp*Wp,) long tensors: window token ``i`` (windows
        in row-major order, tokens row-major inside a window) is map position ``order[i]``
        of the map rolled by -shift. One ``index_select`` with it does the roll and the
        window partition in a single pass (the reference rolls, then partitions: three
        copies of the map), and ``inverse`` merges the windows and rolls back.
        """
        key = (padded_h, padded_w, device)
        cached = self._order_cache.get(key)
        if cached is None:
            with torch.inference_mode(False):  # cached: must serve a later pass under autograd too
                cached = self._build_token_order(padded_h, padded_w, device)
            if len(self._order_cache) > 32:
                self._order_cache.clear()
            self._order_cache[key] = cached
        return cached

    def _build_token_order(self, padded_h: int, padded_w: int, device: torch.device) -> tuple[Tensor, Tensor]:
        w, shift = self.window, self.shift
        rows = torch.arange(padded_h).reshape(padded_h // w, 1, w, 1)
        cols = torch.arange(padded_w).reshape(1, padded_w // w, 1, w)
        order = (((rows + shift) % padded_h) * padded_w + (cols + shift) % padded_w).reshape(-1)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel())
        return order.to(device), inverse.to(device)

    def _dense_mask(self, mask: WindowMask | None, num_windows: int) -> Tensor | None:
        """The mask for every window, (nW, 1, T, T), zeros where nothing is masked (kept
        for the last map size: training sees the same patch size at every step)."""
        if mask is None:
            return None
        windows, values = mask
        cached = self._dense_cache
        if cached is None or cached[0] is not values or cached[1].shape[0] != num_windows:
            with torch.inference_mode(False):
                dense = values.new_zeros(num_windows, *values.shape[1:])
                dense[windows] = values
            cached = self._dense_cache = (values, dense)
        return cached[1]

    def _attend_windows(self, windows: Tensor, bias: Tensor, mask: WindowMask | None) -> Tensor:
        """(B, n, T, C) windows -> (B, n, T, C): q/k/v embedding, attention per head,
        output projection."""
        batch, count, tokens, channels = windows.shape
        qkv = self.embedding_layer(windows).reshape(batch, count, tokens, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).unbind(0)  # each (B, n, heads, T, d)
        out = _attend(q, k, v, bias, mask, self.head_dim**-0.5)
        return self.linear(out.transpose(2, 3).reshape(batch, count, tokens, channels))

    def forward(self, x: Tensor) -> Tensor:
        batch, height, width, channels = x.shape
        w = self.window
        padded_h = -(-height // w) * w
        padded_w = -(-width // w) * w
        if (padded_h, padded_w) != (height, width):
            x = F.pad(x, (0, 0, 0, padded_w - width, 0, padded_h - height))
        order, inverse = self._token_order(padded_h, padded_w, x.device)
        tokens = x.reshape(batch, padded_h * padded_w, channels)
        windows = tokens.index_select(1, order).reshape(batch, -1, w * w, channels)  # (B, nW, T, C)
        num_windows = windows.shape[1]
        bias = self.relative_position_bias().to(x.dtype)  # (heads, T, T)
        mask = self._mask(height, width, padded_h, padded_w, x.device)
        chunk = max(1, SCORE_CHUNK_ELEMENTS // (batch * self.num_heads * (w * w) ** 2))
        if torch.is_grad_enabled():  # training: one dense (nW, heads, T, T) addend, cheap to differentiate
            dense = self._dense_mask(mask, num_windows)
            out = self._attend_windows(windows, bias if dense is None else bias + dense.to(x.dtype), None)
        elif chunk >= num_windows:
            out = self._attend_windows(windows, bias, mask)
        else:  # inference: windows in near-equal cache-sized chunks, same result
            out = torch.empty_like(windows)
            count = -(-num_windows // chunk)
            bounds = [num_windows * i // count for i in range(count + 1)]
            for start, stop in zip(bounds, bounds[1:]):
                out[:, start:stop] = self._attend_windows(
                    windows[:, start:stop], bias, _mask_part(mask, start, stop))
        out = out.reshape(batch, padded_h * padded_w, channels)
        out = out.index_select(1, inverse).reshape(batch, padded_h, padded_w, channels)
        if (padded_h, padded_w) != (height, width):
            out = out[:, :height, :width, :]
        return out


def _mask_part(mask: WindowMask | None, start: int, stop: int) -> WindowMask | None:
    """The part of a window mask for windows start..stop-1, re-indexed from 0."""
    if mask is None:
        return None
    windows, values = mask
    inside = (windows >= start) & (windows < stop)
    return (windows[inside] - start, values[inside]) if bool(inside.any()) else None


def _attend(q: Tensor, k: Tensor, v: Tensor, bias: Tensor, mask: WindowMask | None, scale: float) -> Tensor:
    """softmax(scale * q k^T + bias [+ mask]) v, in the reference's order of operations.

    q, k, v: (B, nW, heads, T, d); bias (heads, T, T); ``mask`` adds MASKED_SCORE to the
    blocked pairs of the windows it lists. Unblocked scores get exactly ``scale * qk + bias``
    and blocked ones exp() to 0, so this equals the reference's -inf masking bit for bit.

    Written out rather than through ``F.scaled_dot_product_attention``: on the CPU with an
    additive mask that call takes the generic path, which also scans every row for being
    fully masked (never the case here) and was ~9% of g_a's time.
    """
    scores = torch.matmul(q, k.transpose(-2, -1))
    scores *= scale
    scores += bias
    if mask is not None:
        windows, values = mask
        scores[:, windows] += values.to(scores.dtype)
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def _partition(x: Tensor, window: int) -> Tensor:
    """(B, H, W, C) -> (B, H/w * W/w, w*w, C), windows in row-major order."""
    batch, height, width, channels = x.shape
    x = x.reshape(batch, height // window, window, width // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(batch, -1, window * window, channels)

