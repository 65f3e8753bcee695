// Fixed-size read blocks, reference counted so that a write can borrow part of a block without
// copying it: the block goes back to the pool when the last write that uses it has completed.
// Single-threaded (one loop). Does not grow blocks: a read is at most kBlockSize bytes.
// Blocks are mapped pages of their own (not the malloc heap): only the pages a read touched are
// resident, and a block freed after a burst goes back to the system, not to a heap that keeps it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

#include "proxy/object_pool.h"

namespace lameduck::proxy {

class BufferPool;

struct Block {
  static constexpr size_t kSize = 64 * 1024;
  BufferPool* pool = nullptr;
  uint32_t refs = 0;
  char data[kSize];
};

// A counted reference to a Block; move-only.
class BlockRef {
 public:
  BlockRef() = default;
  explicit BlockRef(Block* block) : block_(block) {}  // adopts one reference
  BlockRef(BlockRef&& other) noexcept : block_(std::exchange(other.block_, nullptr)) {}
  BlockRef& operator=(BlockRef&& other) noexcept {
    if (this != &other) {
      Reset();
      block_ = std::exchange(other.block_, nullptr);
    }
    return *this;
  }
  BlockRef(const BlockRef&) = delete;
  BlockRef& operator=(const BlockRef&) = delete;
  ~BlockRef() { Reset(); }

  BlockRef Share() const {
    if (block_ != nullptr) ++block_->refs;
    return BlockRef(block_);
  }
  void Reset();
  char* data() const { return block_->data; }
  explicit operator bool() const { return block_ != nullptr; }

 private:
  Block* block_ = nullptr;
};

class BufferPool {
 public:
  explicit BufferPool(size_t max_free = 32) : free_(max_free) {}
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  BlockRef Acquire();
  // Frees the free blocks no Acquire needed since the last Trim: a pool grown for a burst
  // shrinks back once the burst is over. For a periodic timer.
  size_t Trim() { return free_.Trim(); }  // how many it freed
  size_t free_blocks() const { return free_.free_count(); }

 private:
  friend class BlockRef;
  struct Unmap {
    void operator()(Block* block) const;
  };
  void Release(Block* block);

  ObjectPool<Block, Unmap> free_;
};

}  // namespace lameduck::proxy
