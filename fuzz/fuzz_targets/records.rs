#![no_main]
//! Harness body: `groupmesh_core::fuzzing::records`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| groupmesh_core::fuzzing::records(data));
