//! End-to-end tests of the Mirror workspace. One binary, one module per feature.

mod demo;
