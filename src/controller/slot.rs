//! What the running controllers lend to servers that outlive them: the receiver and the admission
//! webhook run on every replica, the controllers only on the leader, so each server reads its
//! piece of them from a [`Slot`] the controllers fill while they run and empty when they stop.

use std::sync::{Arc, RwLock};

/// Something the controllers hold while they run, or nothing.
pub struct Slot<T: ?Sized>(RwLock<Option<Arc<T>>>);

impl<T: ?Sized> Default for Slot<T> {
    fn default() -> Self {
        Self(RwLock::new(None))
    }
}

impl<T: ?Sized> std::fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("filled", &self.get().is_some())
            .finish()
    }
}

impl<T: ?Sized> Slot<T> {
    /// Fills the slot (or empties it when the controllers stop).
    pub fn set(&self, value: Option<Arc<T>>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = value;
    }

    /// What the slot holds, if the controllers run.
    pub fn get(&self) -> Option<Arc<T>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
