//! `vmsa-wasm`: vmsa-core in the browser. A thin boundary with no logic of its own.
#![no_std]
