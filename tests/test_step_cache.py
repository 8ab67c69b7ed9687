"""BufferPool: a search's next batch reuses the cache memory of the last, never memory still in use."""

import gc

import torch

from seqlab.model.step_cache import BufferPool


def test_a_buffer_returns_to_the_pool_only_when_its_view_is_gone() -> None:
    pool = BufferPool()
    like = torch.empty(0)
    first = pool.take(1000, like=like)
    address = first.data_ptr()
    second = pool.take(1000, like=like)
    assert second.data_ptr() != address  # the first is alive: not handed out again
    layout = first[:600].view(20, 30)  # views taken from a live buffer keep it out of the pool
    layout.fill_(1.0)
    del layout
    del first
    gc.collect()
    third = pool.take(800, like=like)
    assert third.data_ptr() == address and third.numel() == 800
    second.fill_(2.0)
    assert torch.all(third[:600] == 1.0)  # the reused block holds what was written, not fresh memory


def test_the_smallest_free_buffer_that_fits_is_given_and_only_the_largest_are_kept() -> None:
    pool = BufferPool(blocks=2)
    like = torch.empty(0)
    taken = [pool.take(size, like=like) for size in (100, 400, 200)]
    addresses = [view.data_ptr() for view in taken]
    del taken
    gc.collect()
    held = [pool.take(50, like=like) for _ in range(2)]
    # the 100 would fit best, but two were kept: 200, then 400
    assert [view.data_ptr() for view in held] == [addresses[2], addresses[1]]


def test_dtypes_do_not_share_buffers() -> None:
    pool = BufferPool()
    floats = pool.take(64, like=torch.empty(0))
    address = floats.data_ptr()
    del floats
    gc.collect()
    halves = pool.take(64, like=torch.empty(0, dtype=torch.bfloat16))
    assert halves.dtype == torch.bfloat16 and halves.data_ptr() != address


def test_buffers_over_the_byte_limit_are_let_go() -> None:
    pool = BufferPool(blocks=2, max_bytes=4 * 300)  # 300 float32s
    like = torch.empty(0)
    taken = [pool.take(size, like=like) for size in (400, 250, 100)]
    addresses = [view.data_ptr() for view in taken]
    del taken
    gc.collect()
    # the 400 is over the limit alone, the 250 and the 100 together too: the 100 would fit best,
    # but only the 250 was kept
    assert pool.take(50, like=like).data_ptr() == addresses[1]


def test_a_buffer_made_in_inference_mode_is_not_handed_out_for_writing_outside_it() -> None:
    pool = BufferPool()
    like = torch.empty(0)
    with torch.inference_mode():  # as search runs
        searched = pool.take(64, like=like)
        address = searched.data_ptr()
    del searched
    gc.collect()
    with torch.no_grad():  # a test or a caller decoding without inference mode
        plain = pool.take(64, like=like)
        plain[:8].copy_(torch.ones(8))  # an inference tensor would refuse this write
    assert plain.data_ptr() != address and not plain.is_inference()
    with torch.inference_mode():
        assert pool.take(64, like=like).data_ptr() == address
