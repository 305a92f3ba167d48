//! Black-box tests of the engine through its public API, on real files.

mod basics;
