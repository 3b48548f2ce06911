//! Frame I/O behind one small trait.
