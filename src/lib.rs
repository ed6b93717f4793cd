//! lmgc
