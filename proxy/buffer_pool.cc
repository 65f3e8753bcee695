#include "proxy/buffer_pool.h"

namespace lameduck::proxy {

void BlockRef::Reset() {
  if (block_ == nullptr) return;
  if (--block_->refs == 0) block_->pool->Release(block_);
  block_ = nullptr;
}

BlockRef BufferPool::Acquire() {
  std::unique_ptr<Block> block;
  if (free_.empty()) {
    // Not value-initialised: 64 KiB of zeroes per block would be wasted work.
    block.reset(new Block);  // NOLINT: released into BlockRef's count below
    block->pool = this;
  } else {
    block = std::move(free_.back());
    free_.pop_back();
  }
  block->refs = 1;
  return BlockRef(block.release());
}

void BufferPool::Release(Block* raw) {
  std::unique_ptr<Block> block(raw);
  if (free_.size() < max_free_) free_.push_back(std::move(block));
}

}  // namespace lameduck::proxy
