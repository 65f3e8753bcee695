// Unit tests of the pools that keep steady traffic from allocating, and give back what a burst
// left unused: ObjectPool, BufferPool, IntrusiveList and HeadCollector's spare storage.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "proxy/buffer_pool.h"
#include "proxy/intrusive_list.h"
#include "proxy/message_head.h"
#include "proxy/object_pool.h"
#include "proxy/slab.h"

namespace lameduck::proxy {
namespace {

TEST(ObjectPoolTest, ReusesWhatWasGivenBackAndTrimsWhatABurstLeftUnused) {
  ObjectPool<int> pool(8);
  int made = 0;
  auto make = [&] {
    ++made;
    return std::make_unique<int>(0);
  };
  std::vector<std::unique_ptr<int>> burst;
  for (int i = 0; i < 6; ++i) burst.push_back(pool.Take(make));
  for (auto& object : burst) pool.Give(std::move(object));
  EXPECT_EQ(made, 6);
  EXPECT_EQ(pool.free_count(), 6u);

  pool.Trim();  // the first Trim only starts the count
  EXPECT_EQ(pool.free_count(), 6u);
  // Steady traffic uses two at a time: four stay unused until the next Trim.
  for (int round = 0; round < 3; ++round) {
    auto a = pool.Take(make);
    auto b = pool.Take(make);
    pool.Give(std::move(b));
    pool.Give(std::move(a));
  }
  EXPECT_EQ(made, 6) << "a free object was not reused";
  pool.Trim();
  EXPECT_EQ(pool.free_count(), 2u);
  pool.Trim();
  EXPECT_EQ(pool.free_count(), 0u);
}

TEST(ObjectPoolTest, KeepsNoMoreThanItsBound) {
  ObjectPool<int> pool(2);
  for (int i = 0; i < 5; ++i) pool.Give(std::make_unique<int>(i));
  EXPECT_EQ(pool.free_count(), 2u);
}

TEST(BufferPoolTest, ReusesABlockAndTrimsTheOnesABurstLeftUnused) {
  BufferPool pool(16);
  std::vector<BlockRef> burst;
  for (int i = 0; i < 10; ++i) burst.push_back(pool.Acquire());
  char* last = burst.back().data();
  burst.back().data()[Block::kSize - 1] = 'x';  // the whole block is writable
  burst.clear();
  EXPECT_EQ(pool.free_blocks(), 10u);
  BlockRef again = pool.Acquire();
  EXPECT_EQ(again.data(), last) << "the warmest free block is taken first";
  {
    BlockRef shared = again.Share();  // a write borrowing the block keeps it out of the pool
    again.Reset();
    EXPECT_EQ(pool.free_blocks(), 9u);
  }
  EXPECT_EQ(pool.free_blocks(), 10u);
  pool.Trim();
  EXPECT_EQ(pool.free_blocks(), 10u);
  { BlockRef in_use = pool.Acquire(); }
  pool.Trim();  // one was needed since the last Trim: the nine others go
  EXPECT_EQ(pool.free_blocks(), 1u);
}

// Big enough that a few hundred span several chunks.
struct Tracked {
  explicit Tracked(int v, int& live) : value(v), live(live) { ++live; }
  ~Tracked() { --live; }
  int value;
  int& live;
  char payload[600] = {};
};

TEST(SlabTest, ConstructsDestroysAndReusesSlotsAcrossChunks) {
  Slab<Tracked> slab;
  int live = 0;
  std::vector<Tracked*> objects;
  for (int i = 0; i < 500; ++i) objects.push_back(slab.New(i, live));
  EXPECT_EQ(live, 500);
  for (int i = 0; i < 500; ++i) {
    ASSERT_EQ(objects[i]->value, i);  // no slot handed out twice
    objects[i]->payload[599] = 'x';
  }
  // Every other one goes; their slots serve the next ones before any new chunk is mapped.
  std::vector<Tracked*> freed;
  for (int i = 0; i < 500; i += 2) {
    freed.push_back(objects[i]);
    slab.Delete(objects[i]);
  }
  EXPECT_EQ(live, 250);
  Tracked* again = slab.New(1000, live);
  EXPECT_NE(std::find(freed.begin(), freed.end(), again), freed.end())
      << "a free slot was not reused";
  slab.Delete(again);
  for (int i = 1; i < 500; i += 2) slab.Delete(objects[i]);
  EXPECT_EQ(live, 0);
  // Empty chunks went back (all but one): a new object still works.
  Tracked* last = slab.New(7, live);
  EXPECT_EQ(last->value, 7);
  slab.Delete(last);
}

struct Item : IntrusiveList<Item>::Hook {
  explicit Item(int v) : value(v) {}
  int value;
};

TEST(IntrusiveListTest, ErasesFromAnyPlaceAndVisitsInOrder) {
  IntrusiveList<Item> list;
  Item a(1), b(2), c(3), d(4);
  for (Item* item : {&a, &b, &c, &d}) list.PushBack(*item);
  list.Erase(b);  // middle
  list.Erase(d);  // tail
  std::vector<int> seen;
  list.ForEach([&](Item& item) {
    seen.push_back(item.value);
    list.Erase(item);  // the visited one may go
  });
  EXPECT_EQ(seen, (std::vector<int>{1, 3}));
  EXPECT_TRUE(list.empty());
  list.PushBack(d);
  EXPECT_EQ(list.front(), &d);
  EXPECT_EQ(list.size(), 1u);
  list.Erase(d);
}

TEST(HeadCollectorTest, AReleasedHeadsStorageServesTheNextHead) {
  // The spares are per thread and bounded: empty them first (other tests may have filled them).
  std::vector<HeadCollector> holding(100);
  for (HeadCollector& head : holding) head.AppendTarget("/", 1);
  HeadCollector first;
  first.AppendTarget("/first", 6);
  first.AppendField("Host", 4);
  first.AppendValue("a", 1);
  const char* storage = first.target().data();
  first.Release();
  EXPECT_EQ(first.field_count(), 0u);
  EXPECT_EQ(first.bytes(), 0u);

  HeadCollector second;  // e.g. another connection's next request
  second.AppendTarget("/second", 7);
  EXPECT_EQ(second.target().data(), storage) << "the spare storage was not reused";
  EXPECT_EQ(second.target(), "/second");

  first.AppendTarget("/again", 6);  // a released head still works: it takes storage anew
  first.AppendField("X", 1);
  first.AppendValue("1", 1);
  EXPECT_EQ(first.target(), "/again");
  EXPECT_EQ(first.Find("x"), "1");
}

TEST(HeadCollectorTest, CopiesAndMovesKeepTheirFields) {
  HeadCollector head;
  head.AppendTarget("/", 1);
  head.AppendField("A", 1);
  head.AppendValue("1", 1);
  HeadCollector copy = head;
  HeadCollector moved = std::move(head);
  EXPECT_EQ(copy.Find("a"), "1");
  EXPECT_EQ(moved.Find("a"), "1");
  copy.AppendField("B", 1);
  copy.AppendValue("2", 1);
  EXPECT_EQ(copy.Find("b"), "2");
  EXPECT_EQ(moved.Count("b"), 0);
}

}  // namespace
}  // namespace lameduck::proxy
