// Slab<T>: long-lived objects of one type (client connections) in mapped chunks of their own,
// apart from the malloc heap. Objects that live for minutes, scattered among the short-lived
// allocations of a burst, would pin the heap's pages after the burst is over; in their own
// chunks they pin nothing else, and a chunk whose objects are all gone goes back to the system.
// Single-threaded (one loop).
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <new>
#include <utility>

#include "proxy/intrusive_list.h"

namespace lameduck::proxy {

template <typename T>
class Slab {
 public:
  Slab() = default;
  ~Slab() {  // every object must be gone (Delete) before
    while (Chunk* chunk = partial_.front()) Unmap(*chunk);
  }
  Slab(const Slab&) = delete;
  Slab& operator=(const Slab&) = delete;

  template <typename... Args>
  T* New(Args&&... args) {
    Chunk* chunk = partial_.front();
    if (chunk == nullptr) chunk = Map();
    Slot* slot = chunk->free;
    chunk->free = slot->next_free;
    if (++chunk->live == kSlotsPerChunk) partial_.Erase(*chunk);  // full
    slot->chunk = chunk;
    try {
      return new (slot->storage) T(std::forward<Args>(args)...);
    } catch (...) {
      Free(slot);
      throw;
    }
  }
  void Delete(T* object) {
    object->~T();
    Free(reinterpret_cast<Slot*>(reinterpret_cast<char*>(object) - offsetof(Slot, storage)));
  }

 private:
  static constexpr size_t kChunkBytes = 64 * 1024;
  struct Chunk;
  struct Slot {
    Chunk* chunk;  // set while in use
    union {
      Slot* next_free;                              // free
      alignas(T) unsigned char storage[sizeof(T)];  // in use
    };
  };
  struct Chunk : IntrusiveList<Chunk>::Hook {
    Slot* free = nullptr;
    size_t live = 0;
  };
  static constexpr size_t kFirstSlot = (sizeof(Chunk) + alignof(Slot) - 1) / alignof(Slot);
  static constexpr size_t kSlotsPerChunk =
      (kChunkBytes - kFirstSlot * alignof(Slot)) / sizeof(Slot);
  static_assert(kSlotsPerChunk >= 8, "objects too large for a chunk");

  Chunk* Map() {
    void* memory =
        mmap(nullptr, kChunkBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) throw std::bad_alloc();
    auto* chunk = new (memory) Chunk;
    auto* slots = reinterpret_cast<Slot*>(static_cast<char*>(memory) + kFirstSlot * alignof(Slot));
    for (size_t i = kSlotsPerChunk; i-- > 0;) {  // the first slot first: pages fill in order
      slots[i].next_free = chunk->free;
      chunk->free = &slots[i];
    }
    partial_.PushBack(*chunk);
    return chunk;
  }
  void Unmap(Chunk& chunk) {
    partial_.Erase(chunk);
    chunk.~Chunk();
    munmap(&chunk, kChunkBytes);
  }
  void Free(Slot* slot) {
    Chunk* chunk = slot->chunk;
    bool was_full = chunk->live == kSlotsPerChunk;
    slot->next_free = chunk->free;
    chunk->free = slot;
    --chunk->live;
    if (was_full) partial_.PushBack(*chunk);
    // An empty chunk goes back, unless it is the only one with room (a connection that comes and
    // goes would map and unmap it each time).
    if (chunk->live == 0 && partial_.size() > 1) Unmap(*chunk);
  }

  IntrusiveList<Chunk> partial_;  // chunks with a free slot; full ones are reached via their slots
};

}  // namespace lameduck::proxy
