// IntrusiveList<T>: a doubly linked list through links embedded in its items (T derives from
// IntrusiveList<T>::Hook): no allocation per item, O(1) insert and erase. Owns nothing.
#pragma once

#include <cstddef>

namespace lameduck::proxy {

template <typename T>
class IntrusiveList {
 public:
  class Hook {
   protected:
    Hook() = default;
    ~Hook() = default;

   private:
    friend class IntrusiveList;
    T* prev_ = nullptr;
    T* next_ = nullptr;
  };

  IntrusiveList() = default;
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;

  void PushBack(T& item) {
    Hook& hook = item;
    hook.prev_ = tail_;
    hook.next_ = nullptr;
    if (tail_ != nullptr) {
      static_cast<Hook&>(*tail_).next_ = &item;
    } else {
      head_ = &item;
    }
    tail_ = &item;
    ++size_;
  }
  void Erase(T& item) {
    Hook& hook = item;
    if (hook.prev_ != nullptr) {
      static_cast<Hook&>(*hook.prev_).next_ = hook.next_;
    } else {
      head_ = hook.next_;
    }
    if (hook.next_ != nullptr) {
      static_cast<Hook&>(*hook.next_).prev_ = hook.prev_;
    } else {
      tail_ = hook.prev_;
    }
    hook.prev_ = hook.next_ = nullptr;
    --size_;
  }
  // fn(T&) for each item, in order; fn may erase the item it is given, not others.
  template <typename Fn>
  void ForEach(Fn fn) const {
    for (T* item = head_; item != nullptr;) {
      T* next = static_cast<Hook&>(*item).next_;
      fn(*item);
      item = next;
    }
  }
  T* front() const { return head_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

 private:
  T* head_ = nullptr;
  T* tail_ = nullptr;
  size_t size_ = 0;
};

}  // namespace lameduck::proxy
