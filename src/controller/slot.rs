//! What servers read from caches that come and go: the push-notification receiver runs on every
//! replica, the import engine only on the leader, so the receiver reads the engine from a [`Slot`]
//! the controllers fill while they run and empty when they stop; the admission webhook's slot
//! holds its stream cache once that has listed.

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
