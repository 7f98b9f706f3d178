#![no_main]
//! Harness body: `groupmesh_sim::fuzzing::stream`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| groupmesh_sim::fuzzing::stream(data));
