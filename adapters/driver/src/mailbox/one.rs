//! [`Ones`]: mailboxes that hold one item at most, by the id of the handle
//! that reads each: a monitor's pending [`GroupChange`](super::GroupChange),
//! a port monitor's notice.

use std::collections::HashMap;
use std::hash::Hash;
use std::task::Context;

use super::Reader;

/// One item at most, and the reader waiting for it.
#[derive(Debug)]
struct One<T> {
    pending: Option<T>,
    reader: Reader,
}

/// The open one-item mailboxes of one kind.
#[derive(Debug)]
pub(super) struct Ones<K, T> {
    boxes: HashMap<K, One<T>>,
}

impl<K: Eq + Hash, T> Ones<K, T> {
    pub(super) fn new() -> Self {
        Ones {
            boxes: HashMap::new(),
        }
    }

    /// Opens `id`'s mailbox, empty.
    pub(super) fn open(&mut self, id: K) {
        let one = One {
            pending: None,
            reader: Reader::default(),
        };
        self.boxes.insert(id, one);
    }

    pub(super) fn close(&mut self, id: &K) {
        self.boxes.remove(id);
    }

    /// Puts `item` in `id`'s mailbox, if it is open: combined by `combine`
    /// with the item not yet taken (`None`: together they are nothing).
    pub(super) fn put(&mut self, id: &K, item: T, combine: impl FnOnce(T, T) -> Option<T>) {
        let Some(one) = self.boxes.get_mut(id) else {
            return;
        };
        one.pending = match one.pending.take() {
            None => Some(item),
            Some(earlier) => combine(earlier, item),
        };
        one.reader.wake();
    }

    /// Takes the item of `id`'s mailbox, or remembers who to wake; `None`
    /// when the mailbox is not open.
    pub(super) fn poll(&mut self, id: &K, cx: &Context<'_>) -> Option<Option<T>> {
        let one = self.boxes.get_mut(id)?;
        Some(one.reader.take(one.pending.take(), cx))
    }

    /// Wakes every reader (the node stopped).
    pub(super) fn wake_all(&mut self) {
        self.boxes.values_mut().for_each(|one| one.reader.wake());
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    #[test]
    fn an_item_waits_combined_with_the_one_not_yet_taken() {
        let mut ones = Ones::new();
        let cx = Context::from_waker(Waker::noop());
        ones.open(1);
        ones.put(&1, 2, |a, b| Some(a + b));
        ones.put(&1, 3, |a, b| Some(a + b));
        ones.put(&2, 7, |a, b| Some(a + b)); // not open: nowhere to go
        assert_eq!(ones.poll(&1, &cx), Some(Some(5)));
        assert_eq!(ones.poll(&1, &cx), Some(None));
        assert_eq!(ones.poll(&2, &cx), None);
        ones.close(&1);
        assert_eq!(ones.poll(&1, &cx), None);
    }
}
