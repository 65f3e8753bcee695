#include "proxy/buffer_pool.h"

#include <sys/mman.h>

#include <algorithm>
#include <new>

namespace lameduck::proxy {
namespace {

Block* MapBlock() {
  void* memory =
      mmap(nullptr, sizeof(Block), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) throw std::bad_alloc();
  return new (memory) Block;  // default-initialised: the data is not written here
}

void UnmapBlock(Block* block) { munmap(block, sizeof(Block)); }

}  // namespace

void BlockRef::Reset() {
  if (block_ == nullptr) return;
  if (--block_->refs == 0) block_->pool->Release(block_);
  block_ = nullptr;
}

BufferPool::~BufferPool() {
  for (Block* block : free_) UnmapBlock(block);
}

BlockRef BufferPool::Acquire() {
  Block* block;
  if (free_.empty()) {
    block = MapBlock();
    block->pool = this;
  } else {
    block = free_.back();
    free_.pop_back();
    unused_since_trim_ = std::min(unused_since_trim_, free_.size());
  }
  block->refs = 1;
  return BlockRef(block);
}

void BufferPool::Release(Block* block) {
  if (free_.size() < max_free_) {
    free_.push_back(block);
  } else {
    UnmapBlock(block);
  }
}

size_t BufferPool::Trim() {
  // The oldest (front) ones: the back is what the next Acquire takes, still warm in the cache.
  size_t unused = std::min(unused_since_trim_, free_.size());
  std::for_each(free_.begin(), free_.begin() + unused, UnmapBlock);
  free_.erase(free_.begin(), free_.begin() + unused);
  unused_since_trim_ = free_.size();
  return unused;
}

}  // namespace lameduck::proxy
