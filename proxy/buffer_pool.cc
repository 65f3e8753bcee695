#include "proxy/buffer_pool.h"

#include <sys/mman.h>

#include <new>

namespace lameduck::proxy {
namespace {

Block* MapBlock() {
  void* memory =
      mmap(nullptr, sizeof(Block), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) throw std::bad_alloc();
  return new (memory) Block;  // default-initialised: the data is not written here
}

}  // namespace

void BlockRef::Reset() {
  if (block_ == nullptr) return;
  if (--block_->refs == 0) block_->pool->Release(block_);
  block_ = nullptr;
}

void BufferPool::Unmap::operator()(Block* block) const { munmap(block, sizeof(Block)); }

BlockRef BufferPool::Acquire() {
  Block* block = free_
                     .Take([this] {
                       ObjectPool<Block, Unmap>::Ptr fresh(MapBlock());
                       fresh->pool = this;
                       return fresh;
                     })
                     .release();
  block->refs = 1;
  return BlockRef(block);
}

void BufferPool::Release(Block* block) { free_.Give(ObjectPool<Block, Unmap>::Ptr(block)); }

}  // namespace lameduck::proxy
