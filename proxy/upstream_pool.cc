#include "proxy/upstream_pool.h"

#include "proxy/upstream_connection.h"

namespace lameduck::proxy {

UpstreamConnection* UpstreamPool::Take() {
  UpstreamConnection* connection = head_;
  if (connection == nullptr) return nullptr;
  Remove(*connection);
  connection->LeavePool();
  return connection;
}

void UpstreamPool::Put(UpstreamConnection& connection) {
  if (size_ >= kMaxIdle && tail_ != nullptr) tail_->Close();  // Close() removes it from the pool
  connection.pool_prev = nullptr;
  connection.pool_next = head_;
  if (head_ != nullptr) head_->pool_prev = &connection;
  head_ = &connection;
  if (tail_ == nullptr) tail_ = &connection;
  ++size_;
  connection.EnterPool(kIdleLimit);
}

void UpstreamPool::Remove(UpstreamConnection& connection) {
  bool pooled = connection.pool_prev != nullptr || head_ == &connection;
  if (!pooled) return;
  if (connection.pool_prev != nullptr) connection.pool_prev->pool_next = connection.pool_next;
  if (connection.pool_next != nullptr) connection.pool_next->pool_prev = connection.pool_prev;
  if (head_ == &connection) head_ = connection.pool_next;
  if (tail_ == &connection) tail_ = connection.pool_prev;
  connection.pool_prev = connection.pool_next = nullptr;
  --size_;
}

void UpstreamPool::CloseAll() {
  while (head_ != nullptr) head_->Close();
}

}  // namespace lameduck::proxy
