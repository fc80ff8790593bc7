"""Sparse indexes and the builders for A-shape and vertical-slash, all in torch on the
device of the inputs (so on the GPU they run there and count in every timing).

One index form serves every pattern (the kernel in `triton_kernels` reads it):

    block_idx [B, H, M, MAXB] int32  key blocks computed whole for query block m
                                     (M counts the query blocks from `first_block`)
                                     (first block_cnt[b, h, m] entries are valid)
    block_cnt [B, H, M]       int32
    cols      [B, H, C]       int32  sorted single key columns (vertical lines), or None
    col_cnt   [B, H, M]       int32  how many of `cols` lie at or before query block m's last row
    is_diag   [B, H, Mk]      uint8  1 where block diagonal d (key block m - d) is in the
                                     block list of every query block; lets the kernel skip
                                     columns already covered. Only for diagonal-form lists.

A-shape and vertical-slash lists are "diagonal form": the same block diagonals for every
query block (local window = diagonals 0..w-1; a slash line at distance s lies on
diagonals s // block and s // block + 1). Block-sparse lists are arbitrary and carry no
columns.

Queries may be the last Nq of Nk keys (chunked prefill, a prompt continuing a cached
prefix): `q_start = Nk - Nq` is the first query's position among the keys, the index
rows are the query blocks from `q_start // block` to the last, block numbers and column
positions are key positions, and every builder takes q [.., Nq, D] with k [.., Nk, D].
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from ctxagent.kernels.backends import use_triton

# The vertical-slash estimate (the last queries' attention over every key) is computed a
# key chunk at a time above this many keys, and whole at or below it. Whole, it holds
# [B, H, L, N] bf16 logits, their float32 copy and the float32 softmax at once (torch's
# softmax(dtype=float32) converts a bf16 input first; only fp16 has the fused path): 20 GiB
# for an 8B-shaped layer (32 heads, L = 64) at 1M keys, 5 GiB at 256K. The threshold is a
# key count, not a byte budget, so that every prompt up to 256K keys takes exactly the
# unchunked code and gives bit-identical indexes (the published figures up to 256K stay
# valid), whatever the model's head count or `spread_q`.
CHUNK_KEYS_ABOVE = 1 << 18
# Key chunk of the chunked estimate: as many keys as make ESTIMATE_CHUNK_BYTES of float32
# probabilities for its rows (32,768 keys for 32 heads x 64 rows); each chunk's transient
# is about twice that plus its bf16 logits, 0.6 GiB for that layer.
ESTIMATE_CHUNK_BYTES = 1 << 28


@dataclass
class SparseIndex:
    block: int
    block_idx: torch.Tensor
    block_cnt: torch.Tensor
    cols: torch.Tensor | None = None
    col_cnt: torch.Tensor | None = None
    is_diag: torch.Tensor | None = None
    q_start: int = 0

    @property
    def first_block(self) -> int:
        """The query block of index row 0 (0 unless queries start after some keys)."""
        return self.q_start // self.block

    def density(self, n: int) -> float:
        """Fraction of the causal score matrix (queries q_start..n-1 over n keys) that the
        kernel computes (an upper bound: columns inside listed blocks are skipped by the
        kernel but counted here)."""
        m = self.block_cnt.shape[-1]
        computed = self.block_cnt.double().sum() * self.block * self.block
        if self.col_cnt is not None:
            computed += self.col_cnt.double().sum() * self.block
        rows = (n * (n + 1) - self.q_start * (self.q_start + 1)) / 2
        total = self.block_cnt.shape[0] * self.block_cnt.shape[1] * rows
        return float(min(1.0, computed / total)) if m else 0.0


def num_blocks(n: int, block: int) -> int:
    return math.ceil(n / block)


@functools.lru_cache(maxsize=4096)
def device_ints(values: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """int64 tensor of `values` on `device`, made once per (values, device) and reused.

    A plain torch.tensor(values, device="cuda") copies from pageable host memory and then
    waits for the stream to drain: one host sync per call, which in a prefill of 24 layers
    with several head groups each leaves the GPU idle while the next kernels are queued.
    Head lists and sample rows repeat from prompt to prompt, so after the first prefill
    none of these copies happens. Callers must not write into the result."""
    return torch.tensor(values, dtype=torch.int64, device=device)


@functools.lru_cache(maxsize=1024)
def device_floats(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """float32 tensor of `values` on `device`, made once and reused (as `device_ints`)."""
    return torch.tensor(values, dtype=torch.float32, device=device)


def diagonal_index(
    diags: torch.Tensor, cols: torch.Tensor | None, n: int, block: int, q_start: int = 0
) -> SparseIndex:
    """Index from per-head block diagonals `diags` [B, H, Kd] (sorted ascending, distinct but
    for repeats of M, which stand for no diagonal)
    and per-head columns `cols` [B, H, Kc] (sorted ascending, distinct) or None, for the
    queries q_start..n-1 over n keys."""
    B, H, _ = diags.shape
    M = num_blocks(n, block)
    device = diags.device
    m = torch.arange(q_start // block, M, device=device, dtype=torch.int32)
    diags = diags.to(torch.int32)
    block_idx = (m[:, None] - diags[:, :, None, :]).clamp_min_(0).contiguous()
    block_cnt = (diags[:, :, None, :] <= m[:, None]).sum(-1, dtype=torch.int32)
    is_diag = torch.zeros(B, H, M + 1, dtype=torch.uint8, device=device)
    is_diag.scatter_(-1, diags.long().clamp_max(M), 1)  # diagonal M: a dropped one (vertical_slash_index)
    is_diag = is_diag[..., :M].contiguous()
    if cols is None:
        return SparseIndex(block, block_idx, block_cnt, q_start=q_start)
    cols = cols.to(torch.int32).contiguous()
    last_row = (m + 1) * block - 1
    col_cnt = torch.searchsorted(cols, last_row.expand(B, H, len(m)).contiguous(), right=True).to(torch.int32)
    return SparseIndex(block, block_idx, block_cnt, cols, col_cnt, is_diag, q_start)


def a_shape_index(
    batch: int,
    heads: int,
    n: int,
    *,
    sink: int = 64,
    local: int = 1024,
    block: int = 64,
    device: str | torch.device = "cpu",
    q_start: int = 0,
) -> SparseIndex:
    """Attention sinks (the first `sink` tokens) plus a local window of about `local`
    tokens (rounded up to whole block diagonals, at least the diagonal block and the one
    before it, so every query sees at least `block` previous tokens); n keys, queries
    from q_start."""
    n_diag = min(max(2, math.ceil(local / block)), num_blocks(n, block))
    diags = torch.arange(n_diag, device=device, dtype=torch.int32).expand(batch, heads, n_diag)
    cols = torch.arange(min(sink, n), device=device, dtype=torch.int32).expand(batch, heads, min(sink, n))
    return diagonal_index(diags, cols if sink > 0 else None, n, block, q_start)


def last_query_attention(q: torch.Tensor, k: torch.Tensor, last_q: int, scale: float) -> torch.Tensor:
    """Causal attention probabilities of the last `last_q` queries over all keys,
    float32 [B, H, L, Nk], computed per KV group without repeating K. The queries are
    the last rows of q (which may be shorter than k: they end where the keys end)."""
    B, H, Nq, D = q.shape
    Hkv, N = k.shape[1], k.shape[2]
    G = H // Hkv
    L = min(last_q, Nq)
    qs = (q[:, :, Nq - L :] * scale).reshape(B, Hkv, G * L, D)
    logits = torch.matmul(qs, k.transpose(-1, -2)).view(B, H, L, N)
    future = torch.ones(L, L, dtype=torch.bool, device=q.device).triu_(1)
    logits[..., N - L :].masked_fill_(future, float("-inf"))  # only the last L keys can lie after a query
    return torch.softmax(logits, dim=-1, dtype=torch.float32)


def slash_scores(probs: torch.Tensor) -> torch.Tensor:
    """Sum of attention along each diagonal: out[..., s] = sum_r P[..., r, i_r - s] with
    i_r = N - L + r, for P = probs [B, H, L, N], the last L queries' probabilities.
    Returns [B, H, N].

    No copy of P: P[r, i_r - s] sits at offset r * (N + 1) + (N - L - s) of its row-major
    block, so a strided view with row stride N + 1 lines every diagonal up in one column.
    That covers s <= N - L; the few longer diagonals (s > N - L) live in the first L
    columns and are summed the same way over a padded copy of that L x L corner."""
    B, H, L, N = probs.shape
    probs = probs.contiguous()
    base = probs.storage_offset()
    main = probs.as_strided((B, H, L, N - L + 1), (H * L * N, L * N, N + 1, 1), base).sum(2)  # u = N - L - s
    out = torch.empty(B, H, N, dtype=probs.dtype, device=probs.device)
    out[..., : N - L + 1] = main.flip(-1)
    if L > 1:
        corner = torch.nn.functional.pad(probs[..., :L], (L, 0)).contiguous()  # [B, H, L, 2L]; C[r, L + j] = P[r, j]
        # s' = s - (N - L) in [1, L - 1]: P[r, r - s'] at offset r * (2L + 1) + (L - s')
        tail = corner.as_strided((B, H, L, L), (H * L * 2 * L, L * 2 * L, 2 * L + 1, 1)).sum(2)  # index L - s'
        out[..., N - L + 1 :] = tail[..., 1:].flip(-1)
    return out


def slash_to_diagonal_scores(slash: torch.Tensor, block: int) -> torch.Tensor:
    """Estimated mass that each block diagonal d captures: a slash line at distance
    s = d * block + c lies on diagonal d for the (block - c) / block share of rows and on
    d + 1 for the rest. Returns [B, H, M]."""
    B, H, N = slash.shape
    M = num_blocks(N, block)
    padded = torch.nn.functional.pad(slash, (0, M * block - N)).view(B, H, M, block)
    frac = torch.arange(block, device=slash.device, dtype=slash.dtype) / block
    own = (padded * (1 - frac)).sum(-1)
    spill = (padded * frac).sum(-1)
    out = own.clone()
    out[..., 1:] += spill[..., :-1]
    return out


def sampled_query_attention(q: torch.Tensor, k: torch.Tensor, rows: torch.Tensor, scale: float) -> torch.Tensor:
    """Causal attention probabilities of the query rows at key positions `rows` (q holds
    the last Nq of k's Nk positions), float32 [B, H, R, Nk], per KV group like
    `last_query_attention`."""
    B, H, Nq, D = q.shape
    Hkv, N = k.shape[1], k.shape[2]
    rows = rows.to(q.device).long()
    qs = (q[:, :, rows - (N - Nq)] * scale).reshape(B, Hkv, H // Hkv * len(rows), D)
    logits = torch.matmul(qs, k.transpose(-1, -2)).view(B, H, len(rows), N)
    logits.masked_fill_(torch.arange(N, device=q.device)[None, :] > rows[:, None], float("-inf"))
    return torch.softmax(logits, dim=-1, dtype=torch.float32)


def slash_scores_at(probs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """`slash_scores` for rows anywhere: out[..., s] = sum_r P[..., r, rows[r] - s]."""
    B, H, R, N = probs.shape
    rows = rows.to(probs.device).long()
    at = rows[:, None] - torch.arange(N, device=probs.device)[None, :]  # [R, N]
    picked = probs.gather(-1, at.clamp_min(0).expand(B, H, R, N))
    return picked.masked_fill_(at[None, None] < 0, 0.0).sum(2)


def estimate_key_chunk(batch: int, heads: int, rows: int) -> int:
    """Keys per chunk of the chunked estimate: ESTIMATE_CHUNK_BYTES of float32 probabilities
    for `rows` query rows of `heads` heads, at least 64 keys."""
    return max(64, ESTIMATE_CHUNK_BYTES // (batch * heads * rows * 4))


def attention_mass(
    q: torch.Tensor, k: torch.Tensor, rows: int | torch.Tensor, scale: float, key_chunk: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Column sums (vertical) and diagonal sums (slash) of the causal attention
    probabilities of some query rows over all keys, float32 [B, H, Nk] each: vertical[c] =
    sum_r P[r, c], slash[s] = sum_r P[r, i_r - s] with i_r row r's key position. `rows` is
    an int L for the last L queries (`last_query_attention`) or a tensor of key positions
    (`sampled_query_attention`); q holds the last Nq of k's Nk positions.

    `key_chunk`: None chunks the keys only above CHUNK_KEYS_ABOVE (ESTIMATE_CHUNK_BYTES of
    probabilities a chunk); an int chunks them that many at a time (at least Nk: whole).
    Whole, this is the probabilities' own sums, bit for bit what the index used before
    chunking existed; chunked, the same sums up to float rounding, never holding more than
    one chunk's [B, H, R, chunk] (`chunked_attention_mass`)."""
    B, H, Nq, _ = q.shape
    N = k.shape[2]
    R = min(rows, Nq) if isinstance(rows, int) else len(rows)
    if key_chunk is None:
        key_chunk = estimate_key_chunk(B, H, R) if N > CHUNK_KEYS_ABOVE else N
    elif key_chunk < 1:
        raise ValueError(f"key_chunk must be a positive number of keys (or None: chunk above {CHUNK_KEYS_ABOVE} keys); got {key_chunk}")
    if key_chunk < N:
        return chunked_attention_mass(q, k, rows, scale, key_chunk)
    if isinstance(rows, int):
        probs = last_query_attention(q, k, rows, scale)
        return probs.sum(2), slash_scores(probs)
    probs = sampled_query_attention(q, k, rows, scale)
    return probs.sum(2), slash_scores_at(probs, rows)


def chunked_attention_mass(
    q: torch.Tensor, k: torch.Tensor, rows: int | torch.Tensor, scale: float, key_chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`attention_mass` `key_chunk` keys at a time, in two passes over the keys: the first
    gets each row's log-sum-exp, the second recomputes each chunk's logits, turns them into
    probabilities with it and adds them into the column and diagonal sums. The logits are
    computed twice (a [R, D] x [D, Nk] product per KV head, small next to what the index
    saves), all on the inputs' device with no host sync.

    Diagonal sums: for the last L queries (consecutive rows) each chunk's probabilities go
    into a float32 buffer [R + 1, R + chunk] whose first R columns and last row stay zero;
    a strided view with row stride R + chunk + 1 then lines each diagonal up in a column
    (the trick of `slash_scores`), so no atomics and the sums are deterministic. Rows
    anywhere (`spread_q`) add theirs by scatter_add (rows R x chunk entries a chunk)."""
    B, H, Nq, D = q.shape
    Hkv, N = k.shape[1], k.shape[2]
    device = q.device
    last = isinstance(rows, int)
    if last:
        L = min(rows, Nq)
        pos = torch.arange(N - L, N, device=device)
        picked = q[:, :, Nq - L :]
    else:
        pos = rows.to(device).long()
        picked = q[:, :, pos - (N - Nq)]
    R = pos.shape[0]
    lowest = N - R if last else N - Nq  # no row lies before this key: columns up to it are never masked
    qs = (picked * scale).reshape(B, Hkv, H // Hkv * R, D)
    spans = [(c0, min(N, c0 + key_chunk)) for c0 in range(0, N, key_chunk)]

    def logits(c0: int, c1: int) -> torch.Tensor:
        x = torch.matmul(qs, k[:, :, c0:c1].transpose(-1, -2)).view(B, H, R, c1 - c0)
        if c1 - 1 > lowest:
            x.masked_fill_(torch.arange(c0, c1, device=device) > pos[:, None], float("-inf"))
        return x

    lse = torch.full((B, H, R), float("-inf"), dtype=torch.float32, device=device)
    for c0, c1 in spans:
        x = logits(c0, c1)
        top = x.amax(-1, keepdim=True).float().clamp_min_(-1e30)  # a row with every key masked: finite, so no inf - inf
        # bf16 x minus float32 top is computed in float32 (x exactly upcast), in one pass with no float32 copy of x first
        part = torch.sub(x, top).exp_().sum(-1).log_().add_(top.squeeze(-1))
        del x
        lse = torch.logaddexp(lse, part)
    lse = lse.unsqueeze(-1)
    vertical = torch.zeros(B, H, N, dtype=torch.float32, device=device)
    slash = torch.zeros(B, H, N, dtype=torch.float32, device=device)
    buffers: dict[int, torch.Tensor] = {}  # per chunk width; only the [:R, R:] part is ever written
    for c0, c1 in spans:
        c = c1 - c0
        x = logits(c0, c1)
        if last:
            W = R + c
            buf = buffers.get(c)
            if buf is None:
                buf = buffers[c] = torch.zeros(B, H, R + 1, W, dtype=torch.float32, device=device)
            p = torch.sub(x, lse, out=buf[:, :, :R, R:]).exp_()
            del x
            vertical[..., c0:c1] = p.sum(2)
            # element (r, u) of the view is buf[r, r + u] = p[r, r + u - R]: diagonal s = i_0 - c0 + R - u
            diag = buf.as_strided((B, H, R, W), (H * (R + 1) * W, (R + 1) * W, W + 1, 1), buf.storage_offset()).sum(2)
            seg = diag[..., 1:].flip(-1)  # s from i_0 - c1 + 1 up to i_0 - c0 + R - 1 = N - 1 - c0
            lo = N - R - c1 + 1
            if lo < 0:  # distances below 0: keys after the row, masked to zero
                seg, lo = seg[..., -lo:], 0
            slash[..., lo : lo + seg.shape[-1]] += seg
        else:
            p = torch.sub(x, lse).exp_()
            del x
            vertical[..., c0:c1] = p.sum(2)
            at = (pos[:, None] - torch.arange(c0, c1, device=device)).clamp_min_(0)  # masked entries add 0 at 0
            slash.scatter_add_(-1, at.view(1, 1, R * c).expand(B, H, R * c), p.view(B, H, R * c))
        del p
    return vertical, slash


def top_entries(scores: torch.Tensor, caps: tuple[int, ...], forced: int, gammas: tuple[float, ...], sentinel: int) -> torch.Tensor:
    """Per head h, the caps[h] highest of `scores` [B, H, X], the first `forced` entries always
    among them, sorted ascending; [B, H, max(caps)]. With gammas[h] < 1, only the fewest whose
    share of the head's total score reaches gammas[h] are kept (forced ones always). Dropped
    slots, and a head's slots past its own cap, hold `sentinel` (larger than any real entry,
    so they sort last and are never counted).

    One top-k at the largest cap serves every head, so heads that differ only in budget share
    it; the kept entries are the set a top-k at the head's own cap picks (ties aside). With
    one cap and no gamma, `scores` is written into (its forced entries) rather than copied."""
    width = max(caps)
    one_cap = min(caps) == width
    if one_cap and min(gammas) >= 1:
        scores[..., :forced] = float("inf")
        return torch.topk(scores, width, dim=-1, sorted=False).indices.sort(-1).values
    ranked = scores.clone()
    ranked[..., :forced] = float("inf")
    top = torch.topk(ranked, width, dim=-1, sorted=True)
    keep = None if one_cap else torch.arange(width, device=scores.device) < device_ints(caps, scores.device)[:, None]  # [H, width]
    if min(gammas) < 1:
        mass = scores.gather(-1, top.indices)
        before = (mass.cumsum(-1) - mass) / scores.sum(-1, keepdim=True).clamp_min(1e-30)
        gamma = gammas[0] if len(set(gammas)) == 1 else device_floats(gammas, scores.device)[:, None]
        within = (before < gamma) | torch.isinf(top.values)
        keep = within if keep is None else keep & within
    return torch.where(keep, top.indices, sentinel).sort(-1).values


def vertical_slash_index(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    n_vertical: int = 1024,
    n_diag: int = 32,
    last_q: int = 64,
    sink: int = 64,
    local_diags: int = 2,
    block: int = 64,
    scale: float | None = None,
    gamma: float = 1.0,
    spread_q: int = 0,
    per_row: bool = False,
    key_chunk: int | None = None,
    backend: str = "auto",
) -> SparseIndex:
    """MInference-style vertical-slash index: the last `last_q` queries' attention picks the
    `n_vertical` heaviest columns and the `n_diag` heaviest block diagonals per head (the
    first `sink` columns and the `local_diags` nearest diagonals always). q may be the
    last Nq rows of the Nk keys.

    Two options make the budget fit each head and prompt rather than one fixed count:
    `gamma` < 1 keeps, per head, only the heaviest columns and diagonals whose estimated
    mass reaches that share (FlexPrefill's cumulative threshold; n_vertical and n_diag
    become caps), and `spread_q` adds that many query rows spread evenly over the prompt
    to the estimate, so columns that matter early in a long prompt but not to its last
    rows are seen too.

    `per_row` ranks columns and diagonals by their estimated mass per query row that
    sees them rather than by their summed mass: a column at position p is computed for
    the N - p rows after it, so an early column costs more density than a late one; per
    row, the ranking is the recall gained per density spent (the greedy knapsack order),
    and the same counts pick cheaper, later lines.

    `key_chunk` as in `attention_mass`: by default the estimate is chunked over the keys
    only above CHUNK_KEYS_ABOVE keys, so long prompts (1M keys) never hold the last rows'
    probabilities over every key at once. `backend` as in `vertical_slash_mass`."""
    vertical, diag_scores = vertical_slash_mass(
        q, k, last_q=last_q, spread_q=spread_q, per_row=per_row, scale=scale, key_chunk=key_chunk, block=block, backend=backend
    )
    H = q.shape[1]
    return vertical_slash_select(
        vertical, diag_scores, (n_vertical,) * H, (n_diag,) * H, (gamma,) * H, sink=sink, local_diags=local_diags, block=block, q_start=k.shape[2] - q.shape[2]
    )


def vertical_slash_mass(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    last_q: int = 64,
    spread_q: int = 0,
    per_row: bool = False,
    scale: float | None = None,
    key_chunk: int | None = None,
    block: int = 64,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The estimate a vertical-slash index ranks by: column mass [B, H, Nk] and block
    diagonal mass [B, H, M] of the last `last_q` queries (plus `spread_q` rows spread over
    the prompt), per row that sees them when `per_row` (see `vertical_slash_index`). The
    costly half of the index; the selection after it is cheap, so heads that differ only
    in their budgets share one estimate (`vertical_slash_select`,
    `attention.shared_estimate_index`).

    backend: "triton" runs the last-rows estimate fused (`vs_estimate.last_rows_mass`: the
    probabilities never written out), "torch" the reference below, "auto" Triton on CUDA.
    Spread rows and `per_row` always take the torch path."""
    B, H, Nq, D = q.shape
    N = k.shape[2]
    scale = scale if scale is not None else D**-0.5
    L = min(last_q, Nq)
    spread = spread_q > 0 and Nq - L > 0
    if not spread and not per_row and use_triton(backend, q.device):
        from ctxagent.kernels import vs_estimate

        if vs_estimate.fits(L, D):
            return vs_estimate.last_rows_mass(q, k, L, scale, block)
    vertical, slash = attention_mass(q, k, last_q, scale, key_chunk)
    seen_by = torch.arange(N - L, N, device=q.device)  # the positions of the estimate's rows
    if spread:
        # chosen on the CPU, cached on the device: unique() on the GPU would wait for the queue to drain
        rows = device_ints(tuple(torch.linspace(N - Nq, N - L - 1, min(spread_q, Nq - L)).long().unique().tolist()), q.device)
        spread_vertical, spread_slash = attention_mass(q, k, rows, scale, key_chunk)
        vertical += spread_vertical
        slash += spread_slash
        del spread_vertical, spread_slash
        seen_by = torch.cat([rows, seen_by])
    if per_row:
        # rows at or after position p (they see column p, and slash distance p): len - (rows before p)
        at_or_after = len(seen_by) - torch.searchsorted(seen_by, torch.arange(N, device=q.device))
        per = at_or_after.clamp_min(1).to(vertical.dtype)
        vertical /= per
        slash /= per
    return vertical, slash_to_diagonal_scores(slash, block)


def vertical_slash_select(
    vertical: torch.Tensor,
    diag_scores: torch.Tensor,
    n_vertical: tuple[int, ...],
    n_diag: tuple[int, ...],
    gamma: tuple[float, ...],
    *,
    sink: int = 64,
    local_diags: int = 2,
    block: int = 64,
    q_start: int = 0,
) -> SparseIndex:
    """The index from a vertical-slash estimate (`vertical_slash_mass`: columns [B, H, Nk],
    block diagonals [B, H, M]),
    head h keeping its n_vertical[h] heaviest columns and n_diag[h] heaviest block
    diagonals (gamma[h] as in `vertical_slash_index`).

    Per-head budgets let a searched config's heads, which differ only in budget, share
    one estimate: built per budget, the estimate, top-k and index steps ran once per
    distinct budget (up to 7 in a layer of Qwen2.5-0.5B at 128K), where the default runs
    them once. Heads with smaller budgets pad their lists with entries no query block
    counts. `vertical` is written into (its sink columns), as `top_entries` does."""
    H, N = vertical.shape[1], vertical.shape[2]
    if not len(n_vertical) == len(n_diag) == len(gamma) == H:
        raise ValueError(f"need one n_vertical, n_diag and gamma per head ({H}); got {len(n_vertical)}, {len(n_diag)}, {len(gamma)}")
    M = num_blocks(N, block)
    cols = None
    col_caps = tuple(min(n, N) for n in n_vertical)
    if max(col_caps) > 0:
        cols = top_entries(vertical, col_caps, min(sink, N), gamma, sentinel=torch.iinfo(torch.int32).max)
    diag_caps = tuple(min(max(n, local_diags), M) for n in n_diag)
    # diagonal M lies past every query block
    diags = top_entries(diag_scores, diag_caps, min(local_diags, M), gamma, sentinel=M)
    return diagonal_index(diags, cols, N, block, q_start)
