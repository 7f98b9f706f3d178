//! The fuzz harness bodies, run on random bytes in the normal test run, and
//! on every input a fuzzer ever crashed the core with (`regressions`).

use proptest::prelude::*;

use groupmesh_sim::fuzzing;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn decoding_any_bytes_is_sound(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        fuzzing::decode(&data);
    }

    #[test]
    fn any_stream_in_any_chunks_gives_the_same_node(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        fuzzing::stream(&data);
    }

    #[test]
    fn no_record_the_peer_did_not_seal_is_ever_read(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        fuzzing::records(&data);
    }

    #[test]
    fn any_input_sequence_keeps_the_node_sound(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        fuzzing::node(&data);
    }

    #[test]
    fn no_hostile_handshake_authenticates(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
        fuzzing::handshake(&data);
    }
}

/// Inputs that once broke a harness body (found by cargo-fuzz), kept forever.
const REGRESSIONS: &[(&str, &[u8])] = &[
    // Dials past `max_connections`: the node dialled every gossiped node
    // without counting its own connections against the limit.
    (
        "node",
        include_bytes!("fuzz_regressions/node-connections-bounded"),
    ),
    (
        "handshake",
        include_bytes!("fuzz_regressions/handshake-connections-bounded"),
    ),
];

#[test]
fn past_fuzz_crashes_stay_fixed() {
    for (target, input) in REGRESSIONS {
        let run: fn(&[u8]) = match *target {
            "decode" => fuzzing::decode,
            "stream" => fuzzing::stream,
            "records" => fuzzing::records,
            "node" => fuzzing::node,
            "handshake" => fuzzing::handshake,
            other => panic!("unknown target {other}"),
        };
        run(input);
    }
}
