#![no_main]
//! Harness body: `groupmesh_core::fuzzing::node`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| groupmesh_core::fuzzing::node(data));
