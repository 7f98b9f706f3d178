//! The byte stream: chunking independence and the size check before buffering.

use alloc::vec::Vec;

use proptest::prelude::*;

use super::framed;
use super::wire::frame;
use crate::framing::FrameReader;
use crate::wire::{DecodeError, Frame};

fn read_all(reader: &mut FrameReader, chunks: &[&[u8]]) -> (Vec<Frame>, Option<DecodeError>) {
    let mut frames = Vec::new();
    for chunk in chunks {
        reader.push(chunk);
        loop {
            match reader.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

proptest! {
    #[test]
    fn frames_split_at_any_byte_decode_the_same(
        frames in proptest::collection::vec(frame(), 1..6),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let stream: Vec<u8> = frames.iter().flat_map(framed).collect();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points.into_iter().chain([stream.len()]) {
            chunks.push(&stream[last..p]);
            last = p;
        }
        let (got, err) = read_all(&mut FrameReader::new(1 << 20), &chunks);
        prop_assert_eq!(err, None);
        prop_assert_eq!(&got, &frames);
        // And one byte at a time.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        let (got, err) = read_all(&mut FrameReader::new(1 << 20), &bytes);
        prop_assert_eq!(err, None);
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_reader(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)
    ) {
        let chunks: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
        let _ = read_all(&mut FrameReader::new(1024), &chunks);
    }
}

#[test]
fn an_oversized_length_is_refused_before_the_body_arrives() {
    let mut r = FrameReader::new(1024);
    r.push(&2000u32.to_le_bytes());
    assert_eq!(
        r.next_frame(),
        Err(DecodeError::TooLarge {
            len: 2000,
            max: 1024
        })
    );
    assert_eq!(r.buffered(), 0, "nothing is kept after the refusal");
    r.push(&[0; 100]);
    assert_eq!(
        r.next_frame(),
        Ok(None),
        "a failed stream yields nothing more"
    );
}

#[test]
fn many_frames_in_one_read_all_come_out_in_order() {
    let stream: Vec<u8> = (0..100).flat_map(|_| framed(&Frame::Ping)).collect();
    let (got, err) = read_all(&mut FrameReader::new(1024), &[&stream]);
    assert_eq!(err, None);
    assert_eq!(got.len(), 100);
}

#[test]
fn a_zero_length_frame_is_malformed() {
    let (_, err) = read_all(&mut FrameReader::new(1024), &[&[0, 0, 0, 0]]);
    assert_eq!(err, Some(DecodeError::Malformed));
}
