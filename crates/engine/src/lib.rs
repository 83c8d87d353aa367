//! The embedded llama.cpp engine and its model store.
//!
//! Empty on purpose: the gateway core does not depend on it yet. The engine (feature
//! `embedded`, llama.cpp through `llama-cpp-2`) and `switchyard models pull|list` land here,
//! and it stays the only crate of the workspace that builds C++.
