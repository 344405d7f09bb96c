"""``ResumableSampler`` deals draws out in per-rank batches, so DDP shards line up with one
process's batches and accumulation micro-batches (``docs/design.md`` item 3)."""

from __future__ import annotations

from itertools import islice

from restorekit.engine.sampler import ResumableSampler, draw_seed


def take(sampler: ResumableSampler, n: int) -> list[tuple[int, int]]:
    return list(islice(iter(sampler), n))


def test_rank_batches_are_one_process_micro_batches() -> None:
    """2 ranks × batch 3 against 1 process × batch 3 × accum 2, over 4 steps and an epoch edge."""
    length, seed, b, w, steps = 7, 11, 3, 2, 4
    one = take(ResumableSampler(length, seed, chunk=b), steps * w * b)
    ranks = [take(ResumableSampler(length, seed, rank=r, world_size=w, chunk=b), steps * b) for r in range(w)]
    for step in range(steps):
        for r in range(w):
            micro = one[(step * w + r) * b : (step * w + r + 1) * b]
            assert ranks[r][step * b : (step + 1) * b] == micro, (step, r)


def test_chunk_one_is_the_old_interleave_and_resume_continues() -> None:
    s = ResumableSampler(5, 3, rank=1, world_size=2)
    assert [k for _, k in take(s, 4)] == [draw_seed(3, g) for g in (1, 3, 5, 7)]
    full = take(ResumableSampler(5, 3, rank=1, world_size=2, chunk=2), 8)
    resumed = take(ResumableSampler(5, 3, start=8, rank=1, world_size=2, chunk=2), 4)
    assert resumed == full[4:]  # start = draws consumed by both ranks after 2 steps of 2 × 2
    assert len({k for _, k in full}) == 8  # every draw once
