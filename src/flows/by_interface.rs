//! One value per interface of a capture, looked up for every frame: the interface looked up
//! last is remembered, since a capture's frames nearly all come from one (a merged file or
//! `-i any` from a few), and the others are found through a map.

use std::collections::BTreeMap;

pub(super) struct ByInterface<T> {
    /// (interface, value), in the order first seen.
    slots: Vec<(u32, T)>,
    index: BTreeMap<u32, usize>,
    last: Option<(u32, usize)>,
}

impl<T> Default for ByInterface<T> {
    fn default() -> Self {
        ByInterface {
            slots: Vec::new(),
            index: BTreeMap::new(),
            last: None,
        }
    }
}

impl<T> ByInterface<T> {
    /// The interface's value, made by `make` the first time.
    pub(super) fn get_or_insert_with(
        &mut self,
        interface: u32,
        make: impl FnOnce() -> T,
    ) -> &mut T {
        let at = match self.last {
            Some((i, at)) if i == interface => at,
            _ => {
                let next = self.slots.len();
                let at = *self.index.entry(interface).or_insert(next);
                if at == next {
                    self.slots.push((interface, make()));
                }
                self.last = Some((interface, at));
                at
            }
        };
        &mut self.slots[at].1
    }

    pub(super) fn get_mut(&mut self, interface: u32) -> Option<&mut T> {
        let at = *self.index.get(&interface)?;
        Some(&mut self.slots[at].1)
    }

    /// Every (interface, value), in interface order.
    pub(super) fn into_sorted(mut self) -> impl Iterator<Item = (u32, T)> {
        self.slots.sort_unstable_by_key(|(i, _)| *i);
        self.slots.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::ByInterface;

    #[test]
    fn each_interface_keeps_its_value_and_they_come_out_in_order() {
        let mut m = ByInterface::default();
        for i in [7u32, 7, 2, 7, 9, 2] {
            *m.get_or_insert_with(i, || 0) += 1;
        }
        assert_eq!(m.get_mut(2).copied(), Some(2));
        assert_eq!(m.get_mut(3), None);
        assert_eq!(
            m.into_sorted().collect::<Vec<_>>(),
            [(2, 2), (7, 3), (9, 1)]
        );
    }
}
