//! A fixed-capacity ring buffer — 环形缓冲区 🌀.

pub struct Ring<T> {
    slots: Vec<Option<T>>,
    head: usize,
    len: usize,
}

impl<T> Ring<T> {
    pub fn with_capacity(capacity: usize) -> Self {
        assert!(capacity > 0, "capacity must be positive");
        Ring { slots: (0..capacity).map(|_| None).collect(), head: 0, len: 0 }
    }

    /// Push a value; returns the evicted oldest value when full (满了就覆盖最旧的).
    pub fn push(&mut self, value: T) -> Option<T> {
        let cap = self.slots.len();
        let tail = (self.head + self.len) % cap;
        let evicted = self.slots[tail].replace(value);
        if self.len == cap {
            self.head = (self.head + 1) % cap;
        } else {
            self.len += 1;
        }
        evicted
    }

    pub fn pop(&mut self) -> Option<T> {
        if self.len == 0 {
            return None;
        }
        let value = self.slots[self.head].take();
        self.head = (self.head + 1) % self.slots.len();
        self.len -= 1;
        value
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        (0..self.len).filter_map(move |i| self.slots[(self.head + i) % self.slots.len()].as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_oldest() {
        let mut ring = Ring::with_capacity(2);
        assert_eq!(ring.push("🍎"), None);
        assert_eq!(ring.push("🍌"), None);
        assert_eq!(ring.push("🍒"), Some("🍎"));
        assert_eq!(ring.iter().copied().collect::<Vec<_>>(), vec!["🍌", "🍒"]);
    }
}
