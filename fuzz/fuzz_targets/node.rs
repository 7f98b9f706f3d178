#![no_main]
//! Harness body: `groupmesh_sim::fuzzing::node`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| groupmesh_sim::fuzzing::node(data));
