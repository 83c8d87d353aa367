//! The embedded engine and its model store.
//!
//! - [`store`]: finding, fetching and verifying GGUF files (no C++; always built).
//! - [`llama`] (feature `embedded`, on by default): llama.cpp in-process through
//!   `llama-cpp-2`. This is the only crate in the workspace that builds C++.

pub mod store;
#[cfg(any(feature = "embedded", test))]
mod text;

#[cfg(feature = "embedded")]
pub mod llama;
